"""Private messages to signed-in drop pages: where a Twitch viewer's pay link goes.

Twitch chat has no private reply. A viewer who signed in on the drop page once has proven
their Twitch identity, so a hold placed by their ``!buy`` in chat is announced on the drop
page they are signed in to: pushed over that page's event stream at once, and shown in the
page's "your holds" panel whenever they open it (read from the database, so a page opened
later, or in another process, sees it too).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from commerce.services.customers import CustomerService
from commerce.web.live import Listener, sse_event


@dataclass(frozen=True, slots=True)
class Note:
    """What a signed-in page is told privately."""

    text: str
    drop_id: int | None = None
    hold_id: int | None = None
    link: str | None = None
    kind: str = "info"  # "hold" (a pay link), "paid", "info"

    def frame(self) -> bytes:
        return sse_event(
            "private",
            {
                "text": self.text,
                "drop_id": self.drop_id,
                "hold_id": self.hold_id,
                "link": self.link,
                "kind": self.kind,
            },
        )


class WebInbox:
    """Open signed-in pages by customer, and delivery to them."""

    def __init__(self, customers: CustomerService) -> None:
        self.customers = customers
        self._pages: dict[int, set[Listener]] = {}

    def attach(self, customer_id: int, queue: Listener) -> None:
        """A signed-in page's stream (its drop-event queue) also takes private frames."""
        self._pages.setdefault(customer_id, set()).add(queue)

    def detach(self, customer_id: int, queue: Listener) -> None:
        pages = self._pages.get(customer_id)
        if pages is not None:
            pages.discard(queue)
            if not pages:
                del self._pages[customer_id]

    def pages(self, customer_id: int) -> int:
        return len(self._pages.get(customer_id, ()))

    async def reachable(self, identity: str) -> bool:
        """Has the person behind ``identity`` signed in on the web (with any platform)?"""
        customer_id = await self.customers.find(identity)
        if customer_id is None:
            return False
        return bool((await self.customers.get(customer_id)).verified)

    async def deliver(self, identity: str, note: Note) -> bool:
        """Tell every page the person has open; True when they have signed in on the web at
        all (the "your holds" panel shows a hold even on a page opened later)."""
        customer_id = await self.customers.find(identity)
        if customer_id is None:
            return False
        customer = await self.customers.get(customer_id)
        if not customer.verified:
            return False
        frame = note.frame()
        for queue in list(self._pages.get(customer_id, ())):
            # A stalled page misses the push; its panel still shows the hold on reload.
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(frame)
        return True
