"""A link is checked with the key derived once (``LinkSigner``'s own verifier), and must
accept and refuse exactly what itsdangerous, which issues the links, would."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from itsdangerous import BadData, URLSafeSerializer

from commerce.clock import ManualClock
from commerce.links import LinkInvalid, LinkSigner

SECRET = "k" * 32
SALT = "dropcast.claim-link"  # LinkSigner's; a link made under another salt is not a link

payloads = st.lists(
    st.one_of(st.integers(), st.text(max_size=300), st.booleans(), st.none()), max_size=8
)


def reference(token: str) -> object:
    """What itsdangerous makes of ``token``, or the exception type it raises."""
    try:
        return URLSafeSerializer(SECRET, salt=SALT).loads(token)
    except BadData as exc:
        return type(exc)


def ours(token: str) -> object:
    try:
        return LinkSigner(SECRET, ManualClock())._verifier.loads(token)
    except BadData as exc:
        return type(exc)


@settings(max_examples=200)
@given(payload=payloads)
def test_a_link_reads_as_itsdangerous_reads_it_compressed_or_not(payload: list[object]) -> None:
    token = URLSafeSerializer(SECRET, salt=SALT).dumps(payload)
    assert ours(token) == reference(token) == payload


@settings(max_examples=300)
@given(payload=payloads, at=st.integers(min_value=0), char=st.sampled_from("A_-.9z=+/é"))
def test_a_changed_link_is_refused_exactly_when_itsdangerous_refuses_it(
    payload: list[object], at: int, char: str
) -> None:
    token = URLSafeSerializer(SECRET, salt=SALT).dumps(payload)
    at %= len(token)
    changed = token[:at] + char + token[at + 1 :]
    assert ours(changed) == reference(changed)


@pytest.mark.parametrize(
    "token",
    [
        "",
        ".",
        "abc",
        "abc.",
        ".abc",
        "..",
        URLSafeSerializer("another secret", salt=SALT).dumps([1, "discord:1", 9, "n"]),
        URLSafeSerializer(SECRET, salt="dropcast.unsubscribe").dumps(["u", 1]),
    ],
)
def test_what_is_not_a_link_of_ours_is_refused_by_both(token: str) -> None:
    assert isinstance(reference(token), type)
    assert ours(token) == reference(token)
    with pytest.raises(LinkInvalid):
        LinkSigner(SECRET, ManualClock()).verify(token)


def test_the_signatures_last_character_is_read_as_itsdangerous_reads_it() -> None:
    """The last base64 character of a 20-byte signature carries spare bits: itsdangerous
    decodes before comparing, so a few spellings of it pass. Ours must agree exactly."""
    token = URLSafeSerializer(SECRET, salt=SALT).dumps([0, True, False])
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    passing = 0
    for char in alphabet:
        changed = token[:-1] + char
        assert ours(changed) == reference(changed), changed
        passing += ours(changed) == [0, True, False]
    assert passing > 1  # the spare bits: more than the issued spelling passes
