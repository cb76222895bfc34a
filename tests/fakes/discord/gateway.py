"""The fake Gateway (WebSocket, API v10, JSON encoding).

Behaviour mirrored from https://discord.com/developers/docs/events/gateway:
HELLO -> IDENTIFY -> READY + one GUILD_CREATE per guild; HEARTBEAT -> HEARTBEAT_ACK;
RESUME replays the events missed since the client's last sequence number and then
sends RESUMED, or answers INVALID_SESSION (op 9, d=false) when the session is gone.
Transport compression ``zlib-stream`` (the one discord.py asks for unless ``zstandard``
is installed) is implemented: one shared zlib context, each frame ends with a
Z_SYNC_FLUSH marker. ``zstd-stream`` is honoured when a zstd library is importable;
otherwise frames go out as plain text, which discord.py also accepts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from .models import Intents, Json
from .records import GatewayFrame

if TYPE_CHECKING:
    from .server import FakeDiscord

DISPATCH, HEARTBEAT, IDENTIFY, PRESENCE, VOICE_STATE = 0, 1, 2, 3, 4
RESUME, RECONNECT, REQUEST_MEMBERS, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 6, 7, 8, 9, 10, 11

# Gateway close codes Discord uses.
CLOSE_UNKNOWN_ERROR = 4000
CLOSE_UNKNOWN_OPCODE = 4001
CLOSE_DECODE_ERROR = 4002
CLOSE_NOT_AUTHENTICATED = 4003
CLOSE_AUTH_FAILED = 4004
CLOSE_ALREADY_AUTHENTICATED = 4005
CLOSE_RATE_LIMITED = 4008
CLOSE_INVALID_SHARD = 4010
CLOSE_INVALID_VERSION = 4012
CLOSE_INVALID_INTENTS = 4013
CLOSE_DISALLOWED_INTENTS = 4014

_TRACE = ['["gateway-fake",{"micros":0}]']


def _make_compressor(kind: str | None) -> Callable[[bytes], bytes] | None:
    if kind == "zlib-stream":
        ctx = zlib.compressobj()
        return lambda data: ctx.compress(data) + ctx.flush(zlib.Z_SYNC_FLUSH)
    if kind == "zstd-stream":
        try:
            import zstandard  # type: ignore[import-not-found]
        except ImportError:
            pass
        else:
            zctx = zstandard.ZstdCompressor().compressobj()
            flush_block = zstandard.COMPRESSOBJ_FLUSH_BLOCK
            return lambda data: bytes(zctx.compress(data) + zctx.flush(flush_block))
        try:
            from compression.zstd import (  # type: ignore[import-not-found,unused-ignore]
                ZstdCompressor,
            )
        except ImportError:
            return None
        sctx = ZstdCompressor()
        return lambda data: bytes(sctx.compress(data, mode=ZstdCompressor.FLUSH_BLOCK))
    return None


@dataclass
class GatewaySession:
    id: str
    shard_id: int
    shard_count: int
    intents: int
    seq: int = 0
    buffer: deque[Json] = field(default_factory=lambda: deque(maxlen=2000))
    connection: GatewayConnection | None = None
    invalidated: bool = False
    ready: bool = False
    presence: Json | None = None
    shard_sent: bool = False

    def wants_guild(self, guild_id: int | None) -> bool:
        if guild_id is None:  # DMs always go to shard 0
            return self.shard_id == 0
        return (guild_id >> 22) % self.shard_count == self.shard_id

    def has(self, intent: int) -> bool:
        return bool(self.intents & intent)


class GatewayConnection:
    def __init__(self, ws: web.WebSocketResponse, *, path: str, compression: str | None) -> None:
        self.ws = ws
        self.path = path
        self.compression = compression
        self._compress = _make_compressor(compression)
        self.session: GatewaySession | None = None
        self.lock = asyncio.Lock()
        self.last_sent_seq = 0
        self.closed_by_server = False
        self.received_at: deque[float] = deque()

    @property
    def compressed(self) -> bool:
        return self._compress is not None

    async def send_locked(self, payload: Json) -> bool:
        """Send one payload; caller holds ``lock`` (keeps zlib stream and seq order)."""
        seq = payload.get("s")
        if seq is not None:
            if seq <= self.last_sent_seq:
                return False  # already delivered by a RESUME replay
            self.last_sent_seq = seq
        if self.ws.closed:
            return False
        raw = json.dumps(payload, separators=(",", ":"))
        try:
            if self._compress is not None:
                await self.ws.send_bytes(self._compress(raw.encode()))
            else:
                await self.ws.send_str(raw)
        except (ConnectionResetError, RuntimeError):
            return False
        return True

    async def send(self, payload: Json) -> bool:
        async with self.lock:
            return await self.send_locked(payload)

    async def close(self, code: int, reason: str = "") -> None:
        self.closed_by_server = True
        if not self.ws.closed:
            with contextlib.suppress(Exception):
                await self.ws.close(code=code, message=reason.encode())


class Gateway:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.sessions: dict[str, GatewaySession] = {}
        self.connections: list[GatewayConnection] = []
        self.connection_log: list[Json] = []  # path, query, compression per connect
        self.identify_count = 0
        self.resume_count = 0
        self._tasks: set[asyncio.Task[None]] = set()

    # --- connection lifecycle -------------------------------------------------
    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        # compress=False: discord.py connects without permessage-deflate (compress=0).
        ws = web.WebSocketResponse(compress=False, timeout=2.0, max_msg_size=0)
        await ws.prepare(request)
        query = dict(request.query)
        compression = query.get("compress")
        conn = GatewayConnection(ws, path=request.path, compression=compression)
        self.connections.append(conn)
        self.connection_log.append(
            {"path": request.path, "query": query, "compressed": conn.compressed}
        )
        try:
            if query.get("v", "10") not in ("9", "10"):
                await conn.close(CLOSE_INVALID_VERSION, "Invalid API version.")
                return ws
            if query.get("encoding", "json") != "json":  # ETF is not implemented by the fake
                await conn.close(CLOSE_DECODE_ERROR, "Error while decoding payload.")
                return ws
            hello = {"heartbeat_interval": self.fake.heartbeat_interval_ms, "_trace": _TRACE}
            await self._send_op(conn, HELLO, hello)
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._on_text(conn, msg.data)
                elif msg.type is WSMsgType.BINARY:
                    await conn.close(CLOSE_DECODE_ERROR, "Error while decoding payload.")
                else:
                    break
        finally:
            self.connections.remove(conn)
            self._on_closed(conn, ws.close_code)
        return ws

    def _on_closed(self, conn: GatewayConnection, code: int | None) -> None:
        session = conn.session
        if session is None or session.connection is not conn:
            return
        session.connection = None
        # A client that closes with 1000/1001 ends its session (documented behaviour);
        # any other close keeps it resumable.
        if not conn.closed_by_server and code in (1000, 1001):
            session.invalidated = True
        self.fake._notify()

    async def close_all(self, code: int = 1001) -> None:
        for conn in list(self.connections):
            await conn.close(code, "Going away")
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- frames ---------------------------------------------------------------
    def _record(self, direction: str, conn: GatewayConnection, payload: Json) -> None:
        self.fake.gateway_log.append(
            GatewayFrame(
                direction=direction,
                op=payload.get("op"),
                t=payload.get("t"),
                s=payload.get("s"),
                d=payload.get("d"),
                session_id=conn.session.id if conn.session else None,
            )
        )
        self.fake._notify()

    async def _send_op(self, conn: GatewayConnection, op: int, d: Any) -> None:
        payload = {"op": op, "d": d, "s": None, "t": None}
        self._record("send", conn, payload)
        await conn.send(payload)

    async def _on_text(self, conn: GatewayConnection, text: str) -> None:
        try:
            payload = json.loads(text)
            op = payload["op"]
        except (ValueError, KeyError, TypeError):
            await conn.close(CLOSE_DECODE_ERROR, "Error while decoding payload.")
            return
        self._record("recv", conn, payload)

        # 120 gateway sends per 60 s, then Discord disconnects with 4008.
        now = time.monotonic()
        conn.received_at.append(now)
        while conn.received_at and now - conn.received_at[0] > 60.0:
            conn.received_at.popleft()
        if len(conn.received_at) > 120:
            await conn.close(CLOSE_RATE_LIMITED, "Rate limited.")
            return

        d = payload.get("d")
        if op == HEARTBEAT:
            await self._send_op(conn, HEARTBEAT_ACK, None)
        elif op == IDENTIFY:
            await self._identify(conn, d if isinstance(d, dict) else {})
        elif op == RESUME:
            await self._resume(conn, d if isinstance(d, dict) else {})
        elif conn.session is None:
            await conn.close(CLOSE_NOT_AUTHENTICATED, "Not authenticated.")
        elif op == PRESENCE:
            conn.session.presence = d
        elif op == VOICE_STATE:
            pass
        elif op == REQUEST_MEMBERS:
            await self._request_members(conn.session, d if isinstance(d, dict) else {})
        else:
            await conn.close(CLOSE_UNKNOWN_OPCODE, "Unknown opcode.")

    def _token_ok(self, token: object) -> bool:
        return token in (self.fake.token, f"Bot {self.fake.token}")

    async def _identify(self, conn: GatewayConnection, d: Json) -> None:
        fake = self.fake
        if conn.session is not None:
            await conn.close(CLOSE_ALREADY_AUTHENTICATED, "Already authenticated.")
            return
        if not self._token_ok(d.get("token")):
            await conn.close(CLOSE_AUTH_FAILED, "Authentication failed.")
            return
        intents = d.get("intents")
        if not isinstance(intents, int) or intents < 0 or intents & ~Intents.VALID_MASK:
            await conn.close(CLOSE_INVALID_INTENTS, "Invalid intent(s).")
            return
        if intents & Intents.PRIVILEGED & ~fake.privileged_intents:
            await conn.close(CLOSE_DISALLOWED_INTENTS, "Disallowed intent(s).")
            return
        shard = d.get("shard")
        shard_id, shard_count = (0, 1) if shard is None else (int(shard[0]), int(shard[1]))
        if not 0 <= shard_id < shard_count:
            await conn.close(CLOSE_INVALID_SHARD, "Invalid shard.")
            return

        session = GatewaySession(
            id=uuid.uuid4().hex,
            shard_id=shard_id,
            shard_count=shard_count,
            intents=intents,
            presence=d.get("presence"),
            shard_sent=shard is not None,
        )
        self.sessions[session.id] = session
        conn.session = session
        session.connection = conn
        self.identify_count += 1

        guilds = [g for g in fake.guilds.values() if session.wants_guild(g.id)]
        ready: Json = {
            "v": 10,
            "user": fake.bot.to_self_payload(),
            "user_settings": {},
            "session_type": "normal",
            "session_id": session.id,
            "resume_gateway_url": fake.resume_gateway_url,
            "relationships": [],
            "private_channels": [],
            "presences": [],
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["us-east"],
            "auth": {},
            "application": {"id": str(fake.application_id), "flags": fake.application_flags},
            "_trace": _TRACE,
        }
        if session.shard_sent:
            ready["shard"] = [shard_id, shard_count]
        await self._dispatch_to(session, "READY", ready)
        # Guilds arrive lazily after READY, one GUILD_CREATE each.
        for guild in guilds:
            await self._dispatch_to(
                session, "GUILD_CREATE", fake.guild_create_payload(guild, intents)
            )
        session.ready = True
        fake._notify()

    async def _resume(self, conn: GatewayConnection, d: Json) -> None:
        if not self._token_ok(d.get("token")):
            await conn.close(CLOSE_AUTH_FAILED, "Authentication failed.")
            return
        session = self.sessions.get(str(d.get("session_id")))
        seq = d.get("seq")
        if (
            session is None
            or session.invalidated
            or not isinstance(seq, int)
            or seq > session.seq
            or (session.buffer and seq < session.buffer[0]["s"] - 1)  # gap too old
        ):
            await self._send_op(conn, INVALID_SESSION, False)
            return
        old = session.connection
        if old is not None and old is not conn:
            old.session = None
            task = asyncio.get_running_loop().create_task(old.close(CLOSE_UNKNOWN_ERROR))
            self._tasks.add(task)  # close_all() waits for it
            task.add_done_callback(self._tasks.discard)
        async with conn.lock:
            conn.session = session
            session.connection = conn
            conn.last_sent_seq = seq
            for payload in list(session.buffer):
                if payload["s"] > seq:
                    self._record("send", conn, payload)
                    await conn.send_locked(payload)
        await self._dispatch_to(session, "RESUMED", {"_trace": _TRACE})
        self.resume_count += 1
        self.fake._notify()

    async def _request_members(self, session: GatewaySession, d: Json) -> None:
        guild = self.fake.guilds.get(int(d.get("guild_id") or 0))
        if guild is None:
            return
        query = str(d.get("query") or "").lower()
        limit = int(d.get("limit") or 0)
        wanted = {int(u) for u in d.get("user_ids") or []}
        members = [
            m
            for m in guild.members.values()
            if (not wanted or m.user.id in wanted) and m.user.username.lower().startswith(query)
        ]
        if limit:
            members = members[:limit]
        chunk: Json = {
            "guild_id": str(guild.id),
            "members": [m.to_payload() for m in members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [str(u) for u in wanted - {m.user.id for m in members}],
        }
        if d.get("presences"):
            chunk["presences"] = []
        if d.get("nonce") is not None:
            chunk["nonce"] = d["nonce"]
        await self._dispatch_to(session, "GUILD_MEMBERS_CHUNK", chunk)

    # --- dispatching ----------------------------------------------------------
    async def _dispatch_to(self, session: GatewaySession, event: str, data: Json) -> None:
        # Sequence assignment and buffering happen before any await so the replay
        # buffer and the live stream agree on order.
        session.seq += 1
        payload: Json = {"op": DISPATCH, "t": event, "s": session.seq, "d": data}
        session.buffer.append(payload)
        conn = session.connection
        if conn is not None:
            self._record("send", conn, payload)
            await conn.send(payload)

    def live_sessions(self, guild_id: int | None = None) -> list[GatewaySession]:
        return [
            s
            for s in self.sessions.values()
            if s.ready and not s.invalidated and s.wants_guild(guild_id)
        ]

    async def dispatch(
        self,
        event: str,
        data: Json,
        *,
        guild_id: int | None = None,
        intent: int | None = None,
        transform: Callable[[GatewaySession, Json], Json] | None = None,
    ) -> int:
        """Send a DISPATCH to every session that should see it; returns how many.

        Sessions whose socket is momentarily closed still get the event buffered,
        so a RESUME delivers it -- exactly what Discord does.
        """
        count = 0
        for session in self.live_sessions(guild_id):
            if intent is not None and not session.has(intent):
                continue
            payload = transform(session, data) if transform else data
            await self._dispatch_to(session, event, payload)
            count += 1
        return count

    # --- test controls --------------------------------------------------------
    async def disconnect(self, *, code: int, resumable: bool) -> int:
        closed = 0
        for conn in list(self.connections):
            if conn.session is None:
                continue
            if not resumable:
                conn.session.invalidated = True
            await conn.close(code, "Fake disconnect")
            closed += 1
        return closed

    async def send_op_to_all(self, op: int, d: Any) -> None:
        for conn in list(self.connections):
            if conn.session is not None:
                await self._send_op(conn, op, d)
