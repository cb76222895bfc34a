"""Chat tells the truth (issue 9, chat side): one answer for an instant waitlist hold,
bundles counted as bundles, one headline per drop state, relative times that read right,
"paid" where a pay message can be edited, help for unknown commands without flooding,
a lone pool in ``!buy``, and money in the reader's locale (both engines)."""

from __future__ import annotations

import itertools
import re
from datetime import timedelta

import pytest

from bot.commands import CommandHandler
from bot.hub import ChatHub
from bot.messages import Button, ChatUser, Message
from bot.presenter import Presenter
from bot.twitch.outlet import render as twitch_render
from commerce.dropfile import validate_spec
from commerce.views import Phase, drop_status
from tests.helpers import bundle_spec, capsule_spec, collab_spec, links, live_drop

BASE = "https://x.test"
ANN = ChatUser("local:ann", "ann")
BOB = ChatUser("local:bob", "bob")
CREATOR = ChatUser("local:boss", "boss", is_creator=True)


class Outlet:
    """Records what the hub sends, as an outlet that can edit its posts and private messages."""

    platform = "local"

    def __init__(self) -> None:
        self.posts: list[Message] = []
        self.edits: list[tuple[str, Message]] = []
        self.private: list[tuple[str, Message]] = []
        self.private_edits: list[tuple[int, Message]] = []

    async def post(self, message: Message) -> str | None:
        self.posts.append(message)
        return f"h{len(self.posts)}"

    async def edit(self, handle: str, message: Message) -> None:
        self.edits.append((handle, message))

    async def send_private(self, identity: str, message: Message, key: str | None = None) -> bool:
        self.private.append((identity, message))
        return True

    async def edit_private(self, hold_id: int, message: Message) -> None:
        self.private_edits.append((hold_id, message))

    def handle_of(self, kind: str) -> str:
        return next(f"h{i + 1}" for i, m in enumerate(self.posts) if m.kind == kind)

    def edits_of(self, handle: str) -> list[Message]:
        return [m for h, m in self.edits if h == handle]


def url(drop_id: int, who: str) -> str:
    return f"{BASE}/c/{drop_id}/{who}"


@pytest.fixture
def handler(commerce):
    return CommandHandler(commerce, links(url), public_url=BASE)


@pytest.fixture
async def chat(commerce, handler):
    """The handler and a started hub wired as the composition root wires them."""
    outlet = Outlet()
    hub = ChatHub(
        commerce,
        Presenter(commerce, BASE),
        links(url),
        thresholds=[5, 3, 1],
        edit_interval=0.01,
    )
    hub.add_outlet(outlet)
    await hub.start()
    try:
        yield handler, hub, outlet
    finally:
        await hub.stop()


_ids = itertools.count(1)


async def say(handler: CommandHandler, user: ChatUser, text: str) -> Message:
    out = await handler.handle(user, text, message_id=f"m{next(_ids)}")
    assert out is not None, text
    (reply,) = out.replies
    return reply


def no_bad_relative_time(text: str) -> None:
    """How a chat without native timestamps (Twitch, studio) reads ``{at}``."""
    assert not re.search(r"\buntil (in|\d)", text), text
    assert not re.search(r"\b(opens|starts|expires) [^.]*\bago\b", text), text


# -- item 5: !waitlist with a unit free ------------------------------------------------------


async def test_waitlist_with_a_unit_free_answers_once_and_calls_it_a_hold(chat, commerce):
    handler, hub, outlet = chat
    drop_id = await live_drop(commerce, capsule_spec(2))

    reply = await say(handler, ANN, "!waitlist")
    await hub.drain()

    assert (
        reply.kind == "held" and reply.private and reply.personal_link == url(drop_id, ANN.identity)
    )
    assert "no need to wait" in reply.text and "is free, so it's yours now" in reply.text
    assert "freed up" not in reply.text
    assert outlet.private == []  # no second, "freed up" offer from the hub
    view = await commerce.drops.view(drop_id)
    assert view.counts().held == 1


