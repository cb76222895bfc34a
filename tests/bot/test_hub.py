"""The chat hub: announcements, thresholds, coalesced edits, sold out never dropped."""

from __future__ import annotations

import asyncio

from bot.hub import ChatHub
from bot.messages import Message
from bot.presenter import Presenter
from bot.recap import RecapChart
from tests.helpers import capsule_spec, customers, eventually, links, live_drop


class RecordingOutlet:
    platform = "local"

    def __init__(self) -> None:
        self.posts: list[Message] = []
        self.edits: list[tuple[str, Message]] = []
        self.private: list[tuple[str, Message]] = []

    async def post(self, message: Message) -> str | None:
        self.posts.append(message)
        return f"h{len(self.posts)}"

    async def edit(self, handle: str, message: Message) -> None:
        self.edits.append((handle, message))

    async def send_private(self, identity: str, message: Message, key: str | None = None) -> bool:
        self.private.append((identity, message))
        return True

    async def edit_private(self, hold_id: int, message: Message) -> None:
        return None


async def make_hub(commerce, edit_interval=0.05):
    outlet = RecordingOutlet()
    hub = ChatHub(
        commerce,
        Presenter(commerce, "https://x.test"),
        links(lambda d, who: f"https://x.test/c/{who}"),
        thresholds=[5, 3, 1],
        edit_interval=edit_interval,
        chart=RecapChart(commerce.analytics),
    )
    hub.add_outlet(outlet)
    await hub.start()
    return hub, outlet


async def test_a_burst_of_sales_posts_only_thresholds_and_sold_out(commerce):
    hub, outlet = await make_hub(commerce)
    drop_id = await live_drop(commerce, capsule_spec(8))
    buyers = await customers(commerce, 12)
    await asyncio.gather(*(commerce.claims.claim(drop_id, c) for c in buyers))
    await hub.drain()
    kinds = [m.kind for m in outlet.posts]
    assert kinds[0] == "live"
    assert kinds.count("sold_out") == 1
    assert kinds.count("tick") <= 3  # thresholds 5, 3, 1 at most
    # Edits are coalesced into far fewer calls than sales, and the last one is current.
    assert 1 <= len(outlet.edits) < 8
    assert outlet.edits[-1][0] == "h1"
    assert "sold out" in outlet.edits[-1][1].text.lower()
    await hub.stop()


class SlowEditOutlet(RecordingOutlet):
    """Its first edit of the live post hangs until let go, as a slow platform call does."""

    def __init__(self) -> None:
        super().__init__()
        self.let_go = asyncio.Event()
        self.hanging = False

    async def edit(self, handle: str, message: Message) -> None:
        if not self.let_go.is_set():
            self.hanging = True
            await self.let_go.wait()
        await super().edit(handle, message)


async def test_sales_made_while_an_edit_is_under_way_still_reach_the_live_post(commerce):
    """The live post ends on the last count, though the edit that was under way when the
    last sales came in had read the stock before them."""
    outlet = SlowEditOutlet()
    hub = ChatHub(
        commerce,
        Presenter(commerce, "https://x.test"),
        links(lambda d, who: f"https://x.test/c/{who}"),
        thresholds=[],
        edit_interval=0.0,
    )
    hub.add_outlet(outlet)
    await hub.start()
    drop_id = await live_drop(commerce, capsule_spec(3))
    first, *rest = await customers(commerce, 3)
    await commerce.claims.claim(drop_id, first)
    await eventually(lambda: outlet.hanging, what="the first edit under way")
    for buyer in rest:
        await commerce.claims.claim(drop_id, buyer)
    await eventually(lambda: any(m.kind == "sold_out" for m in outlet.posts), what="sold out")
    outlet.let_go.set()
    await hub.drain()
    handle, last = outlet.edits[-1]
    assert handle == "h1" and "sold out" in last.text.lower()
    await hub.stop()


async def test_waitlist_offers_go_privately_to_the_customer(commerce, clock):
    hub, outlet = await make_hub(commerce)
    drop_id = await live_drop(commerce, capsule_spec(1, hold_seconds=30))
    holder = await commerce.customers.resolve("local:holder")
    waiter = await commerce.customers.resolve("local:waiter")
    await commerce.claims.claim(drop_id, holder)
    await commerce.claims.join_waitlist(drop_id, waiter)
    clock.advance(31)
    await commerce.claims.expire_due()
    await hub.drain()
    ((identity, message),) = outlet.private
    assert identity == "local:waiter"
    assert message.personal_link == "https://x.test/c/local:waiter"
    assert all(m.personal_link is None for m in outlet.posts)  # never in public
    await hub.stop()


async def test_closing_posts_a_recap(commerce):
    hub, outlet = await make_hub(commerce)
    drop_id = await live_drop(commerce, capsule_spec(2))
    await commerce.drops.close(drop_id)
    await hub.drain()
    recap = outlet.posts[-1]
    assert recap.kind == "closed" and "0 of 2 sold" in recap.text
    assert recap.image is not None and recap.image.startswith(b"\x89PNG\r\n\x1a\n")
    await hub.stop()


async def test_restock_reaches_the_waitlist_privately_in_order_before_the_public_post(commerce):
    timeline: list[tuple[str, str]] = []

    class TimelineOutlet(RecordingOutlet):
        async def post(self, message):
            timeline.append(("post", message.kind))
            return await super().post(message)

        async def send_private(self, identity, message, key=None):
            timeline.append(("private", identity))
            return await super().send_private(identity, message)

    outlet = TimelineOutlet()
    hub = ChatHub(
        commerce,
        Presenter(commerce, "https://x.test"),
        links(lambda d, who: f"https://x.test/c/{who}"),
        thresholds=[1],
        edit_interval=0.05,
    )
    hub.add_outlet(outlet)
    await hub.start()
    drop_id = await live_drop(commerce, capsule_spec(1))
    holder = await commerce.customers.resolve("local:holder")
    await commerce.claims.claim(drop_id, holder)
    waiters = ["local:w1", "local:w2", "local:w3", "local:w4"]
    for who in waiters:
        await commerce.claims.join_waitlist(drop_id, await commerce.customers.resolve(who))
    await hub.drain()
    timeline.clear()

    await commerce.drops.restock(drop_id, "CHIPS-SPICY", 3)
    await hub.drain()

    privates = [who for kind, who in timeline if kind == "private"]
    assert privates == waiters[:3]  # queue order, one personal link each
    restocked = timeline.index(("post", "restocked"))
    assert all(timeline.index(("private", who)) < restocked for who in waiters[:3])
    assert all(m.personal_link for _, m in outlet.private)
    await hub.stop()
