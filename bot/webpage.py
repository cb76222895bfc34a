"""The hub's view of signed-in drop pages: private messages only (public posts reach pages
through their own live stream). A viewer who signed in on the drop page gets their pay link
there: this is how a Twitch viewer buys from chat without Discord."""

from __future__ import annotations

from bot.messages import Message
from bot.private import PrivateTrail
from commerce.web.inbox import Note, WebInbox


class PageOutlet:
    # Not an identity prefix: the hub's per-platform routing (waitlist offers, reminders)
    # never picks this outlet by itself; adapters ask it by name.
    platform = "page"

    def __init__(self, inbox: WebInbox) -> None:
        self.inbox = inbox
        self._sent: PrivateTrail[str] = PrivateTrail()  # hold -> the identity told

    async def reachable(self, identity: str) -> bool:
        return await self.inbox.reachable(identity)

    async def post(self, message: Message) -> str | None:
        return None

    async def edit(self, handle: str, message: Message) -> None:
        return None

    async def send_private(self, identity: str, message: Message, key: str | None = None) -> bool:
        note = Note(
            message.text,
            drop_id=message.drop_id,
            hold_id=message.hold_id,
            link=message.personal_link,
            kind="hold" if message.personal_link else "info",
        )
        delivered = await self.inbox.deliver(identity, note)
        if delivered and message.hold_id is not None:
            self._sent.add(message.hold_id, identity)
        return delivered

    async def edit_private(self, hold_id: int, message: Message) -> None:
        for identity in self._sent.pop(hold_id):
            note = Note(message.text, drop_id=message.drop_id, hold_id=hold_id, kind="paid")
            await self.inbox.deliver(identity, note)
