"""The core's identity schemes: it checks identities and picks the private channel that
reaches a person only from what the platforms declared, in their order of preference."""

from __future__ import annotations

import re

import pytest

from commerce.domain.errors import InvalidInput
from commerce.domain.identities import WEB, IdentityScheme, IdentitySchemes, PrivateChannel

DIGITS = re.compile(r"^\d{1,20}$")
DMS = IdentityScheme("dms", DIGITS, private=PrivateChannel("DMs"))
WHISPERS = IdentityScheme(
    "whispers", DIGITS, private=PrivateChannel("whispers", needs_opt_in=True, instead="link")
)


def test_only_registered_schemes_are_identities() -> None:
    schemes = IdentitySchemes(WEB)
    with pytest.raises(InvalidInput, match="is not an identity"):
        schemes.normalize("dms:1")
    schemes.register(DMS)
    assert schemes.normalize(" DMS:1 ") == "dms:1"
    assert schemes.normalize("web:Ann@Example.COM") == "web:ann@example.com"
    with pytest.raises(InvalidInput, match="not a valid dms identity"):
        schemes.normalize("dms:abc")


def test_private_messages_go_by_the_first_registered_channel_and_consent_is_asked_for() -> None:
    schemes = IdentitySchemes(WEB, DMS, WHISPERS)
    assert schemes.reach(["web:a@b.co", "whispers:2", "dms:1"], opted_in=False) == "dms:1"
    assert schemes.reach(["web:a@b.co", "whispers:2"], opted_in=False) is None
    assert schemes.reach(["web:a@b.co", "whispers:2"], opted_in=True) == "whispers:2"
    assert [s.name for s in schemes.private(opted_in=True)] == ["dms", "whispers"]
