"""Studio chat over WebSockets: every browser tab is a chat client (who may do what:
``bot.studio.access``)."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from bot.coalesce import Mention, OutcomeLines
from bot.commands import CommandError, CommandHandler, Role
from bot.messages import ChatUser, Message
from bot.presenter import platforms as say
from bot.private import PrivateTrail
from bot.studio.access import NameBook, is_admin, origin_allowed
from commerce.domain.errors import InvalidInput
from commerce.domain.model import normalize_identity
from commerce.web.context import CONTEXT
from commerce.web.security import RateLimiter, client_ip, retry_after_header

log = logging.getLogger(__name__)
STATIC = Path(__file__).with_name("static")
MAX_LINE = 300
HISTORY = 50
OUTCOME_LINE = 500  # as on Twitch, so that a rehearsal here shows what Twitch chat will
GATHER = 0.5  # as the Twitch outlet's SendPolicy.gather
LINES_IN_FLIGHT = 100  # chat lines of one tab being handled at once
SIGN_IN = "/dashboard"


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


def error(text: str, **more: Any) -> dict[str, Any]:
    """A frame for one tab only: why its line was not run."""
    return {"op": "error", "text": text, **more}


def is_loopback(address: str) -> bool:
    try:
        return ip_address(address).is_loopback
    except ValueError:
        return False


@dataclass(slots=True)
class Tab:
    """One studio WebSocket, as decided when it connected."""

    sid: str  # the browser session it belongs to
    creator: bool  # the admin: creator commands run
    address: str  # the client's address (behind web.trusted_proxies, the forwarded one)
    limited: bool  # its lines are rate-limited
    names: set[str] = field(default_factory=set)  # spoken as (a rehearsal's: many)


class StudioOutlet:
    """The hub's view of the studio: public posts go to every tab, private ones to the tabs
    that spoke as that local identity, in the session that owns the name. Claim outcomes
    are said many to a line, as on Twitch (``bot.coalesce``), so a rehearsal shows what
    Twitch chat will.

    Rate limits: every line takes a token from its session's bucket and its address's, at
    the rates of link claims (``web.claim_rate_per_customer``, ``claim_rate_per_ip``).
    Names cost nothing to make up, so the buckets are never per name: a tab typing ``!buy``
    as 150 names gets one viewer's share. Not limited: the admin (who can close or restock
    the drop anyway) and, with ``local_rehearsals`` (the demo), this machine's loopback
    address, which the demo already trusts to stand in for many viewers (its
    ``web.trusted_proxies``), so ``dropcast rehearse --chat`` speaks for 1000 viewers from
    one session. A page of another site on this machine cannot use that: ``Origin``."""

    platform = "local"

    def __init__(
        self,
        handler: CommandHandler,
        *,
        per_ip: float,
        per_session: float,
        local_rehearsals: bool = False,
        gather: float = GATHER,
        now: Callable[[], float] = time.monotonic,  # the rate limits' clock
    ) -> None:
        self.handler = handler
        self.gather = gather
        self.local_rehearsals = local_rehearsals
        self._per_ip = RateLimiter(per_ip, now=now)
        self._per_session = RateLimiter(per_session, now=now)
        self._tabs: dict[web.WebSocketResponse, Tab] = {}
        self._open_sessions: Counter[str] = Counter()  # session id -> tabs open
        self._names = NameBook()
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
        owner = self._names.owner(identity)
        targets = [
            ws for ws, tab in list(self._tabs.items()) if tab.sid == owner and identity in tab.names
        ]
        for ws in targets:
            await self._send(ws, data)
        return bool(targets)

    # -- ChatPlatform -----------------------------------------------------------------------

    @property
    def outlet(self) -> StudioOutlet:
        return self  # the studio is its own outlet

    async def start(self) -> None:
        return None  # it runs in the web server, whose routes it serves

    async def reachable(self, user: ChatUser) -> bool:
        return True  # a private line goes to the tabs of the session that owns the name

    # -- the web side ---------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/studio", self.page),
            web.get("/studio/ws", self.websocket),
            web.get("/studio/studio.js", self.asset),
            web.get("/studio/studio.css", self.asset),
        ]

    async def page(self, request: web.Request) -> web.FileResponse:
        """The page; it gives the browser a session, which its tabs' names belong to (a
        WebSocket handshake cannot set a cookie)."""
        sessions = request.app[CONTEXT].require_sessions()
        session = sessions.get(request)
        response = web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})
        if session.fresh:
            sessions.save(response, session)
        return response

    async def asset(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(
            STATIC / request.path.rsplit("/", 1)[1], headers={"Cache-Control": "no-cache"}
        )

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        ctx = request.app[CONTEXT]
        if not origin_allowed(request, ctx.base_url):
            raise web.HTTPForbidden(text=f"the studio chat takes tabs from {ctx.base_url} only")
        session = ctx.require_sessions().peek(request)
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=4096)
        ctx.secure(ws)  # the upgrade sends its own headers: the edge's come first
        await ws.prepare(request)
        if session is None:
            await self._send(ws, error(say.NO_SESSION, fatal=True))
            await ws.close(code=WSCloseCode.POLICY_VIOLATION)
            return ws
        creator = is_admin(request)
        address = client_ip(request, ctx.trusted_proxies)
        local = self.local_rehearsals and is_loopback(address)
        tab = Tab(session.sid, creator, address, limited=not (creator or local))
        # Each line is handled as it arrives, as chat platforms do, so a surge's claims are
        # decided together; at most LINES_IN_FLIGHT per tab, then the tab waits.
        in_flight = asyncio.Semaphore(LINES_IN_FLIGHT)
        handling: set[asyncio.Task[None]] = set()

        async def said(raw: str) -> None:
            try:
                await self._said(ws, tab, raw)
            except Exception:
                log.exception("studio: could not handle a chat line")
            finally:
                in_flight.release()

        self._tabs[ws] = tab
        self._open_sessions[tab.sid] += 1
        try:
            await self._send(ws, {"op": "hello", "creator": creator, "signin": SIGN_IN})
            for data in self._history:
                await self._send(ws, data)
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await in_flight.acquire()
                    task = asyncio.create_task(said(msg.data))
                    handling.add(task)
                    task.add_done_callback(handling.discard)
            if handling:  # the tab left: its lines still get their answers (to the others)
                await asyncio.gather(*handling)
        finally:
            del self._tabs[ws]
            self._open_sessions -= Counter({tab.sid: 1})  # drops the session at 0
        return ws

    def _wait(self, tab: Tab) -> float:
        """Seconds until this tab may speak again (0: now); see the class docstring."""
        if not tab.limited:
            return 0.0
        return max(self._per_ip.hit(tab.address), self._per_session.hit(tab.sid))

    def _steers(self, text: str) -> bool:
        """A creator command. The handler refuses it to a viewer anyway; the studio says
        how to become the creator here."""
        try:
            command = self.handler.parse(text)
        except CommandError:
            return False
        spec = self.handler.commands.spec(command.name) if command is not None else None
        return spec is not None and spec.role is Role.CREATOR

    async def _said(self, ws: web.WebSocketResponse, tab: Tab, raw: str) -> None:
        if (wait := self._wait(tab)) > 0:
            await self._send(ws, error(say.slow_down(retry_after_header(wait))))
            return
        try:
            data = json.loads(raw)
            name = str(data.get("name", "")).strip()
            text = str(data.get("text", "")).strip()[:MAX_LINE]
            identity = normalize_identity(f"local:{name}")
        except (ValueError, RecursionError, InvalidInput, AttributeError):
            await self._send(ws, error(say.PICK_A_NAME))
            return
        if not text:
            return
        if not self._names.take(identity, tab.sid, self._open_sessions):
            await self._send(
                ws, error(say.NAME_TAKEN if self._names.owner(identity) else say.NAMES_FULL)
            )
            return
        tab.names.add(identity)
        if not tab.creator and self._steers(text):
            await self._send(ws, error(say.CREATOR_ONLY, link=SIGN_IN))
            return
        locale = str(data.get("locale") or "")[:35] or None  # the browser's language
        # The page's "creator" box counts only in the admin's tab (who may speak as a viewer).
        creator = tab.creator and bool(data.get("creator"))
        user = ChatUser(identity, name, is_creator=creator, locale=locale)
        line_id = f"m{next(self._ids)}"
        said = {
            "op": "chat",
            "id": line_id,
            "name": name,
            "text": text,
            "creator": user.is_creator,
        }
        # A claim's place in line is the moment its line came in, taken before the echo to
        # every tab (a send each) lets a claim from elsewhere go first.
        arrival = self.handler.place_in_line(text)
        with arrival if arrival is not None else nullcontext():
            await self._broadcast(said)
            out = await self.handler.handle(
                user, text, message_id=line_id, channel="studio", arrival=arrival
            )
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
        await asyncio.gather(*(self._send(ws, data) for ws in list(self._tabs)))

    @staticmethod
    async def _send(ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        if ws.closed:
            return
        try:
            await ws.send_json(data)
        except (ConnectionError, RuntimeError):
            log.debug("studio tab went away")
