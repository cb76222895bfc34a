"""The one command set: parsing, permissions, and what each command does to the core."""

from __future__ import annotations

import asyncio

import pytest

from bot.commands import Command, CommandError, CommandHandler, parse
from bot.messages import ChatUser
from commerce.dropfile import validate_spec
from tests.helpers import capsule_spec, eventually, links, live_drop

VIEWER = ChatUser("discord:111", "ann")
CREATOR = ChatUser("twitch:999", "creator", is_creator=True)


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("!drop", Command("drop")),
        ("!drop 3", Command("drop", ("3",))),
        ("!buy", Command("buy")),
        ("!BUY chips-spicy", Command("buy", ("chips-spicy",))),
        ("!stock", Command("stock")),
        ("!waitlist", Command("waitlist")),
        ("!drop start 4", Command("drop.start", ("4",))),
        ("!drop open 4", Command("drop.start", ("4",))),
        (
            "!drop restock 4 CHIPS 3 pickup:deli",
            Command("drop.restock", ("4", "CHIPS", "3", "pickup:deli")),
        ),
        ("!drop new friday", Command("drop.new", ("friday",))),
        ("hello chat", None),
        ("!so streamer", Command("unknown", ("so",))),  # answered with help, rate-limited
        ("! hello", None),
    ],
)
def test_parse(line, command):
    assert parse(line) == command


def test_parse_refuses_unknown_drop_actions_with_usage():
    with pytest.raises(CommandError, match="Unknown drop command"):
        parse("!drop explode 1")


@pytest.fixture
def handler(commerce):
    return CommandHandler(
        commerce,
        links(lambda drop_id, who: f"https://x.test/c/{drop_id}-{who}"),
        public_url="https://x.test",
    )


async def test_buy_holds_and_answers_privately_with_a_personal_link(handler, commerce):
    drop_id = await live_drop(commerce, capsule_spec(2))
    out = await handler.handle(VIEWER, "!buy", message_id="m1")
    (reply,) = out.replies
    assert reply.kind == "held" and reply.private
    assert reply.personal_link == f"https://x.test/c/{drop_id}-discord:111"
    assert "{at}" in reply.text and reply.at is not None
    # The same chat message delivered twice (a platform retry) makes no second hold.
    again = await handler.handle(VIEWER, "!buy", message_id="m1")
    assert again.replies[0].kind == "held"
    view = await commerce.drops.view(drop_id)
    assert view.stock[0].held == 1


async def test_buy_when_sold_out_points_to_the_waitlist(handler, commerce):
    await live_drop(commerce, capsule_spec(1))
    await handler.handle(ChatUser("discord:1", "first"), "!buy", message_id="a")
    out = await handler.handle(VIEWER, "!buy", message_id="b")
    assert out.replies[0].kind == "sold_out" and "!waitlist" in out.replies[0].text
    out = await handler.handle(VIEWER, "!waitlist", message_id="c")
    assert "number 1 in line" in out.replies[0].text


async def test_buy_before_opening_says_when(handler, commerce):
    await commerce.drops.create(validate_spec(capsule_spec(2, opens_at="+5m")))
    out = await handler.handle(VIEWER, "!buy", message_id="x")
    assert out.replies[0].kind == "not_open" and out.replies[0].at is not None


async def test_unknown_sku_and_bad_arguments_get_a_short_reply_and_change_nothing(
    handler, commerce
):
    drop_id = await live_drop(commerce, capsule_spec(2))
    out = await handler.handle(VIEWER, "!buy NOPE", message_id="1")
    assert out.replies[0].kind == "error" and "NOPE" in out.replies[0].text
    out = await handler.handle(CREATOR, "!drop restock 1 CHIPS-SPICY many", message_id="2")
    assert "must be a number" in out.replies[0].text
    out = await handler.handle(CREATOR, "!drop close", message_id="3")
    assert "Usage" in out.replies[0].text
    view = await commerce.drops.view(drop_id)
    assert (view.stock[0].total, view.stock[0].held) == (2, 0)


