"""Domain events → neutral chat messages (announcement, countdown, live, sold out, …)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from bot.messages import Button, Message
from commerce.analytics.chart import render_png
from commerce.core import Commerce
from commerce.domain.events import (
    DropClosed,
    DropOpened,
    DropScheduled,
    Event,
    Restocked,
    SoldOut,
)
from commerce.domain.model import DropView

log = logging.getLogger(__name__)


def _units(n: int) -> str:
    return f"{n} unit" if n == 1 else f"{n} units"


class Presenter:
    def __init__(self, commerce: Commerce, public_url: str, prefix: str = "!") -> None:
        self.commerce = commerce
        self.public_url = public_url.rstrip("/")
        self.prefix = prefix

    def page(self, drop_id: int) -> str:
        return f"{self.public_url}/d/{drop_id}"

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
                return Message(
                    f"SOLD OUT: {view.drop.title}! Type {self.prefix}waitlist to be next if a "
                    "unit frees up.",
                    kind="sold_out",
                    drop_id=view.drop.id,
                    buttons=(Button.WAITLIST,),
                )
            case Restocked():
                return Message(
                    f"Restocked: {event.added} more {event.sku}. {self._left(view)} — "
                    f"{self.prefix}buy to claim.",
                    kind="restocked",
                    drop_id=view.drop.id,
                    public_link=self.page(view.drop.id),
                    buttons=(Button.BUY,),
                )
            case DropClosed():
                return await self.recap_with_kpis(view, event.reason)
        return None  # pragma: no cover

    def announcement(self, view: DropView) -> Message:
        drop = view.drop
        total = sum(line.total for line in view.stock)
        return Message(
            f"New drop: {drop.title} — {_units(total)} at {view.unit_price.format()}, "
            "opens {at}.",
            kind="announcement",
            drop_id=drop.id,
            at=drop.opens_at,
            title=drop.title,
            fields=(
                ("Units", str(total)),
                ("Price", view.unit_price.format()),
                ("Checkout window", f"{drop.hold_seconds} s"),
            ),
            public_link=self.page(drop.id),
            buttons=(Button.REMIND,),
        )

    def countdown(self, view: DropView, seconds_left: int) -> Message:
        return Message(
            f"{view.drop.title} opens {{at}} — {_units(view.available_units())}. Get ready: "
            f"{self.prefix}buy",
            kind="countdown",
            drop_id=view.drop.id,
            at=view.drop.opens_at,
            public_link=self.page(view.drop.id),
        )

    def live(self, view: DropView) -> Message:
        drop = view.drop
        return Message(
            f"LIVE NOW: {drop.title} — {self._left(view)} at {view.unit_price.format()}. "
            f"Type {self.prefix}buy or press Buy.",
            kind="live",
            drop_id=drop.id,
            title=drop.title,
            public_link=self.page(drop.id),
            buttons=(Button.BUY, Button.WAITLIST),
        )

    def tick(self, view: DropView, *, threshold: bool) -> Message:
        left = view.available_units()
        text = (
            f"Only {left} left of {view.drop.title}! {self.prefix}buy"
            if threshold
            else f"LIVE: {view.drop.title} — {self._left(view)}. {self.prefix}buy"
        )
        return Message(
            text,
            kind="tick",
            drop_id=view.drop.id,
            public_link=self.page(view.drop.id),
            buttons=(Button.BUY,) if left else (Button.WAITLIST,),
        )

    async def recap_with_kpis(self, view: DropView, reason: str) -> Message:
        """The closing recap, leading with the drop's one objective, with the chart."""
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
            actual = "—" if goal.actual is None else f"{goal.actual:g}"
            lead = f"Goal {goal.metric.replace('_', ' ')} {goal.target:g}: {verdict} ({actual}). "
        median = kpis.seconds_to_checkout.from_claim.p50
        if median is not None:
            fields.append(("Median checkout", f"{median:.0f} s"))
        if kpis.viewers.peak is not None:
            fields.append(("Peak viewers", str(kpis.viewers.peak)))
        loop = asyncio.get_running_loop()
        image = await loop.run_in_executor(None, render_png, kpis)  # matplotlib: off the loop
        return replace(base, text=lead + base.text, fields=tuple(fields), image=image)

    def recap(self, view: DropView, reason: str) -> Message:
        drop = view.drop
        sold = sum(line.sold for line in view.stock)
        total = sum(line.total for line in view.stock)
        fields = [("Sold", f"{sold} of {total}")]
        if drop.opened_at and drop.closed_at:
            fields.append(
                ("Open for", f"{int((drop.closed_at - drop.opened_at).total_seconds())} s")
            )
        why = {"sold_out": "sold out", "window_ended": "time's up", "manual": "closed"}.get(
            reason, reason
        )
        return Message(
            f"{drop.title} is over ({why}): {sold} of {total} sold. Thank you!",
            kind="closed",
            drop_id=drop.id,
            title=drop.title,
            fields=tuple(fields),
        )

    @staticmethod
    def _left(view: DropView) -> str:
        left = view.available_units()
        return "sold out" if left == 0 else f"{left} left"
