"""Domain errors. Each carries a stable machine ``code``; entrypoints (chat, HTTP, CLI) map
codes to their own wording in one place and never parse messages."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "DOMAIN_ERROR"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message


class InvalidInput(DomainError):
    """Bad input: names the field and the problem. Nothing was changed."""

    code = "INVALID_INPUT"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}", field=field, problem=problem)
        self.field = field
        self.problem = problem


class NotFound(DomainError):
    code = "NOT_FOUND"


class DropNotFound(NotFound):
    code = "DROP_NOT_FOUND"

    def __init__(self, drop_id: int) -> None:
        super().__init__(f"drop {drop_id} does not exist", drop_id=drop_id)


class HoldNotFound(NotFound):
    code = "HOLD_NOT_FOUND"


class OrderNotFound(NotFound):
    code = "ORDER_NOT_FOUND"


class UnknownItem(DomainError):
    """An SKU or pool the drop does not sell. Its one detail (``sku=`` or ``pool=``) is the
    field at fault."""

    code = "UNKNOWN_ITEM"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, **details)
        self.field = next(iter(details), None)


class InvalidState(DomainError):
    """The thing exists but is not in a state that allows this (e.g. opening a closed drop)."""

    code = "INVALID_STATE"


class HoldNotActive(DomainError):
    """Payment or checkout for a hold that expired or was cancelled."""

    code = "HOLD_NOT_ACTIVE"


class Forbidden(DomainError):
    code = "FORBIDDEN"
