"""Private messages to signed-in drop pages: where a pay link goes when the viewer's chat
has no private reply.

A viewer who signed in on the drop page once has proven their platform identity, so a hold
placed by their ``!buy`` in chat is announced on the drop page they are signed in to:
pushed over that page's event stream at once, and shown in the page's "your holds" panel
whenever they open it (read from the database).

The push follows the ``HoldPlaced`` event, not the chat adapter's call: events reach every
web process (PostgreSQL LISTEN/NOTIFY), so it works when the bots run in another process,
and a hold placed any other way (a waitlist offer, another tab) shows up too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from commerce.domain.events import HoldPlaced
from commerce.services.customers import CustomerService
from commerce.web.live import Listener, sse_event

HOLD_TEXT = "You hold one: pay before it runs out."


class WebInbox:
    """Open signed-in pages by customer (each with the identity it signed in as)."""

    def __init__(self, customers: CustomerService) -> None:
        self.customers = customers
        self._pages: dict[int, dict[Listener, str]] = {}

    def attach(self, customer_id: int, identity: str, queue: Listener) -> None:
        """A signed-in page's stream (its drop-event queue) also takes private frames."""
        self._pages.setdefault(customer_id, {})[queue] = identity

    def detach(self, customer_id: int, queue: Listener) -> None:
        pages = self._pages.get(customer_id)
        if pages is not None:
            pages.pop(queue, None)
            if not pages:
                del self._pages[customer_id]

    def pages(self, customer_id: int) -> int:
        return len(self._pages.get(customer_id, ()))

    async def reachable(self, identity: str) -> bool:
        """Has the person behind ``identity`` signed in on the web (with any platform)? Then
        the drop page is where their pay link is (pushed, and in its panel)."""
        customer_id = await self.customers.find(identity)
        if customer_id is None:
            return False
        return bool((await self.customers.get(customer_id)).verified)

    def hold_placed(self, event: HoldPlaced, link_for: Callable[[str], str]) -> None:
        """Tell the holder's open pages on that drop, each with a pay link for the identity
        it signed in as (``link_for``)."""
        for queue, identity in list(self._pages.get(event.customer_id, {}).items()):
            frame = sse_event(
                "private",
                {
                    "kind": "hold",
                    "drop_id": event.drop_id,
                    "hold_id": event.hold_id,
                    "text": HOLD_TEXT,
                    "link": link_for(identity),
                    "expires_at": event.expires_at.isoformat(),
                },
            )
            # A stalled page misses the push; its panel still shows the hold on reload.
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(frame)
