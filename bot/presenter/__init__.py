"""Domain events and drop state → neutral chat messages (announcement, countdown, live,
sold out, status, stock, recap, paid).

Every line about a drop's state leads with the one headline of ``commerce.views.drop_status``
(in capitals in chat: "LIVE NOW", "SOLD OUT") and offers its one action, so chat never
contradicts the drop page, the overlay or the studio. Counts are claim units: whole bundles
for a bundle drop. Money is the drop's currency in the reader's locale.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

from bot.messages import Button, Message, a_unit
from commerce.analytics.metrics import actual_text, goal_text
from commerce.core import Commerce
from commerce.domain.events import (
    ClipReady,
    DropClosed,
    DropOpened,
    DropScheduled,
    Event,
    OrderPaid,
    Restocked,
    SoldOut,
    WaitlistOffered,
)
from commerce.domain.model import (
    Clip,
    ClipReason,
    DropFormat,
    DropView,
    Money,
    Order,
    OrderStatus,
)
from commerce.links import drop_page_url
from commerce.money_format import format_money
from commerce.shipping import pickup_point, tracking_url
from commerce.views import Action, DropStatus, Phase, drop_status, left_text

log = logging.getLogger(__name__)

_BUTTONS = {
    Action.CLAIM: (Button.BUY,),
    Action.WAITLIST: (Button.WAITLIST,),
    Action.REMIND: (Button.REMIND,),
    Action.NONE: (),
}


# What a clip of the stream shows, as the replay and the recap name it.
CLIP_MOMENTS = {
    ClipReason.SOLD_OUT: "the sell-out",
    ClipReason.OPENED: "the drop going live",
    ClipReason.COMMAND: "the creator's clip",
}


def clip_links(found: list[Clip]) -> str:
    """The ready clips of a drop as a recap field: "the sell-out: URL · …"."""
    ready = [c for c in found if c.url]
    return " · ".join(f"{CLIP_MOMENTS[c.reason]}: {c.url}" for c in ready)


def count(n: int, unit: str) -> str:
    """ "1 unit", "4 bundles"."""
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def pool_label(pool: str) -> str:
    return "ship" if pool == "ship" else f"pickup at {pool.removeprefix('pickup:')}"


def order_items(view: DropView, order: Order) -> str:
    """What an order holds, as its buyer reads it: "2 × Spicy chips" or the bundle."""
    if view.drop.format is DropFormat.BUNDLE or len(view.products) != 1:
        title = view.drop.title
    else:
        title = next(iter(view.products.values())).title
    return f"{order.qty} × {title}"


def receipt(view: DropView, order: Order, locale: str | None = None) -> Message | None:
    """The buyer's receipt, sent privately where they bought: what, how much (shipping
    apart), and where it goes or where to collect it with the code the shop checks."""
    if order.status not in (OrderStatus.PAID, OrderStatus.RESERVED):
        return None  # refunded or cancelled before we got to send it

    def money(m: Money) -> str:
        return format_money(m, locale)

    fields: list[tuple[str, str]] = [("Items", order_items(view, order))]
    if order.shipping is not None:
        fields.append(("Shipping", money(order.shipping)))
    paid = order.status is OrderStatus.PAID
    fields.append(("Total paid" if paid else "To pay at pickup", money(order.amount)))
    if order.pickup_code:
        fields.append(("Pick up at", pickup_point(order.pool)))
        fields.append(("Pickup code", order.pickup_code))
        where = f" Pick it up at {pickup_point(order.pool)}: show the code {order.pickup_code}."
    else:
        lines = order.ship_to.lines() if order.ship_to else []
        if lines:
            fields.append(("Ships to", ", ".join(lines)))
        where = " We will message you when it ships."
    head = "Receipt" if paid else "Reserved"
    return Message(
        f"{head} for order #{order.id} — {view.drop.title}: {order_items(view, order)}, "
        f"{money(order.amount)}{'' if paid else ' to pay at pickup'}.{where}",
        kind="receipt",
        drop_id=view.drop.id,
        title=f"{head} · order #{order.id}",
        fields=tuple(fields),
        private=True,
    )


def refunded(view: DropView, order: Order, locale: str | None = None) -> Message | None:
    """The shop gave the money back (a pay-at-pickup order: nothing was owed any more)."""
    if order.status is not OrderStatus.REFUNDED:
        return None
    back = (
        f"{format_money(order.amount, locale)} goes back the way you paid."
        if order.paid_at is not None
        else "Nothing is owed."
    )
    return Message(
        f"Order #{order.id} ({view.drop.title}) was refunded by the shop. {back}",
        kind="refunded",
        drop_id=view.drop.id,
        title=f"Refunded · order #{order.id}",
        private=True,
    )


def shipped(view: DropView, order: Order) -> Message | None:
    """Your order is on its way: the carrier, the code and where to follow it."""
    if order.desk_status.value != "shipped" or not order.carrier or not order.tracking:
        return None
    url = tracking_url(order.carrier, order.tracking)
    follow = f" Track it: {url}" if url else ""
    return Message(
        f"Order #{order.id} ({view.drop.title}) has shipped with {order.carrier}, tracking "
        f"{order.tracking}.{follow}",
        kind="shipped",
        drop_id=view.drop.id,
        title=f"Shipped · order #{order.id}",
        fields=(("Carrier", order.carrier), ("Tracking", order.tracking)),
        public_link=url,
        private=True,
    )


class Presenter:
    def __init__(
        self, commerce: Commerce, public_url: str, prefix: str = "!", locale: str | None = None
    ) -> None:
        self.commerce = commerce
        self.public_url = public_url.rstrip("/")
        self.prefix = prefix
        self.locale = locale  # for public posts; None: the process default (chat.locale)

    def page(self, drop_id: int) -> str:
        return drop_page_url(self.public_url, drop_id)

    def price(self, view: DropView, locale: str | None = None) -> str:
        """What one claim costs, in the reader's locale ("from …" when items differ)."""
        locale = locale or self.locale
        if not view.products:
            return ""
        if view.drop.format is DropFormat.BUNDLE or view.drop.price is not None:
            return format_money(view.unit_price, locale)
        prices = {p.price for p in view.products.values()}
        cheapest = min(prices, key=lambda m: m.amount_minor)
        text = format_money(cheapest, locale)
        return text if len(prices) == 1 else f"from {text}"

    async def for_event(self, event: Event) -> Message | None:
        """The public post for an event, or None for events chat does not announce."""
        if not isinstance(event, DropScheduled | DropOpened | SoldOut | Restocked | DropClosed):
            return None
        view = await self.commerce.drops.view(event.drop_id)
        match event:
            case DropScheduled():
                return self.announcement(view)
            case DropOpened():
                return self.live(view)
            case SoldOut():
                return self.status(view, kind="sold_out")
            case Restocked():
                return self.restocked(view)
            case DropClosed():
                return await self.recap_with_kpis(view, event.reason)
        return None  # pragma: no cover

    # -- the drop's state -------------------------------------------------------------------

    def status(
        self, view: DropView, *, kind: str = "status", locale: str | None = None, lead: str = ""
    ) -> Message:
        """The drop's headline, detail and action as one chat line: ``!drop``, the live
        post and every edit of it, sold out, and the status bar of the studio."""
        status = drop_status(view)
        drop = view.drop
        p = self.prefix
        price = self.price(view, locale)
        at_price = f" at {price}" if price else ""
        head = f"{lead}{status.headline.upper()}: {drop.title} — "
        at: datetime | None = None
        match status.phase:
            case Phase.LIVE:
                text = f"{head}{status.detail}{at_price}. Type {p}buy to claim."
            case Phase.SOLD_OUT:
                text = f"{head}{status.detail} Type {p}waitlist to be next."
            case Phase.SCHEDULED:
                opens = self._opens(view)
                at = drop.opens_at if "{at}" in opens else None
                text = (
                    f"{head}{count(status.total, status.unit)}{at_price}, {opens}. "
                    f"Type {p}remindme drop for a DM when it starts."
                )
            case _:
                text = f"{head}{status.detail}"
        return Message(
            text,
            kind=kind,
            drop_id=drop.id,
            at=at,
            title=drop.title,
            public_link=self.page(drop.id),
            buttons=_BUTTONS[status.action],
            unit=status.unit,
            status=status,
        )

    def _opens(self, view: DropView) -> str:
        """ "opens {at}" while the opening is ahead; never "opens 2 min ago"."""
        opens_at = view.drop.opens_at
        now = view.as_of or self.commerce.clock.now()
        if opens_at is None:
            return "opening time to be announced"
        return "opens {at}" if opens_at > now else "opening any moment now"

    def announcement(self, view: DropView) -> Message | None:
        """The first post about a scheduled drop; None once it is no longer scheduled (an
        announcement handled late must not say it "opens" when it already has)."""
        if drop_status(view).phase is not Phase.SCHEDULED:
            return None
        drop = view.drop
        message = self.status(view, kind="announcement", lead="New drop! ")
        return replace(
            message,
            fields=(
                (f"{view.unit_word.capitalize()}s", str(view.counts().total)),
                ("Price", self.price(view)),
                ("Checkout window", f"{drop.hold_seconds} s"),
            ),
        )

    def countdown(self, view: DropView, seconds_left: int) -> Message | None:
        if drop_status(view).phase is not Phase.SCHEDULED:
            return None
        return self.status(view, kind="countdown")

    def live(self, view: DropView) -> Message:
        """The post when a drop opens; edited in place as stock moves (``tick``)."""
        return self.status(view, kind="live")

    def tick(self, view: DropView, *, left: int | None = None) -> Message:
        """The current state for the live post's edit; with ``left``, the post for a
        threshold the stock just crossed ("Only 3 left"), worded with the count of the
        event that crossed it (the drop may have moved on since)."""
        message = self.status(view, kind="tick")
        if left is None:
            return message
        unit = view.unit_word
        amount = count(left, unit) if unit != "unit" else str(left)
        return replace(message, text=f"Only {amount} left: {view.drop.title}! {self.prefix}buy")

    def restocked(self, view: DropView) -> Message:
        return self.status(view, kind="restocked", lead="Restocked! ")

    def opened_note(self, view: DropView) -> Message:
        """What the announcement and countdown posts become once the drop is live: no
        countdown left to show, and nothing that goes stale as stock moves."""
        drop = view.drop
        return Message(
            f"{drop.title} opened {{at}}: the live post below has the stock.",
            kind="opened",
            drop_id=drop.id,
            at=drop.opened_at,
            title=drop.title,
            public_link=self.page(drop.id),
            unit=view.unit_word,
        )

    def ended_note(self, view: DropView) -> Message:
        """What the announcement, countdown and live posts become once the drop closed."""
        return self.status(view, kind="closed")

    def stock(self, view: DropView, locale: str | None = None) -> Message:
        """``!stock``: the status line, then what is left per item and pool."""
        status = drop_status(view)
        parts = []
        if status.phase in (Phase.LIVE, Phase.SOLD_OUT, Phase.SCHEDULED):
            parts = self._stock_parts(view, status)
        message = self.status(view, kind="stock", locale=locale)
        if len(parts) > 1:
            message = replace(message, text=f"{message.text} · {' · '.join(parts)}")
        return message

    def _stock_parts(self, view: DropView, status: DropStatus) -> list[str]:
        if view.drop.format is DropFormat.BUNDLE:
            return [
                f"{pool_label(pool)} ({self.prefix}buy {pool}): "
                f"{left_text(c.available, c.total, status.unit)}"
                for pool in view.pools
                for c in [view.counts(pool)]
            ]
        parts = []
        for line in view.stock:
            where = "" if len(view.pools) == 1 else f" {line.pool}"
            left = left_text(max(line.available, 0), line.total, "unit")
            parts.append(f"{line.sku}{where}: {left}")
        return parts

    def waitlist_offer(self, view: DropView, event: WaitlistOffered, link: str) -> Message:
        """To the next in line, privately: a unit freed up and is held for them."""
        return Message(
            f"{a_unit(view.unit_word).capitalize()} of {view.drop.title} freed up and "
            "it's yours: pay with your personal link. The hold expires {at}.",
            kind="waitlist_offer",
            drop_id=event.drop_id,
            at=event.expires_at,
            personal_link=link,
            private=True,
            hold_id=event.hold_id,
            unit=view.unit_word,
        )

    # -- after the sale ---------------------------------------------------------------------

    def paid(self, view: DropView, event: OrderPaid) -> Message:
        """What a private pay message becomes once its hold is paid (where it can be edited)."""
        drop = view.drop
        return Message(
            f"Paid, thank you! {a_unit(view.unit_word).capitalize()} of {drop.title} is yours "
            f"(order #{event.order_id}).",
            kind="paid",
            drop_id=drop.id,
            public_link=self.page(drop.id),
            private=True,
            hold_id=event.hold_id,
            unit=view.unit_word,
        )

    async def recap_with_kpis(self, view: DropView, reason: str) -> Message:
        """The closing recap, leading with the drop's one objective (the hub attaches the
        chart)."""
        base = self.recap(view, reason)
        try:
            kpis = await self.commerce.analytics.kpis(view.drop.id)
        except Exception:  # the recap still goes out, without the numbers
            log.exception("KPIs for the recap of drop %s failed", view.drop.id)
            return base
        lead = ""
        fields = list(base.fields)
        if kpis.objective is not None:
            goal = kpis.objective
            verdict = {True: "MET", False: "not met", None: "not measurable"}[goal.met]
            lead = f"Goal: {goal_text(goal)}: {verdict} ({actual_text(goal)}). "
        try:
            clip_field = clip_links(
                [c for c in await self.commerce.clips.for_drop(view.drop.id) if c.url]
            )
        except Exception:  # the recap still goes out, without the clips
            log.exception("clips for the recap of drop %s failed", view.drop.id)
            clip_field = ""
        if clip_field:
            fields.append(("Clips", clip_field))
        median = kpis.seconds_to_checkout.from_claim.p50
        if median is not None:
            fields.append(("Median checkout", f"{median:.0f} s"))
        if kpis.viewers.peak is not None:
            fields.append(("Peak viewers", str(kpis.viewers.peak)))
        return replace(base, text=lead + base.text, fields=tuple(fields))

    def clip_ready(self, view: DropView, event: ClipReady) -> Message:
        """After the recap: a clip of the drop that was not ready for it (the sell-out)."""
        drop = view.drop
        moment = CLIP_MOMENTS[ClipReason(event.reason)]
        return Message(
            f"Missed it? Watch {moment} of {drop.title}: {event.url}",
            kind="clip",
            drop_id=drop.id,
            title=drop.title,
            public_link=self.page(drop.id),
        )

    def recap(self, view: DropView, reason: str) -> Message:
        """The closed status, thanked, with the numbers as fields (in claim units)."""
        drop = view.drop
        counts = view.counts()
        fields = [("Sold", f"{counts.sold} of {count(counts.total, view.unit_word)}")]
        if drop.opened_at and drop.closed_at:
            fields.append(
                ("Open for", f"{int((drop.closed_at - drop.opened_at).total_seconds())} s")
            )
        message = self.status(view, kind="closed")
        return replace(message, text=f"{message.text} Thank you!", fields=tuple(fields))
