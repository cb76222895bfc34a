from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from commerce.clock import ManualClock
from commerce.domain.errors import InvalidInput
from commerce.domain.model import Money, normalize_identity
from commerce.dropfile import parse_when, validate_spec
from commerce.links import LinkExpired, LinkInvalid, LinkSigner
from tests.helpers import bundle_spec, capsule_spec, collab_spec


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [("12.00", "USD", 1200), ("0.5", "eur", 50), (3, "USD", 300), ("1500", "JPY", 1500)],
)
def test_money_parses_to_integer_minor_units(amount, currency, minor):
    assert Money.parse(amount, currency).amount_minor == minor


@pytest.mark.parametrize(
    ("amount", "currency"),
    [("1.005", "USD"), ("-1", "USD"), ("abc", "USD"), ("1", "US"), ("1.5", "JPY")],
)
def test_money_refuses_ambiguous_amounts(amount, currency):
    with pytest.raises(InvalidInput):
        Money.parse(amount, currency)


def test_money_formats_with_currency_decimals():
    assert Money(1200, "USD").format() == "12.00 USD"
    assert Money(1500, "JPY").format() == "1500 JPY"


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("discord:123", "discord:123"),
        ("WEB:Ann@Example.COM", "web:ann@example.com"),
        (" twitch:42 ", "twitch:42"),
        ("local:viewer_1", "local:viewer_1"),
    ],
)
def test_identities_are_normalised(raw, normal):
    assert normalize_identity(raw) == normal


@pytest.mark.parametrize("raw", ["discord:abc", "web:not-an-email", "myspace:1", "123", "twitch:"])
def test_bad_identities_are_refused(raw):
    with pytest.raises(InvalidInput):
        normalize_identity(raw)


def test_relative_and_absolute_times():
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert parse_when("+10m", now, "t") == now + timedelta(minutes=10)
    assert parse_when("+90s", now, "t") == now + timedelta(seconds=90)
    assert parse_when("2026-05-01T14:00:00+02:00", now, "t") == now
    with pytest.raises(InvalidInput, match="time zone"):
        parse_when("2026-05-01T14:00:00", now, "t")


def test_specs_of_each_format_validate():
    assert validate_spec(capsule_spec()).drop.format == "capsule"
    assert validate_spec(bundle_spec(3, 2)).items[0].per_bundle == 1
    assert validate_spec(collab_spec(2, 2)).items[0].pools["pickup:corner-deli"] == 2


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (
            lambda s: s["items"].pop() and s["items"].append({"sku": "X", "pools": {}}),
            "items[0].pools",
        ),
        (lambda s: s["drop"].update(hold_seconds=1), "drop.hold_seconds"),
        (lambda s: s["drop"].update(per_customer_limit=0), "drop.per_customer_limit"),
        (lambda s: s["items"][0]["pools"].update({"warehouse": 2}), "items[0].pools"),
        (
            lambda s: s["drop"].update(objective={"metric": "vibes", "target": 1}),
            "drop.objective.metric",
        ),
    ],
)
def test_bad_specs_name_the_field(mutate, field):
    spec = capsule_spec()
    mutate(spec)
    with pytest.raises(InvalidInput) as info:
        validate_spec(spec)
    assert info.value.field == field


def test_a_bundle_needs_two_parts_with_the_same_pools():
    spec = bundle_spec(3, 2)
    spec["items"][1]["pools"] = {"ship": 2, "pickup:x": 1}
    spec["drop"]["format"] = "bundle"
    with pytest.raises(InvalidInput):
        validate_spec(spec)


def test_links_round_trip_and_reject_tampering_and_expiry():
    clock = ManualClock()
    signer = LinkSigner("k" * 32, clock, ttl_seconds=60)
    token, link = signer.issue(7, "discord:123", tag="reminder:5m")
    verified = signer.verify(token)
    assert (verified.drop_id, verified.identity, verified.tag) == (7, "discord:123", "reminder:5m")
    assert verified.claim_key == link.claim_key
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    with pytest.raises(LinkInvalid):
        signer.verify(tampered)
    with pytest.raises(LinkInvalid):
        LinkSigner("other-key" * 4, clock).verify(token)
    clock.advance(61)
    with pytest.raises(LinkExpired):
        signer.verify(token)
