"""Links to a drop: its public page (``drop_page_url``, the one place that URL is built) and
personal one-click links, signed, bound to one drop and one customer identity, expiring.

The token's nonce becomes the claim key, so replaying a link finds the hold it already made
instead of creating a second one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from itsdangerous import BadData, BadSignature, URLSafeSerializer
from itsdangerous.encoding import base64_decode

from commerce.analytics.tracking import Tracker
from commerce.clock import Clock
from commerce.domain.errors import DomainError
from commerce.domain.model import normalize_identity
from commerce.services.customers import CustomerService


def drop_page_url(base_url: str, drop_id: int) -> str:
    """The drop's public page (``GET /d/{id}``), for chat, the overlay's QR code and mail."""
    return f"{base_url.rstrip('/')}/d/{drop_id}"


class LinkInvalid(DomainError):
    code = "LINK_INVALID"


class LinkExpired(DomainError):
    code = "LINK_EXPIRED"


@dataclass(frozen=True, slots=True)
class ClaimLink:
    drop_id: int
    identity: str
    expires_at: datetime
    nonce: str
    tag: str | None = None  # attribution, e.g. "reminder:5m"

    @property
    def claim_key(self) -> str:
        return f"link:{self.nonce}"


class _Verifier:
    """Checks tokens of ``serializer``'s format (itsdangerous: ``payload.signature``, the
    signature an HMAC-SHA1 of the payload under a key derived from the secret and salt) with
    the key derived once. itsdangerous builds a signer and derives its key on every call,
    which was most of the cost of checking a link, and every click checks one. Decoding the
    payload is still the serializer's own; issuing is untouched."""

    def __init__(self, serializer: URLSafeSerializer, secret_key: str, salt: str) -> None:
        # itsdangerous's defaults: "django-concat" key derivation, SHA-1, HMAC.
        key = hashlib.sha1(salt.encode() + b"signer" + secret_key.encode()).digest()
        self._mac = hmac.new(key, digestmod=hashlib.sha1)
        self._serializer = serializer

    def loads(self, token: str) -> Any:
        value, dot, signature = token.rpartition(".")
        if not dot:
            raise BadSignature("no signature")
        try:  # decoded, as itsdangerous compares: the same links pass
            given = base64_decode(signature)
        except BadData:
            raise BadSignature("signature is not base64") from None
        mac = self._mac.copy()
        mac.update(value.encode())
        if not hmac.compare_digest(mac.digest(), given):
            raise BadSignature("signature does not match")
        return self._serializer.load_payload(value.encode())


class LinkSigner:
    def __init__(self, secret_key: str, clock: Clock, ttl_seconds: int = 900) -> None:
        salt = "dropcast.claim-link"
        self._serializer = URLSafeSerializer(secret_key, salt=salt)
        self._verifier = _Verifier(self._serializer, secret_key, salt)
        self._unsubscribe = URLSafeSerializer(secret_key, salt="dropcast.unsubscribe")
        self._clock = clock
        self.ttl = timedelta(seconds=ttl_seconds)

    def issue(self, drop_id: int, identity: str, tag: str | None = None) -> tuple[str, ClaimLink]:
        link = ClaimLink(
            drop_id=drop_id,
            identity=normalize_identity(identity),
            expires_at=(self._clock.now() + self.ttl).replace(microsecond=0),
            nonce=secrets.token_urlsafe(12),
            tag=tag,
        )
        payload = [link.drop_id, link.identity, int(link.expires_at.timestamp()), link.nonce]
        if tag:
            payload.append(tag)
        return str(self._serializer.dumps(payload)), link

    def verify(self, token: str) -> ClaimLink:
        """The link behind a token; raises LinkInvalid (forged/tampered) or LinkExpired."""
        try:
            payload = self._verifier.loads(token)
            drop_id, identity, expires, nonce, *rest = payload
            link = ClaimLink(
                int(drop_id),
                str(identity),
                datetime.fromtimestamp(int(expires), UTC),
                str(nonce),
                str(rest[0]) if rest else None,
            )
        except (BadData, ValueError, TypeError):
            raise LinkInvalid("this link is not valid: it was changed or not made by us") from None
        if link.expires_at <= self._clock.now():
            raise LinkExpired("this link has expired; ask for a new one in chat", drop_id=drop_id)
        return link

    def unsubscribe_token(self, customer_id: int) -> str:
        """A one-click unsubscribe token for every reminder; it never expires."""
        return str(self._unsubscribe.dumps(["u", customer_id]))

    def verify_unsubscribe(self, token: str) -> int:
        try:
            kind, customer_id = self._unsubscribe.loads(token)
            if kind != "u":
                raise ValueError(kind)
            return int(customer_id)
        except (BadSignature, ValueError, TypeError):
            raise LinkInvalid("this unsubscribe link is not valid") from None


@dataclass(frozen=True, slots=True)
class IssuedLink:
    url: str
    token: str
    link: ClaimLink


class LinkIssuer:
    """Hands out personal links, from every path (chat, the admin API, the drop page,
    reminders, the CLI): signs one and records ``link_issued`` durably before the URL is
    handed out, so the funnel's first step is never missing."""

    def __init__(
        self, signer: LinkSigner, customers: CustomerService, tracker: Tracker, base_url: str
    ) -> None:
        self.signer = signer
        self.customers = customers
        self.tracker = tracker
        self.base_url = base_url.rstrip("/")

    async def issue(self, drop_id: int, identity: str, tag: str | None = None) -> IssuedLink:
        token, link = self.signer.issue(drop_id, identity, tag)
        customer_id = await self.customers.resolve(link.identity)
        await self.tracker.log(drop_id, "link_issued", customer_id, tag=tag)
        return IssuedLink(f"{self.base_url}/c/{token}", token, link)

    async def url(self, drop_id: int, identity: str, tag: str | None = None) -> str:
        return (await self.issue(drop_id, identity, tag)).url