async def test_a_real_waitlist_offer_still_reaches_the_customer_once(chat, commerce, clock):
    handler, hub, outlet = chat
    drop_id = await live_drop(commerce, capsule_spec(1, hold_seconds=30))
    await say(handler, ANN, "!buy")
    queued = await say(handler, BOB, "!waitlist")
    assert "number 1 in line" in queued.text and "privately if a unit frees up" in queued.text

    clock.advance(31)
    await commerce.claims.expire_due()
    await hub.drain()

    ((identity, offer),) = outlet.private
    assert identity == BOB.identity and offer.kind == "waitlist_offer"
    assert "freed up" in offer.text and offer.hold_id is not None
    assert offer.personal_link == url(drop_id, BOB.identity)


# -- item 7: bundles are counted and named as bundles ----------------------------------------


async def test_a_bundle_drop_speaks_of_bundles_in_every_chat_message(chat, commerce):
    handler, hub, outlet = chat
    drop_id = await live_drop(commerce, bundle_spec(chips=5, salsa=3))  # 3 bundles, 8 units
    await hub.drain()  # the live post is up before anyone buys

    status = await say(handler, ANN, "!drop")
    stock = await say(handler, ANN, "!stock")
    held = await say(handler, ANN, "!buy")
    for n, who in enumerate(("local:c1", "local:c2")):
        await say(handler, ChatUser(who, f"c{n}"), "!buy")
    sold_out = await say(handler, BOB, "!buy")
    await commerce.drops.close(drop_id)
    await hub.drain()

    assert "3 of 3 bundles left" in status.text and "of 8" not in status.text
    assert "3 of 3 bundles left" in stock.text
    assert "a bundle is yours" in held.text and held.unit == "bundle"
    assert "unit" not in held.text
    assert "if a bundle frees up" in sold_out.text
    live = outlet.posts[0]
    assert live.kind == "live" and "3 of 3 bundles left" in live.text
    ticks = [m.text for m in outlet.posts if m.kind == "tick"]
    assert ticks and all("bundle" in t for t in ticks)
    assert any(m.text.startswith("Only 1 bundle left") for m in outlet.posts)
    recap = outlet.posts[-1]
    assert recap.kind == "closed" and ("Sold", "0 of 3 bundles") in recap.fields
    assert "0 of 3 sold" in recap.text
    sold = next(m for m in outlet.posts if m.kind == "sold_out")
    assert "Every bundle is taken" in sold.text


# -- item 8: one headline and action per drop state ------------------------------------------


async def test_every_drop_state_has_the_one_headline_and_action_of_drop_status(
    handler, commerce, clock
):
    drop_id = await commerce.drops.create(validate_spec(capsule_spec(2, opens_at="+10m")))
    seen = {}

    async def check(expected: Phase) -> None:
        view = await commerce.drops.view(drop_id)
        status = drop_status(view)
        assert status.phase is expected
        for command in (f"!drop {drop_id}", f"!stock {drop_id}"):
            reply = await say(handler, ANN, command)
            assert reply.status == status, command
            assert reply.text.startswith(f"{status.headline.upper()}: {view.drop.title}")
            want = {
                "claim": (Button.BUY,),
                "waitlist": (Button.WAITLIST,),
                "remind": (Button.REMIND,),
                "none": (),
            }[status.action.value]
            assert reply.buttons == want, (expected, command)
        seen[expected] = reply.text

    await check(Phase.SCHEDULED)
    await commerce.drops.open(drop_id)
    await check(Phase.LIVE)
    await say(handler, ANN, "!buy")
    await say(handler, BOB, "!buy")
    await check(Phase.SOLD_OUT)
    await commerce.drops.restock(drop_id, "CHIPS-SPICY", 1)
    await check(Phase.LIVE)  # live again after a restock
    await commerce.drops.close(drop_id)
    await check(Phase.CLOSED)

    assert seen[Phase.SCHEDULED].startswith("STARTING SOON")
    assert "Type !waitlist" in seen[Phase.SOLD_OUT]
    assert seen[Phase.CLOSED].startswith("CLOSED") and "!buy" not in seen[Phase.CLOSED]


