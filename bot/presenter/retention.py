"""Retention messages (reminders, "live", restock, replay, receipts): a queued notification
becomes the message it should be *now*, or None once it no longer makes sense."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from bot.messages import Message
from bot.presenter import CLIP_MOMENTS, count, receipt, refunded, shipped
from commerce.core import Commerce
from commerce.domain.model import DropState
from commerce.links import drop_page_url
from commerce.money_format import format_money
from commerce.services.notifications import Notification


class RetentionRenderer:
    """Turns a notification into the message it should be *now* — or None when it no longer
    makes sense (the drop is over) — with a fresh personal link tagged for attribution."""

    def __init__(
        self,
        commerce: Commerce,
        issue_link: Callable[[int, str, str | None], Awaitable[str]],
        unsubscribe_url: Callable[[int], str],
        public_url: str,
        locale: str | None = None,
    ) -> None:
        self.commerce = commerce
        self.issue_link = issue_link
        self.unsubscribe_url = unsubscribe_url
        self.public_url = public_url
        self.locale = locale  # money in these messages; None: the process default

    async def __call__(self, item: Notification, now: datetime) -> Message | None:
        if item.drop_id is None:
            return None
        view = await self.commerce.drops.view(item.drop_id, now)
        if item.kind in ("receipt", "shipped", "refunded"):  # about one order, to its buyer
            order = await self.commerce.orders.get(int(item.payload["order_id"]))
            if item.kind == "receipt":
                return receipt(view, order, self.locale)
            if item.kind == "refunded":
                return refunded(view, order, self.locale)
            return shipped(view, order)
        drop = view.drop
        identity = item.address if item.channel != "webhook" else await self._identity(item)
        tag = item.kind.split(":", 1)[0] if item.kind.startswith("restock") else item.kind
        link = await self.issue_link(drop.id, identity, tag) if identity else None
        page = drop_page_url(self.public_url, drop.id)
        stop = f" Stop these: {self.unsubscribe_url(item.customer_id)} or reply !unsubscribe."
        counts = view.counts()  # claim units: whole bundles for a bundle drop
        left = f"{counts.available} of {count(counts.total, view.unit_word)} left"
        late = now - item.created_at > timedelta(minutes=2)
        if item.kind.startswith("reminder"):
            if drop.state is DropState.CLOSED:
                return None
            starts = "{at}" if drop.opens_at is not None and drop.opens_at > now else "any moment"
            if drop.state is DropState.LIVE:
                text = f"{drop.title} is live now — {left}."
                text += " (This reminder is late: we were offline.)" if late else ""
            else:
                price = format_money(view.unit_price, self.locale)
                text = (
                    f"{drop.title} starts {starts}: {count(counts.total, view.unit_word)} at "
                    f"{price}."
                )
            return Message(
                text + stop,
                kind=item.kind,
                drop_id=drop.id,
                at=drop.opens_at if "{at}" in text else None,
                personal_link=link,
                public_link=page,
                private=True,
            )
        if item.kind == "live":
            if drop.state is not DropState.LIVE:
                return None
            return Message(
                f"{drop.title} is LIVE — {left}. Your link:{stop}",
                kind="live",
                drop_id=drop.id,
                personal_link=link,
                public_link=page,
                private=True,
            )
        if item.kind == "replay":
            # The creator's replay link, and the best clip of the drop: the sell-out first.
            clip = await self.commerce.clips.best(drop.id)
            shown = [drop.replay_url] if drop.replay_url else []
            if clip is not None and clip.url and clip.url not in shown:
                shown.append(clip.url)
            if not shown:
                return None
            if drop.replay_url:
                text = f"The replay of {drop.title} is up: {drop.replay_url}"
                if len(shown) > 1 and clip is not None:
                    text += f" · {CLIP_MOMENTS[clip.reason]}: {shown[1]}"
            else:
                assert clip is not None
                text = f"Missed {drop.title}? Watch {CLIP_MOMENTS[clip.reason]}: {shown[0]}"
            return Message(
                f"{text} · the drop: {page}{stop}",
                kind="replay",
                drop_id=drop.id,
                public_link=page,
                private=True,
            )
        if item.kind.startswith("restock"):
            if drop.state is not DropState.LIVE or counts.available == 0:
                return None
            return Message(
                f"{drop.title} was restocked — {count(counts.available, view.unit_word)} "
                f"available now.{stop}",
                kind="restock",
                drop_id=drop.id,
                personal_link=link,
                public_link=page,
                private=True,
            )
        return None

    async def _identity(self, item: Notification) -> str | None:
        customer = await self.commerce.customers.get(item.customer_id)
        return customer.identities[0] if customer.identities else None