async def test_a_viewer_cannot_steer_a_drop(handler, commerce):
    drop_id = await live_drop(commerce, capsule_spec(2))
    out = await handler.handle(VIEWER, f"!drop close {drop_id}", message_id="1")
    assert "Only the creator" in out.replies[0].text
    assert (await commerce.drops.get(drop_id)).state == "live"


async def test_creator_commands_steer_the_drop(handler, commerce, tmp_path):
    drop_id = await commerce.drops.create(validate_spec(capsule_spec(2)))
    assert (
        "is live"
        in (await handler.handle(CREATOR, f"!drop start {drop_id}", message_id="1")).replies[0].text
    )
    out = await handler.handle(CREATOR, f"!drop restock {drop_id} chips-spicy 3", message_id="2")
    assert "Restocked 3" in out.replies[0].text
    assert (await commerce.drops.view(drop_id)).stock[0].total == 5
    out = await handler.handle(CREATOR, "!stock", message_id="3")
    assert "5 of 5 left" in out.replies[0].text
    assert (
        "is closed"
        in (await handler.handle(CREATOR, f"!drop close {drop_id}", message_id="4")).replies[0].text
    )


async def test_drop_new_creates_a_prepared_drop(commerce, tmp_path):
    (tmp_path / "friday.toml").write_text(
        '[drop]\ntitle = "Friday"\n[[products]]\nsku = "F1"\ntitle = "F"\nprice = "1"\n'
        '[[items]]\nsku = "F1"\npools = { ship = 3 }\n'
    )
    handler = CommandHandler(
        commerce, links(lambda d, w: ""), public_url="https://x", drops_dir=tmp_path
    )
    out = await handler.handle(CREATOR, "!drop new friday", message_id="1")
    assert out is not None
    assert "created from friday.toml" in out.replies[0].text
    out = await handler.handle(CREATOR, "!drop new ../etc/passwd", message_id="2")
    assert out is not None
    assert "Drop names are" in out.replies[0].text
    out = await handler.handle(CREATOR, "!drop new missing", message_id="3")
    assert out is not None
    assert "no prepared drop" in out.replies[0].text


async def test_the_first_buy_in_chat_holds_though_its_buyer_is_slower_to_look_up(handler, commerce):
    """Arrival order, not the order lookups finish: ann's platform check is slow (a
    first-time buyer's lookup can be), and bo and cy, who typed !buy after her, wait."""
    drop_id = await live_drop(commerce, capsule_spec(1))
    commerce.claims.line.patience = 3600
    ann_checked = asyncio.Event()

    async def slow_for_ann(user):
        if user.name == "ann":
            await ann_checked.wait()
        return True

    handler.reachability["twitch"] = slow_for_ann
    lines = [
        asyncio.create_task(handler.handle(ChatUser(f"twitch:{n}", name), "!buy", message_id=name))
        for n, name in enumerate(("ann", "bo", "cy"))
    ]
    await eventually(lambda: commerce.claims.queued(drop_id) == 2, what="bo and cy queued")
    ann_checked.set()
    ann, bo, cy = [(await line).replies[0] for line in lines]
    assert ann.kind == "held"
    assert "sold out" in bo.text.lower() and "sold out" in cy.text.lower()


async def test_someone_a_pay_link_cannot_reach_is_sent_to_the_drop_page_not_held(handler, commerce):
    drop_id = await live_drop(commerce, capsule_spec(1))

    async def nobody(_user):
        return False

    handler.reachability["twitch"] = nobody
    viewer = ChatUser("twitch:77", "tw")
    for line in ("!buy", "!waitlist"):
        out = await handler.handle(viewer, line, message_id=line)
        assert out.replies[0].kind == "claim_elsewhere"
        assert out.replies[0].public_link == f"https://x.test/d/{drop_id}"
        assert out.replies[0].personal_link is None
    bad = await handler.handle(viewer, "!buy NOPE", message_id="bad")
    assert bad.replies[0].kind == "error"  # bad input is still named as such
    view = await commerce.drops.view(drop_id)
    assert (view.stock[0].held, view.waiting) == (0, 0)
    # Other platforms are unaffected.
    assert (await handler.handle(VIEWER, "!buy", message_id="d1")).replies[0].kind == "held"