async def test_a_closed_drop_never_keeps_a_live_post_saying_live(chat, commerce):
    handler, hub, outlet = chat
    drop_id = await live_drop(commerce, capsule_spec(5))
    await say(handler, ANN, "!buy")
    await hub.drain()
    live = outlet.handle_of("live")

    await say(handler, CREATOR, f"!drop close {drop_id}")
    await hub.drain()

    final = outlet.edits_of(live)[-1]
    assert final.text.startswith("CLOSED") and final.buttons == ()
    assert final.status == drop_status(await commerce.drops.view(drop_id))
    recap = outlet.posts[-1]
    assert recap.kind == "closed" and recap.text.startswith("CLOSED")


async def test_the_live_post_goes_from_live_to_sold_out_and_back_after_a_restock(chat, commerce):
    handler, hub, outlet = chat
    drop_id = await live_drop(commerce, capsule_spec(1))
    await say(handler, ANN, "!buy")
    await hub.drain()
    live = outlet.handle_of("live")
    assert outlet.edits_of(live)[-1].text.startswith("SOLD OUT")

    await commerce.drops.restock(drop_id, "CHIPS-SPICY", 2)
    await hub.drain()

    again = outlet.edits_of(live)[-1]
    assert again.text.startswith("LIVE NOW") and "2 of 3 left" in again.text
    assert again.buttons == (Button.BUY,)


# -- item 9: relative times, announcements, paid, help, pools, money -------------------------


async def test_relative_times_read_right_where_chat_has_no_timestamps(chat, commerce, clock):
    handler, hub, outlet = chat
    later = await commerce.drops.create(validate_spec(capsule_spec(1, opens_at="+5m")))
    not_open = await say(handler, ANN, "!buy")
    scheduled = await say(handler, ANN, f"!drop {later}")
    await commerce.drops.open(later)
    held = await say(handler, ANN, "!buy")
    queued = await say(handler, BOB, "!waitlist")
    await commerce.claims.cancel_hold(held.hold_id)  # Bob gets an offer
    await hub.drain()
    now = clock.now()

    texts = [m for m in (not_open, scheduled, held, queued) if m.at] + [
        m for _, m in outlet.private
    ]
    assert len(texts) >= 4
    for message in texts:
        no_bad_relative_time(twitch_render(message, now))


async def test_once_live_the_announcement_and_countdowns_stop_saying_opens(chat, commerce, clock):
    _, hub, outlet = chat
    drop_id = await commerce.drops.create(validate_spec(capsule_spec(3, opens_at="+5m")))
    await hub.countdown(drop_id, 60)
    await hub.drain()
    announcement, countdown = outlet.handle_of("announcement"), outlet.handle_of("countdown")
    assert "opens {at}" in outlet.posts[0].text

    clock.advance(300)
    await commerce.drops.open(drop_id)
    await hub.drain()
    clock.advance(120)

    for handle in (announcement, countdown):
        (note,) = outlet.edits_of(handle)
        shown = twitch_render(note, clock.now())
        assert shown.startswith("Spicy chips capsule opened 2 min ago"), shown
        assert "opens" not in shown and note.buttons == ()
    # A countdown that arrives late, once the drop is live, is not posted at all.
    await hub.countdown(drop_id, 10)
    await hub.drain()
    assert [m.kind for m in outlet.posts].count("countdown") == 1

    await commerce.drops.close(drop_id)
    await hub.drain()
    for handle in (announcement, countdown):
        assert outlet.edits_of(handle)[-1].text.startswith("CLOSED")


async def test_an_announcement_handled_after_the_drop_opened_is_not_posted(commerce):
    drop_id = await live_drop(commerce, capsule_spec(3))
    presenter = Presenter(commerce, BASE)
    assert presenter.announcement(await commerce.drops.view(drop_id)) is None


async def test_a_scheduled_drop_past_its_time_says_any_moment_not_ago(handler, commerce, clock):
    drop_id = await commerce.drops.create(validate_spec(capsule_spec(3, opens_at="+1m")))
    clock.advance(90)  # the opener is a moment late
    reply = await say(handler, ANN, f"!drop {drop_id}")
    assert "opening any moment now" in reply.text and reply.at is None


