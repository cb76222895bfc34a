"""Account linking by one-time code: proof that one person holds two chat accounts.

A platform whose chat has no private reply (Twitch) needs another way to reach a viewer
with their personal pay link; once their account there and one on a platform with private
messages (Discord) name one customer, it travels by that platform's DM. A code is issued on
one platform and redeemed on the other, e.g.:

* Discord ``/link`` (shown ephemerally) → ``issue_link_code("discord:<id>")`` → ``!link CODE``
  in Twitch chat, which calls ``redeem_link_code(code, "twitch:<id>")``. Issue codes only
  where they are shown privately: one posted in public chat could be redeemed by anyone.

Codes live in this process's memory: 6 characters, 10 minutes, single use.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from commerce.core import Commerce
from commerce.domain.errors import DomainError
from commerce.domain.model import normalize_identity

ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read aloud and retyped
CODE_LENGTH = 6
CODE_TTL = timedelta(minutes=10)
MAX_FAILURES = 5  # wrong codes per identity per TTL before redeeming is refused


def _new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


@dataclass(frozen=True, slots=True)
class _Code:
    identity: str
    expires_at: datetime


class AccountLinker:
    """Issues and redeems link codes; one instance shared by every chat adapter."""

    def __init__(self, commerce: Commerce, *, ttl: timedelta = CODE_TTL) -> None:
        self.commerce = commerce
        self.ttl = ttl
        self._codes: dict[str, _Code] = {}
        self._failures: dict[str, list[datetime]] = {}

    def issue_link_code(self, identity: str) -> str:
        """A fresh code for ``identity`` (replacing its previous one)."""
        identity = normalize_identity(identity)
        now = self.commerce.clock.now()
        self._codes = {
            c: v for c, v in self._codes.items() if v.expires_at > now and v.identity != identity
        }
        code = _new_code()
        while code in self._codes:
            code = _new_code()
        self._codes[code] = _Code(identity, now + self.ttl)
        return code

    async def redeem_link_code(self, code: str, identity: str) -> bool:
        """Link ``identity`` to whoever was issued ``code`` on another platform.

        Calls ``commerce.customers.link(issuer, identity)``: both identities then name one
        customer. False (and nothing changes) for an unknown, expired or same-platform code,
        and after too many wrong codes from ``identity``.
        """
        try:
            identity = normalize_identity(identity)
        except DomainError:
            return False
        now = self.commerce.clock.now()
        recent = [t for t in self._failures.get(identity, []) if now - t < self.ttl]
        self._failures[identity] = recent
        if len(recent) >= MAX_FAILURES:
            return False
        key = code.strip().upper()
        found = self._codes.get(key)
        same_platform = found is not None and found.identity.split(":")[0] == identity.split(":")[0]
        if found is None or found.expires_at <= now or same_platform:
            recent.append(now)
            return False
        del self._codes[key]
        await self.commerce.customers.link(found.identity, identity)
        return True
