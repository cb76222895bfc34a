"""Studio chat over WebSockets: every browser tab is a chat client."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import weakref
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from bot.coalesce import Mention, OutcomeLines
from bot.commands import CommandHandler
from bot.messages import ChatUser, Message
from bot.private import PrivateTrail
from commerce.domain.errors import InvalidInput
from commerce.domain.model import normalize_identity

log = logging.getLogger(__name__)
STATIC = Path(__file__).with_name("static")
MAX_LINE = 300
HISTORY = 50
OUTCOME_LINE = 500  # as on Twitch, so that a rehearsal here shows what Twitch chat will
GATHER = 0.5  # as the Twitch outlet's SendPolicy.gather
LINES_IN_FLIGHT = 100  # chat lines of one tab being handled at once


def frame(
    message: Message, *, msg_id: str, op: str = "post", to: str | None = None
) -> dict[str, Any]:
    """The JSON a studio tab renders; ``{at}`` is filled in by the page, in its own zone.
    ``to``: the name a private message is for (only that name's tabs get it)."""
    private = to is not None
    return {
        "op": op,
        "id": msg_id,
        "kind": message.kind,
        "text": message.text,
        "at": message.at.isoformat() if message.at else None,
        "title": message.title,
        "fields": [list(f) for f in message.fields],
        "link": message.personal_link if private else None,
        "page": message.public_link,
        "buttons": [b.value for b in message.buttons],
        "private": private,
        "to": to,
        "drop_id": message.drop_id,
        # The drop's one headline and action, as on the drop page: the status bar shows it.
        "status": message.status.as_dict() if message.status else None,
    }


class StudioOutlet:
    """The hub's view of the studio: public posts go to every tab, private ones to the tabs
    that spoke as that local identity. Claim outcomes are said many to a line, as on
    Twitch (``bot.coalesce``), so a rehearsal shows what Twitch chat will."""

    platform = "local"

    def __init__(self, handler: CommandHandler, *, gather: float = GATHER) -> None:
        self.handler = handler
        self.gather = gather
        self._sockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()
        # The names each tab has spoken as (a rehearsal's tab speaks for many viewers).
        self._who: weakref.WeakKeyDictionary[web.WebSocketResponse, set[str]] = (
            weakref.WeakKeyDictionary()
        )
        self._outcomes = OutcomeLines(OUTCOME_LINE)
        self._saying: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._history: list[dict[str, Any]] = []
        self._private: PrivateTrail[tuple[str, str]] = PrivateTrail()  # hold: (who, msg id)

    # -- Outlet ---------------------------------------------------------------------------

    async def post(self, message: Message) -> str | None:
        msg_id = f"m{next(self._ids)}"
        await self._broadcast(frame(message, msg_id=msg_id))
        return msg_id

    async def edit(self, handle: str, message: Message) -> None:
        await self._broadcast(frame(message, msg_id=handle, op="edit"))

    async def send_private(self, identity: str, message: Message, key: str | None = None) -> bool:
        data = frame(message, msg_id=f"m{next(self._ids)}", to=identity.partition(":")[2])
        reached = await self._to(identity, data)
        if reached and message.hold_id is not None and message.personal_link is not None:
            self._private.add(message.hold_id, (identity, data["id"]))
        return reached

    async def edit_private(self, hold_id: int, message: Message) -> None:
        for identity, msg_id in self._private.pop(hold_id):
            to = identity.partition(":")[2]
            await self._to(identity, frame(message, msg_id=msg_id, op="edit", to=to))

    async def _to(self, identity: str, data: dict[str, Any]) -> bool:
        targets = [ws for ws in list(self._sockets) if identity in self._who.get(ws, ())]
        for ws in targets:
            await self._send(ws, data)
        return bool(targets)

    # -- the web side ---------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/studio", self.page),
            web.get("/studio/ws", self.websocket),
            web.get("/studio/studio.js", self.asset),
            web.get("/studio/studio.css", self.asset),
        ]

    async def page(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def asset(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(
            STATIC / request.path.rsplit("/", 1)[1], headers={"Cache-Control": "no-cache"}
        )

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=4096)
        await ws.prepare(request)
        self._sockets.add(ws)
        for data in self._history:
            await self._send(ws, data)
        # Each line is handled as it arrives, as chat platforms do, so a surge's claims are
        # decided together; at most LINES_IN_FLIGHT per tab, then the tab waits.
        in_flight = asyncio.Semaphore(LINES_IN_FLIGHT)
        handling: set[asyncio.Task[None]] = set()

        async def said(raw: str) -> None:
            try:
                await self._said(ws, raw)
            except Exception:
                log.exception("studio: could not handle a chat line")
            finally:
                in_flight.release()

        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await in_flight.acquire()
                    task = asyncio.create_task(said(msg.data))
                    handling.add(task)
                    task.add_done_callback(handling.discard)
            if handling:  # the tab left: its lines still get their answers (to the others)
                await asyncio.gather(*handling)
        finally:
            self._sockets.discard(ws)
        return ws

    async def _said(self, ws: web.WebSocketResponse, raw: str) -> None:
        try:
            data = json.loads(raw)
            name = str(data.get("name", "")).strip()
            text = str(data.get("text", "")).strip()[:MAX_LINE]
            identity = normalize_identity(f"local:{name}")
        except (ValueError, InvalidInput):
            await self._send(ws, {"op": "error", "text": "Pick a name: letters, digits, _ . -"})
            return
        if not text:
            return
        self._who.setdefault(ws, set()).add(identity)
        locale = str(data.get("locale") or "")[:35] or None  # the browser's language
        user = ChatUser(identity, name, is_creator=bool(data.get("creator")), locale=locale)
        line_id = f"m{next(self._ids)}"
        said = {
            "op": "chat",
            "id": line_id,
            "name": name,
            "text": text,
            "creator": user.is_creator,
        }
        await self._broadcast(said)
        out = await self.handler.handle(user, text, message_id=line_id, channel="studio")
        if out is None:
            return
        for reply in out.replies:
            if reply.private or reply.personal_link:
                reached = await self.send_private(identity, reply)
                if reply.brief is not None and reached:
                    self._mention(f"@{name}", f"{reply.brief} — your pay link is shown to you")
            elif reply.brief is not None:
                self._mention(f"@{name}", reply.brief)
            else:
                await self.post(reply)
        for post in out.posts:
            await self.post(post)

    # -- claim outcomes, many to a line -----------------------------------------------------

    def _mention(self, who: str, brief: str) -> None:
        self._outcomes.add(Mention(who, brief))
        if self._saying is None or self._saying.done():
            self._saying = asyncio.create_task(self._say_outcomes(), name="studio-outcomes")

    async def _say_outcomes(self) -> None:
        while self._outcomes:
            await self._outcomes.ready(self.gather)
            line = self._outcomes.take_line()
            if line is not None:
                await self.post(Message(line[0], kind="outcomes"))

    async def close(self) -> None:
        """Say the outcomes still waiting, then stop."""
        saying, self._saying = self._saying, None
        if saying is not None:
            await saying

    async def _broadcast(self, data: dict[str, Any]) -> None:
        if data["op"] in ("post", "chat"):
            self._history = [*self._history[-(HISTORY - 1) :], data]
        elif data["op"] == "edit":  # a tab that opens later sees the post as it is now
            self._history = [
                {**data, "op": "post"} if old["id"] == data["id"] else old for old in self._history
            ]
        await asyncio.gather(*(self._send(ws, data) for ws in list(self._sockets)))

    @staticmethod
    async def _send(ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        if ws.closed:
            return
        try:
            await ws.send_json(data)
        except (ConnectionError, RuntimeError):
            log.debug("studio tab went away")
