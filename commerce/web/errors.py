"""The one place where domain error codes become HTTP statuses and viewer-facing wording."""

from __future__ import annotations

from dataclasses import dataclass

from commerce.domain.errors import DomainError


class BadJson(DomainError):
    """A body that is not the JSON object the operation reads: the field at fault is the
    whole ``body``."""

    code = "BAD_JSON"

    def __init__(self, problem: str) -> None:
        super().__init__(problem, field="body")


class BadCsv(DomainError):
    """A file (a carrier's export) we cannot read, naming the field and the line."""

    code = "BAD_CSV"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}", field=field, problem=problem)


class Unauthorized(DomainError):
    code = "UNAUTHORIZED"


class AdminDisabled(DomainError):
    code = "ADMIN_DISABLED"


class CsrfFailed(DomainError):
    code = "CSRF_FAILED"


class RateLimited(DomainError):
    code = "RATE_LIMITED"

    def __init__(self, retry_after: float) -> None:
        super().__init__("too many attempts; wait a moment and try again")
        self.retry_after = retry_after


class MailNotSent(DomainError):
    code = "MAIL_NOT_SENT"


class RouteNotFound(DomainError):
    code = "ROUTE_NOT_FOUND"


@dataclass(frozen=True, slots=True)
class ErrorKind:
    status: int
    title: str  # the heading of the HTML page; JSON carries code + message


ERRORS: dict[str, ErrorKind] = {
    "INVALID_INPUT": ErrorKind(422, "That did not work"),
    "UNKNOWN_ITEM": ErrorKind(422, "Not sold in this drop"),
    "BAD_JSON": ErrorKind(400, "Malformed request"),
    "BAD_CSV": ErrorKind(400, "That file could not be read"),
    "NOT_FOUND": ErrorKind(404, "Not found"),
    "DROP_NOT_FOUND": ErrorKind(404, "No such drop"),
    "HOLD_NOT_FOUND": ErrorKind(404, "No such hold"),
    "ORDER_NOT_FOUND": ErrorKind(404, "No such order"),
    "ROUTE_NOT_FOUND": ErrorKind(404, "Nothing here"),
    "INVALID_STATE": ErrorKind(409, "Not possible right now"),
    "HOLD_NOT_ACTIVE": ErrorKind(410, "Your hold has ended"),
    "FORBIDDEN": ErrorKind(403, "Not allowed"),
    "LINK_INVALID": ErrorKind(403, "This link is not valid"),
    "LINK_EXPIRED": ErrorKind(410, "This link has expired"),
    "CSRF_FAILED": ErrorKind(403, "Please reload the page"),
    "UNAUTHORIZED": ErrorKind(401, "Sign-in required"),
    "ADMIN_DISABLED": ErrorKind(403, "Admin API disabled"),
    "RATE_LIMITED": ErrorKind(429, "Slow down"),
    "WEBHOOK_INVALID": ErrorKind(400, "Webhook rejected"),
    "PAYMENT_FAILED": ErrorKind(502, "Payment did not start"),
    "MAIL_NOT_SENT": ErrorKind(502, "The email did not go"),
    "SIGNIN_FAILED": ErrorKind(400, "Sign-in did not work"),
}
FALLBACK = ErrorKind(400, "That did not work")
SERVER_ERROR = ErrorKind(500, "Something broke on our side")
UNAVAILABLE = ErrorKind(503, "Briefly unavailable")  # the database cannot be reached
UNAVAILABLE_RETRY_SECONDS = 5


def kind_of(error: DomainError) -> ErrorKind:
    """Status and title for a domain error, by its code (subclasses fall back to parents)."""
    for cls in type(error).__mro__:
        code = getattr(cls, "code", None)
        if code in ERRORS:
            return ERRORS[code]
    return FALLBACK


def error_body(error: DomainError) -> dict[str, object]:
    """The JSON shape every API error uses: code, message and, when known, the field."""
    body: dict[str, object] = {"error": error.code, "message": error.message}
    field = error.details.get("field") or getattr(error, "field", None)
    if field:
        body["field"] = field
    return body
