"""Identities (``<scheme>:<id>``) and the private channels that reach their owners.

The core owns one scheme, ``web`` (an email address proven on the web). Every other scheme
is declared by the chat platform that issues it, with the private channel (if any) through
which a message reaches that identity's owner, and registered by the composition root. So
the core checks identities and routes private messages knowing no platform by name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from commerce.domain.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class PrivateChannel:
    """How a platform delivers a private message to one of its identities."""

    described: str  # what people call it ("DMs"), as messages name it
    # Channels needing consent carry only subscriptions whose owner opted in, never an
    # order's messages. ``instead`` says what reaches such a person without that consent.
    needs_opt_in: bool = False
    instead: str = ""


@dataclass(frozen=True, slots=True)
class IdentityScheme:
    name: str  # identities look like "<name>:<id>"
    pattern: re.Pattern[str]  # what a valid <id> looks like
    placeholder: str = "<id>"  # how a message about a bad identity shows the <id> part
    casefold: bool = False  # ids compared case-insensitively (email addresses)
    private: PrivateChannel | None = None  # None: its owners read nothing privately here


WEB = IdentityScheme(
    "web", re.compile(r"^[^@\s]{1,64}@[^@\s]{1,250}\.[^@\s]{1,60}$"), "<email>", casefold=True
)


class IdentitySchemes:
    """The schemes this process knows; those with a private channel in order of preference
    (registration order: the first one a person has reaches them)."""

    def __init__(self, *schemes: IdentityScheme) -> None:
        self._schemes: dict[str, IdentityScheme] = {}
        for scheme in schemes:
            self.register(scheme)

    def register(self, scheme: IdentityScheme) -> None:
        """Know ``scheme`` (registering one again replaces it, keeping its place)."""
        self._schemes[scheme.name] = scheme

    def normalize(self, identity: str) -> str:
        """Check and normalise an identity such as ``web:a@b.co``."""
        name, sep, ident = identity.strip().partition(":")
        scheme = self._schemes.get(name.lower()) if sep else None
        if scheme is None:
            known = ", ".join(f"{s.name}:{s.placeholder}" for s in self._schemes.values())
            raise InvalidInput("customer", f"{identity!r} is not an identity ({known})")
        if scheme.casefold:
            ident = ident.lower()
        if not scheme.pattern.match(ident):
            raise InvalidInput("customer", f"{identity!r} is not a valid {scheme.name} identity")
        return f"{scheme.name}:{ident}"

    def private(self, *, opted_in: bool) -> list[IdentityScheme]:
        """The schemes whose owners can be messaged privately, best first; those whose
        channel needs consent only when the person gave it."""
        return [
            s
            for s in self._schemes.values()
            if s.private is not None and (opted_in or not s.private.needs_opt_in)
        ]

    def reach(self, identities: Iterable[str], *, opted_in: bool) -> str | None:
        """The identity, among a person's, that a private message should go to."""
        by_scheme = {i.split(":", 1)[0]: i for i in sorted(identities)}
        return next(
            (by_scheme[s.name] for s in self.private(opted_in=opted_in) if s.name in by_scheme),
            None,
        )

    def scheme_of(self, identity: str) -> IdentityScheme | None:
        return self._schemes.get(identity.split(":", 1)[0])


# The process's schemes: the core's own; the composition root registers the platforms'.
SCHEMES = IdentitySchemes(WEB)
