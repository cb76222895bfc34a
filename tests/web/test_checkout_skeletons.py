"""Checkout pages from skeletons: rendered once per drop view and variant, each buyer's
token, form key and times filled in per request. A filled skeleton must be byte for byte
the page a render gives, and nothing of one buyer's may reach another's page."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from commerce.domain.model import Money
from commerce.shipping import ShippingRates
from commerce.web.pages import Method, ship_form
from commerce.web.render import Assets, Skeleton, Templates
from tests.helpers import capsule_spec, live_drop
from tests.web.conftest import CSRF_FIELD, DEFAULT_ADDRESS, HOLD_FIELD, found

TEMPLATES = Templates(Assets())
PAY_ACTION = re.compile(r'action="/c/([^"]+)/pay"')
WAIT_ACTION = re.compile(r'action="/c/([^"]+)/waitlist"')


def held_context(*, ship: bool, qty: int) -> dict[str, Any]:
    unit = Money(1250, "USD")
    rates = ShippingRates("USD", {"US": 500, "CA": 900, "*": 1400})
    return {
        "kind": "held",
        "drop_title": 'Fall "capsule" <1> & co',
        "item_title": "Spicy chips, 6-pack",
        "unit_price": unit,
        "amount": unit * qty,
        "qty": qty,
        "pool": "ship" if ship else "pickup:corner-deli",
        "pool_label": "" if ship else "Pick up at corner-deli",
        "methods": [Method("test", "Pay now (test mode)"), Method("manual", "Pay at pickup")],
        "ship": ship_form(rates, unit * qty, full=True, values={}) if ship else None,
    }


OTHER_PAGES: list[dict[str, Any]] = [
    {
        "kind": "sold_out",
        "drop_title": "Drop <b>",
        "heading": "Sold out",
        "message": "Every unit is taken right now.",
        "waitlist": True,
        "position": None,
    },
    {
        "kind": "closed",
        "drop_title": "Drop & more",
        "heading": "Closed",
        "message": "It's over. Follow the creator for the next one.",
        "waitlist": False,
    },
]

text = st.text(max_size=40)  # any text, marks aside: escaped as the template would
times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=60, deadline=None)
@given(
    ship=st.booleans(),
    qty=st.integers(1, 3),
    token=text,
    csrf=text,
    hold_id=st.integers(1, 10**12),
    now=times,
    expires_at=times,
)
def test_a_filled_held_skeleton_is_the_page_a_render_gives(
    ship: bool, qty: int, token: str, csrf: str, hold_id: int, now: datetime, expires_at: datetime
) -> None:
    shared = held_context(ship=ship, qty=qty)
    slots = {"token": token, "csrf": csrf, "hold_id": hold_id, "now": now}
    slots["expires_at"] = expires_at
    skeleton = TEMPLATES.skeleton("checkout.html", slots, **shared)
    assert skeleton is not None
    assert skeleton.fill(slots) == TEMPLATES.render("checkout.html", **shared, **slots)


@settings(max_examples=30, deadline=None)
@given(which=st.sampled_from(range(len(OTHER_PAGES))), token=text, csrf_wait=text)
def test_filled_sold_out_and_closed_skeletons_are_the_pages_a_render_gives(
    which: int, token: str, csrf_wait: str
) -> None:
    shared = OTHER_PAGES[which]
    slots = {"token": token, "csrf_wait": csrf_wait}
    skeleton = TEMPLATES.skeleton("checkout.html", slots, **shared)
    assert skeleton is not None
    assert skeleton.fill(slots) == TEMPLATES.render("checkout.html", **shared, **slots)


def test_a_page_whose_text_holds_a_mark_has_no_skeleton() -> None:
    shared = {**OTHER_PAGES[0], "drop_title": "odd \x1a title"}
    assert TEMPLATES.skeleton("checkout.html", {"token": "t", "csrf_wait": "w"}, **shared) is None
    assert Skeleton.parse("a\x1atoken\x1ab\x1a", ["token"]) is None  # a mark left alone
    assert Skeleton.parse("a\x1aother\x1ab", ["token"]) is None  # not a slot asked for
    assert Skeleton.parse("a\x1atoken|upper\x1ab", ["token"]) is None  # no such filter


async def test_each_held_page_carries_its_own_link_key_hold_and_address(site):
    """Pages of one drop share a skeleton; each buyer's still pays their own hold, and a
    returning buyer's last address shows on their page alone, before and after others."""
    first = await live_drop(site.commerce, capsule_spec(5))
    token, page = await site.held_page(first, "discord:1")
    paid = await site.pay(token, page, **{**DEFAULT_ADDRESS, "line1": "742 Evergreen Terrace"})
    assert paid.status == 200

    drop_id = await live_drop(site.commerce, capsule_spec(5, title="Second"))
    pages: dict[str, tuple[str, str]] = {}
    for who in ("discord:2", "discord:1", "discord:3"):
        pages[who] = await site.held_page(drop_id, who)
    assert len(site.ctx.skeletons) >= 1  # the strangers' pages came from one skeleton
    assert "742 Evergreen Terrace" in pages["discord:1"][1]
    for who in ("discord:2", "discord:3"):
        assert "742 Evergreen Terrace" not in pages[who][1]
    holds = {found(HOLD_FIELD, page) for _, page in pages.values()}
    keys = {found(CSRF_FIELD, page) for _, page in pages.values()}
    assert len(holds) == len(keys) == 3
    for who, (token, page) in pages.items():
        assert found(PAY_ACTION, page) == token
        assert (await site.pay(token, page)).status == 200, who


async def test_a_buyers_page_never_pays_another_buyers_hold(site):
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    mine, my_page = await site.held_page(drop_id, "discord:1")
    theirs, _ = await site.held_page(drop_id, "discord:2")
    # My page's form posted to their link: the key is bound to my link and hold.
    refused = await site.pay(theirs, my_page)
    assert refused.status == 403
    assert (await site.pay(mine, my_page)).status == 200


async def test_sold_out_pages_each_carry_their_own_waitlist_key(site):
    drop_id = await live_drop(site.commerce, capsule_spec(1))
    await site.held_page(drop_id, "discord:1")
    answers = []
    for who in ("discord:2", "discord:3"):
        token = site.token(drop_id, who)
        response = await site.client.get(f"/c/{token}")
        page = await response.text()
        assert response.status == 409 and found(WAIT_ACTION, page) == token
        answers.append((token, page))
    (token_2, page_2), (token_3, page_3) = answers
    assert found(CSRF_FIELD, page_2) != found(CSRF_FIELD, page_3)
    wrong = await site.client.post(
        f"/c/{token_3}/waitlist", data={"csrf": found(CSRF_FIELD, page_2)}
    )
    assert wrong.status == 403
    for token, page, place in ((token_3, page_3, 1), (token_2, page_2, 2)):
        joined = await site.client.post(
            f"/c/{token}/waitlist", data={"csrf": found(CSRF_FIELD, page)}
        )
        assert joined.status == 200
        assert f"number <strong>{place}</strong>" in await joined.text()


async def test_a_hold_page_counts_down_from_its_own_hold(site):
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    _, first = await site.held_page(drop_id, "discord:1")
    site.clock.advance(20)
    _, second = await site.held_page(drop_id, "discord:2")
    assert 'data-deadline="2026-01-01T12:01:00Z"' in first
    assert 'data-deadline="2026-01-01T12:01:20Z"' in second
    assert 'data-server-time="2026-01-01T12:00:20Z"' in second
    assert "until 12:01:20 UTC" in second
