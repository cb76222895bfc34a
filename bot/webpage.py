"""The hub's view of signed-in drop pages. A viewer who signed in on the drop page gets
their pay link there: this is how a Twitch viewer buys from chat without Discord. The web
side pushes the link itself when the hold is placed (``commerce.web.inbox``); this outlet
only says whether the person can be reached that way."""

from __future__ import annotations

from bot.messages import Message
from commerce.web.inbox import WebInbox

# Not an identity scheme: the hub's per-platform routing (waitlist offers, reminders) never
# picks this outlet by itself; adapters ask it by this name.
PAGES = "page"


class PageOutlet:
    platform = PAGES

    def __init__(self, inbox: WebInbox) -> None:
        self.inbox = inbox

    async def post(self, message: Message) -> str | None:
        return None  # pages follow the drop over their own live stream

    async def edit(self, handle: str, message: Message) -> None:
        return None

    async def send_private(self, identity: str, message: Message, key: str | None = None) -> bool:
        """True when ``identity``'s owner signed in on the web: their drop page shows the
        hold (pushed by the web process on HoldPlaced, and in its panel)."""
        return await self.inbox.reachable(identity)

    async def edit_private(self, hold_id: int, message: Message) -> None:
        return None  # the buyer paid on the page itself: it already says so
