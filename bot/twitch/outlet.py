"""Everything dropcast says on Twitch: chat posts, replies, announcements and whispers.

All of it goes through one shared token bucket (20 messages / 30 s, 100 as a moderator).
Hub posts are queued, so a slow Twitch never holds up other platforms; a stock tick that a
newer post for the same drop makes stale is skipped, while "live", "sold out" and "closed"
are retried until Twitch accepts them. Claim outcomes are gathered and said many to a line
(``bot.coalesce``), so a surge of ``!buy`` is answered in a handful of messages. Twitch
cannot edit chat messages, so ``edit`` is a no-op and ``post`` returns no handle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import twitchio

from bot.coalesce import MIN_LINE, SEPARATOR, Mention, OutcomeLines
from bot.messages import Message, relative
from bot.ratelimit import RateLimiter, TokenBucket
from commerce.clock import Clock

log = logging.getLogger(__name__)

AnnounceColor = Literal["blue", "green", "orange", "purple", "primary"]

MAX_CHAT = 500  # Twitch rejects longer chat messages (and truncates announcements, whispers)
MUST_DELIVER = frozenset({"live", "sold_out", "closed"})
ANNOUNCED: dict[str, AnnounceColor] = {"live": "green", "sold_out": "orange", "closed": "purple"}
# A queued post of the first kind is stale once a post of a second kind for its drop is queued.
SUPERSEDED_BY = {
    "tick": frozenset({"tick", "restocked", "sold_out", "closed"}),
    "restocked": frozenset({"restocked", "sold_out", "closed"}),
    "countdown": frozenset({"countdown", "live", "closed"}),
}
# Twitch refuses a non-moderator's message identical to its previous one within 30 s; chat
# bots append an invisible tag character to make a repeat distinct.
DUPLICATE_BREAKER = " \U000e0000"
WHISPER_RECIPIENTS_PER_DAY = 40  # plus 3 whispers/s and 100/min per sender
DAY = 86_400.0


def chat_limiter(limit: int, window: float) -> RateLimiter:
    """Token buckets that keep within Twitch's *sliding* window of ``limit`` per ``window``.

    A full bucket refilling at limit/window would let 2 × limit through in one window; so
    burst half the limit, and refill at most the other half (less one, for network jitter).
    """
    burst = max(1, limit // 2)
    rate = max(1, limit - burst - 1) / window
    return RateLimiter(
        global_rate=rate, global_capacity=burst, channel_rate=rate, channel_capacity=burst
    )


def default_limiter(moderator: bool) -> RateLimiter:
    """Twitch chat: 20 messages per 30 s, 100 when the bot is a moderator."""
    return chat_limiter(100 if moderator else 20, 30.0)


@dataclass(frozen=True)
class SendPolicy:
    """How patient the sender is. Defaults suit production; tests shrink the waits."""

    limiter: Callable[[bool], RateLimiter] = default_limiter  # moderator? -> buckets
    reply_wait: float = 10.0  # a reply that can't go out this soon is stale: skip it
    retry_delay: float = 1.0  # first backoff after a drop or an HTTP error; doubles
    attempts: int = 5  # for live / sold out / closed; other posts get 2
    # How long the first claim outcome waits for others to share its line, and a stock tick
    # for a newer post to make it stale.
    gather: float = 0.5


@dataclass
class SendStats:
    """What happened to our messages, for logs and /metrics."""

    sent: int = 0
    announced: int = 0
    whispered: int = 0
    dropped: Counter[str] = field(default_factory=Counter)  # Twitch drop reason -> count
    superseded: int = 0  # stale ticks / restocks / countdowns skipped
    outcome_lines: int = 0  # lines that said claim outcomes
    mentioned: int = 0  # people named in them
    stale_replies: int = 0  # replies skipped because the limiter was saturated
    failed: int = 0  # posts given up on after every attempt


def render(message: Message, now: datetime, *, private: bool = False) -> str:
    """Plain Twitch text: ``{at}`` as "in 4 min", then the link, within 500 characters.

    Public renders carry only the public link; ``private`` ones (whispers) the personal one.
    """
    body = message.text.replace("{at}", relative(message.at, now) if message.at else "soon")
    link = message.personal_link if private and message.personal_link else message.public_link
    suffix = f" {link}" if link and link not in body else ""
    body = " ".join(body.split())
    return body[: MAX_CHAT - len(suffix)] + suffix


class TwitchOutlet:
    """The hub's view of one Twitch channel, and the only way the adapter sends anything."""

    platform = "twitch"

    def __init__(
        self,
        channel: twitchio.PartialUser,
        bot: twitchio.PartialUser,
        *,
        clock: Clock,
        moderator: bool | None = None,
        can_announce: bool = False,
        whispers: bool = False,
        policy: SendPolicy | None = None,
    ) -> None:
        self.channel = channel
        self.bot = bot
        self.clock = clock
        self.policy = policy or SendPolicy()
        self.can_announce = can_announce  # the bot token has moderator:manage:announcements
        self.whispers = whispers  # opted in, and the bot token has user:manage:whispers
        self.stats = SendStats()
        self._moderator = moderator  # None: not known yet (limits as for a regular chatter)
        self.limiter = self.policy.limiter(bool(moderator))
        # Twitch: one announcement per 2 s per channel (a little slower, for network jitter).
        self._announce_bucket = TokenBucket(rate=1 / 2.2, capacity=1)
        self._whisper_second = TokenBucket(rate=3, capacity=3)
        self._whisper_minute = TokenBucket(rate=100 / 60, capacity=100)
        self._recipients: dict[str, float] = {}  # user id -> first whisper (monotonic)
        self._pending: deque[tuple[float, Message]] = deque()  # (queued at, post)
        self._outcomes = OutcomeLines(MAX_CHAT)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._worker: asyncio.Task[None] | None = None
        self._closed = False

    # -- moderator status -----------------------------------------------------------------

    @property
    def moderator(self) -> bool | None:
        return self._moderator

    def set_moderator(self, moderator: bool) -> None:
        """Learned from the bot's own badges or an announcement's answer: adjust the limits."""
        if moderator == self._moderator:
            return
        log.info("twitch: the bot is %sa moderator in the channel", "" if moderator else "not ")
        was_limit = bool(self._moderator)
        self._moderator = moderator
        if moderator != was_limit:
            self.limiter = self.policy.limiter(moderator)

    # -- Outlet -----------------------------------------------------------------------------

    async def post(self, message: Message) -> str | None:
        """Queue a public post; it goes out in order behind the limiter. No handle: Twitch
        cannot edit messages."""
        if self._closed:
            log.warning("twitch outlet is closed; not posting %s", message.kind)
            return None
        self._pending.append((time.monotonic(), message))
        self._kick()
        return None

    def mention(self, who: str, brief: str) -> None:
        """Say ``who``'s claim outcome in the next outcome line (queued, never dropped)."""
        if self._closed:
            log.warning("twitch outlet is closed; not saying a claim outcome")
            return
        self._outcomes.add(Mention(who, brief))
        self._kick()

    def _kick(self) -> None:
        self._idle.clear()
        self._wake.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name="twitch-outlet")

    async def edit(self, handle: str, message: Message) -> None:
        """Twitch chat messages cannot be edited; the hub posts thresholds separately."""

    async def edit_private(self, hold_id: int, message: Message) -> None:
        """Whispers cannot be edited: a paid hold's pay link stays as it was sent."""

    async def send_private(self, identity: str, message: Message, key: str | None = None) -> bool:
        """A whisper, when whispers are opted in and Twitch's whisper limits allow it."""
        platform, _, user_id = identity.partition(":")
        if not self.whispers or platform != self.platform or not self._may_whisper(user_id):
            return False
        await self._whisper_second.acquire()
        await self._whisper_minute.acquire()
        try:
            await self.bot.send_whisper(
                to_user=user_id, message=render(message, self.clock.now(), private=True)
            )
        except twitchio.HTTPException as exc:
            if exc.status == 401:  # scope missing or no verified phone: it won't get better
                self.whispers = False
            log.warning("twitch whisper failed (%s): %s", exc.status, exc.extra.get("message"))
            return False
        self._recipients.setdefault(user_id, time.monotonic())
        self.stats.whispered += 1
        return True

    # -- replies ------------------------------------------------------------------------------

    async def reply(self, parent_id: str, text: str) -> bool:
        """Answer a chat message in its thread; False when skipped or dropped."""
        try:
            await asyncio.wait_for(
                self.limiter.acquire(self.channel.id), timeout=self.policy.reply_wait
            )
        except TimeoutError:
            self.stats.stale_replies += 1
            log.warning("twitch: chat limit saturated, skipping a reply")
            return False
        return await self._chat(text, reply_to=parent_id) is None

    # -- lifecycle ----------------------------------------------------------------------------

    async def drain(self) -> None:
        """Wait until every queued post has been sent (or given up on)."""
        await self._idle.wait()

    async def close(self, flush_timeout: float = 5.0) -> None:
        """Stop taking posts; give queued ones (a final "sold out") a moment to go out, then
        stop the sender and wait until it has stopped. Once closed, closing again returns at
        once: the sender is gone, so nothing queued could go out any more (the bot's close
        after the outlet's own waited out the whole flush timeout)."""
        if self._closed and self._worker is None:
            return
        self._closed = True
        try:
            async with asyncio.timeout(flush_timeout):
                await self.drain()
        except TimeoutError:
            log.warning("twitch: %d posts not sent at shutdown", len(self._pending))
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)

    # -- the sender ---------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._pending and self._outcomes:
                try:
                    await self._say_outcomes()
                except Exception:
                    log.exception("twitch: could not say claim outcomes")
                    self.stats.failed += 1
                continue
            if not self._pending:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            queued, message = self._pending[0]
            if message.kind in SUPERSEDED_BY:
                # A stock tick settles for a moment first: in a sell-out, "sold out" comes
                # right behind and makes it stale, sparing the chat limit for outcomes.
                settle = queued + self.policy.gather - time.monotonic()
                if settle > 0:
                    await asyncio.sleep(settle)
            self._pending.popleft()
            if self._stale(message):
                self.stats.superseded += 1
                continue
            try:
                await self._deliver(message)
            except Exception:
                log.exception("twitch: could not post %s", message.kind)
                self.stats.failed += 1

    async def _say_outcomes(self) -> None:
        """One line of waiting claim outcomes: at once when they fill a line, else once the
        oldest has waited ``gather`` seconds for others to join it (and more join while the
        limiter makes us wait)."""
        await self._outcomes.ready(self.policy.gather)
        await self.limiter.acquire(self.channel.id)
        line = self._outcomes.take_line()
        if line is None:
            return
        text, said = line
        for attempt in range(self.policy.attempts):
            if attempt:
                await asyncio.sleep(self.policy.retry_delay * 2 ** (attempt - 1))
                await self.limiter.acquire(self.channel.id)
            problem = await self._chat(text)
            if problem is None:
                self.stats.outcome_lines += 1
                self.stats.mentioned += len(said)
                return
            if problem == "msg_duplicate":
                text = text.removesuffix(DUPLICATE_BREAKER) + DUPLICATE_BREAKER
        self.stats.failed += 1
        log.error("twitch: gave up saying %d claim outcomes", len(said))

    def _stale(self, message: Message) -> bool:
        newer = SUPERSEDED_BY.get(message.kind, frozenset())
        return any(m.drop_id == message.drop_id and m.kind in newer for _, m in self._pending)

    async def _deliver(self, message: Message) -> None:
        text = render(message, self.clock.now())
        # Claim outcomes waiting ride along in the post's spare room: one message fewer.
        room = MAX_CHAT - len(text) - len(SEPARATOR)
        extra = self._outcomes.take_line(room) if self._outcomes and room >= MIN_LINE else None
        if extra is not None:
            text = f"{text}{SEPARATOR}{extra[0]}"
            self.stats.mentioned += len(extra[1])
        attempts = self.policy.attempts if message.kind in MUST_DELIVER else 2
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(self.policy.retry_delay * 2 ** (attempt - 1))
            color = ANNOUNCED.get(message.kind)
            if color is not None and await self._announce(text, color):
                return
            problem = await self._send(text)
            if problem is None:
                return
            if problem == "msg_duplicate":
                text = text.removesuffix(DUPLICATE_BREAKER) + DUPLICATE_BREAKER
        self.stats.failed += 1
        log.error("twitch: gave up posting %s after %d attempts", message.kind, attempts)

    async def _announce(self, text: str, color: AnnounceColor) -> bool:
        """An announcement when the bot may make one. Whether it is a moderator is learned
        from the answer: 403 means no (and chat is used), success means yes."""
        if not self.can_announce or self._moderator is False:
            return False
        await self.limiter.acquire(self.channel.id)
        await self._announce_bucket.acquire()
        try:
            await self.channel.send_announcement(moderator=self.bot.id, message=text, color=color)
        except twitchio.HTTPException as exc:
            if exc.status == 403:
                self.set_moderator(False)
            elif exc.status == 401:
                self.can_announce = False
                log.warning("twitch: announcements refused (%s)", exc.extra.get("message"))
            elif exc.status == 429:
                self._announce_bucket.penalize(2.0)
            return False
        self.set_moderator(True)
        self.stats.announced += 1
        return True

    async def _send(self, text: str) -> str | None:
        await self.limiter.acquire(self.channel.id)
        return await self._chat(text)

    async def _chat(self, text: str, *, reply_to: str | None = None) -> str | None:
        """One Helix send-chat-message (the limiter token is already taken). Returns None when
        sent, else Twitch's drop code or ``http_<status>``."""
        try:
            sent = await self.channel.send_message(
                text, sender=self.bot.id, reply_to_message_id=reply_to
            )
        except twitchio.MessageRejectedError as exc:  # twitchio >= 3.3: is_sent false
            return self._dropped(exc.code, exc.message)
        except twitchio.HTTPException as exc:
            log.warning("twitch: send-chat-message failed (%s): %s", exc.status, exc.extra)
            return f"http_{exc.status}"
        if not sent.sent:  # older twitchio returns the drop instead of raising
            return self._dropped(sent.dropped_code, sent.dropped_message)
        self.stats.sent += 1
        return None

    def _dropped(self, code: str | None, reason: str | None) -> str:
        code = code or "unknown"
        self.stats.dropped[code] += 1
        log.warning("twitch dropped a chat message: %s (%s)", reason, code)
        return code

    def _may_whisper(self, user_id: str) -> bool:
        now = time.monotonic()
        self._recipients = {u: t for u, t in self._recipients.items() if now - t < DAY}
        if user_id in self._recipients or len(self._recipients) < WHISPER_RECIPIENTS_PER_DAY:
            return True
        log.info("twitch: whisper recipient limit for today reached")
        return False