async def test_paying_turns_the_private_pay_messages_into_paid(chat, commerce):
    handler, hub, outlet = chat
    drop_id = await live_drop(commerce, capsule_spec(2))
    held = await say(handler, ANN, "!buy")
    customer = await commerce.customers.find(ANN.identity)

    order = await commerce.orders.checkout(held.hold_id, customer, "test")
    await commerce.orders.confirm_payment(order.id, "pi_paid_edit")
    await hub.drain()

    ((hold_id, paid),) = outlet.private_edits
    assert hold_id == held.hold_id
    assert paid.kind == "paid" and paid.personal_link is None and paid.private
    assert paid.text.startswith("Paid") and f"order #{order.id}" in paid.text
    assert drop_id == paid.drop_id


async def test_unknown_commands_get_short_help_rate_limited_per_person_and_channel(
    handler, commerce, clock
):
    out = await handler.handle(ANN, "!foo", message_id="1", channel="c1")
    (reply,) = out.replies
    assert "!foo" in reply.text and "!buy" in reply.text and "!drop" in reply.text
    assert len(reply.text) < 200

    # A spammer gets nothing more for a while, and neither does the rest of the channel.
    assert await handler.handle(ANN, "!foo", message_id="2", channel="c1") is None
    assert await handler.handle(BOB, "!bar", message_id="3", channel="c1") is None
    assert (await handler.handle(BOB, "!bar", message_id="4", channel="c2")) is not None
    clock.advance(handler.help_throttle.per_channel + 1)
    assert (await handler.handle(BOB, "!bar", message_id="5", channel="c1")) is None  # Bob: c2
    assert (await handler.handle(CREATOR, "!baz", message_id="6", channel="c1")) is not None
    assert await handler.handle(ANN, "!foo", message_id="7", channel="c3") is None
    clock.advance(handler.help_throttle.per_user)
    assert (await handler.handle(ANN, "!foo", message_id="8", channel="c3")) is not None
    # Ordinary chat and our own commands are unaffected.
    assert await handler.handle(ANN, "hello !foo", message_id="9", channel="c1") is None
    assert await handler.handle(ANN, "! hello", message_id="10", channel="c1") is None
    assert (await handler.handle(ANN, "!help", message_id="11", channel="c1")).replies


@pytest.mark.parametrize("command", ["buy", "waitlist"])
async def test_a_lone_pool_claims_that_pool_of_the_drops_one_item(handler, commerce, command):
    drop_id = await live_drop(commerce, collab_spec(ship=2, pickup=2))

    reply = await say(handler, ANN, f"!{command} pickup:corner-deli")

    assert reply.kind == "held", reply.text
    view = await commerce.drops.view(drop_id)
    held = {line.pool: line.held for line in view.stock}
    assert held == {"ship": 0, "pickup:corner-deli": 1}


async def test_money_reads_in_the_readers_locale_and_the_drops_currency(handler, commerce):
    spec = capsule_spec(2)
    spec["products"][0]["currency"] = "EUR"
    drop_id = await live_drop(commerce, spec)

    german = await say(handler, ChatUser("local:lena", "lena", locale="de-DE"), "!drop")
    nobody = await say(handler, ANN, "!drop")
    posted = Presenter(commerce, BASE).live(await commerce.drops.view(drop_id))

    assert "12,00\xa0€" in german.text
    assert "€12.00" in nobody.text and "€12.00" in posted.text
    assert "EUR" not in german.text + nobody.text + posted.text


async def test_a_configured_chat_locale_is_the_default_for_readers_without_one(commerce):
    handler = CommandHandler(commerce, links(url), public_url=BASE, locale="de_DE")
    await live_drop(commerce, capsule_spec(2))
    assert "12,00\xa0$" in (await say(handler, ANN, "!drop")).text
    us = ChatUser("local:sam", "sam", locale="en-US")
    assert "$12.00" in (await say(handler, us, "!drop")).text


async def test_held_messages_expire_relative_to_the_hold_not_until(handler, commerce, clock):
    await live_drop(commerce, capsule_spec(2, hold_seconds=60))
    held = await say(handler, ANN, "!buy")
    shown = twitch_render(held, clock.now())
    assert "the hold expires in 1 min" in shown and "until" not in shown
    later = twitch_render(held, clock.now() + timedelta(seconds=30))
    assert "the hold expires in 30 s" in later
