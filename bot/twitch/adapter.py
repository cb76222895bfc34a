"""The Twitch adapter: chat in over EventSub (``channel.chat.message``), replies and posts out
over Helix, personal links only privately (Discord DM, else an opt-in whisper).

It only translates: chat lines go to the one ``CommandHandler``; what comes back is rendered
as plain Twitch text. ``TwitchBot.start`` points twitchio at the configured endpoints, logs
in, subscribes, and registers a ``TwitchOutlet`` with the hub.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import aiohttp
import twitchio
import twitchio.eventsub.websockets as eventsub_websockets
from aiohttp import web
from twitchio import eventsub
from twitchio.http import Route

from bot.commands import CommandHandler
from bot.hub import ChatHub, Outlet
from bot.linking import AccountLinker
from bot.messages import ChatUser, Message, relative
from bot.presenter import platforms as say
from bot.twitch.clips import ClipMaker, ClipTiming, HelixClips, HelixResets
from bot.twitch.outlet import SendPolicy, TwitchOutlet, render
from bot.twitch.viewers import SAMPLE_INTERVAL, ViewerCallback, ViewerSampler
from bot.webpage import PAGES
from commerce.core import Commerce
from commerce.domain.identities import SCHEMES
from config.settings import TwitchSettings

log = logging.getLogger(__name__)

CREATOR_BADGES = frozenset({"broadcaster", "moderator", "lead_moderator"})
SCHEME_NAME = "twitch"
CHAT_GRACE = 5.0  # at close, how long chat lines being handled may take to finish
CLIENT_CLOSE_TIMEOUT = 15.0  # twitchio's own waits (a websocket close) are 10 s


@dataclass(frozen=True)
class Endpoints:
    helix: str
    oauth: str
    eventsub: str

    @classmethod
    def of(cls, settings: TwitchSettings) -> Endpoints:
        oauth = str(settings.id_base).rstrip("/") + "/"
        # twitchio appends "oauth2/token" itself; accept the full OAuth base too.
        oauth = oauth.removesuffix("oauth2/")
        return cls(str(settings.api_base).rstrip("/") + "/", oauth, settings.eventsub_url)

    @classmethod
    def current(cls) -> Endpoints:
        return cls(Route.BASE, Route.ID_BASE, eventsub_websockets.WSS)

    def install(self) -> None:
        """twitchio reads its endpoints from module globals: set them for the process."""
        Route.BASE, Route.ID_BASE = self.helix, self.oauth
        eventsub_websockets.WSS = self.eventsub


class TwitchBot:
    """One Twitch channel, run by a bot account, for the composition root to start and close."""

    def __init__(
        self,
        settings: TwitchSettings,
        handler: CommandHandler,
        hub: ChatHub,
        commerce: Commerce,
        *,
        linker: AccountLinker | None = None,
        on_viewers: ViewerCallback | None = None,
        sample_interval: float = SAMPLE_INTERVAL,
        policy: SendPolicy | None = None,
        clip_timing: ClipTiming | None = None,
    ) -> None:
        missing = [
            key
            for key in ("client_id", "client_secret", "bot_id", "bot_token", "channel")
            if getattr(settings, key) is None
        ]
        if missing:
            raise ValueError(f"twitch.{missing[0]} is required to run the Twitch bot")
        self.settings = settings
        self.handler = handler
        self.hub = hub
        self.commerce = commerce
        self.linker = linker or AccountLinker(commerce)
        self.on_viewers = on_viewers
        self.sample_interval = sample_interval
        self.policy = policy
        self.bot_id: str = settings.bot_id or ""
        self.broadcaster_id: str | None = None
        self._allowed = {login.lower() for login in settings.allowed_logins}
        self._client: twitchio.Client | None = None
        self._outlet: TwitchOutlet | None = None
        self._sampler: ViewerSampler | None = None
        self._saved_endpoints: Endpoints | None = None
        self.clip_timing = clip_timing
        self.clips: ClipMaker | None = None
        self._resets = HelixResets()  # Ratelimit-Reset of Helix's 429s, which twitchio drops
        self._session: aiohttp.ClientSession | None = None
        # twitchio runs each listener call in a task it keeps no handle on: ours keep one,
        # so that close() can wait for them (a chat line may be mid-claim in the database).
        self._handling: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def outlet(self) -> TwitchOutlet:
        if self._outlet is None:
            raise RuntimeError("the Twitch bot has not been started")
        return self._outlet

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Log in, subscribe to the channel's chat, and register the outlet with the hub."""
        self._saved_endpoints = Endpoints.current()
        Endpoints.of(self.settings).install()
        try:
            await self._connect()
        except BaseException:
            await self.close()
            raise

    async def _connect(self) -> None:
        s = self.settings
        assert s.client_secret is not None and s.bot_token is not None and s.channel is not None
        self._session = aiohttp.ClientSession(trace_configs=[self._resets.trace_config()])
        client = self._client = twitchio.Client(
            client_id=s.client_id or "",
            client_secret=s.client_secret.get_secret_value(),
            bot_id=self.bot_id,
            session=self._session,
        )
        # No OAuth web adapter and no .tio.tokens.json: tokens come from settings.
        await client.login(load_tokens=False, save_tokens=False)
        refresh = s.bot_refresh_token.get_secret_value() if s.bot_refresh_token else ""
        token = await client.add_token(s.bot_token.get_secret_value(), refresh)
        if token.user_id != self.bot_id:
            raise ValueError(f"twitch.bot_token belongs to user {token.user_id}, not bot_id")
        scopes = set(token.scopes)
        channel = await self._channel(client, s.channel)
        self.broadcaster_id = channel.id
        if s.whisper_fallback and "user:manage:whispers" not in scopes:
            log.warning("twitch.whisper_fallback needs the user:manage:whispers scope")
        self._outlet = TwitchOutlet(
            client.create_partialuser(channel.id, channel.name),
            client.create_partialuser(self.bot_id),
            clock=self.commerce.clock,
            moderator=True if channel.id == self.bot_id else None,
            can_announce="moderator:manage:announcements" in scopes,
            whispers=s.whisper_fallback and "user:manage:whispers" in scopes,
            policy=self.policy,
        )
        client.add_listener(self._on_message, event="event_message")
        client.add_listener(self._on_revoked, event="event_subscription_revoked")
        await client.subscribe_websocket(
            eventsub.ChatMessageSubscription(broadcaster_user_id=channel.id, user_id=self.bot_id),
            token_for=self.bot_id,
        )
        self.hub.add_outlet(self._outlet)
        if s.clips:
            broadcaster = client.create_partialuser(channel.id, channel.name)
            self.clips = ClipMaker(
                self.commerce,
                HelixClips(client, broadcaster, self.bot_id),
                self._resets,
                self.clip_timing,
            )
            await self.clips.start()
            self.handler.clippers[SCHEME_NAME] = self.clips  # !clip
        if self.on_viewers is not None:
            self._sampler = ViewerSampler(
                self.commerce, self._viewers, self.on_viewers, interval=self.sample_interval
            )
            await self._sampler.start()
        log.info("twitch: listening to #%s as bot %s", channel.name, self.bot_id)

    async def close(self) -> None:
        """Stop taking chat, let the lines being handled finish, stop sampling, flush queued
        posts, disconnect, restore twitchio's endpoints. Bounded; when it returns, no task
        this bot started is still running."""
        self._closing = True
        await self._finish_handling(CHAT_GRACE)
        if self._sampler is not None:
            await self._sampler.stop()
            self._sampler = None
        if self.clips is not None:
            self.handler.clippers.pop(SCHEME_NAME, None)
            await self.clips.close()
        if self._outlet is not None:
            await self._outlet.close()
        if self._client is not None:
            client, self._client = self._client, None
            try:
                async with asyncio.timeout(CLIENT_CLOSE_TIMEOUT):
                    await client.close()
            except TimeoutError:
                log.warning("twitch: the client did not close within %s s", CLIENT_CLOSE_TIMEOUT)
        if self._session is not None:  # ours, lent to twitchio, which leaves it open
            session, self._session = self._session, None
            await session.close()
        if self._saved_endpoints is not None:
            self._saved_endpoints.install()
            self._saved_endpoints = None

    async def _finish_handling(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for chat lines being handled, then cancel the rest
        and wait until they have ended."""
        if not self._handling:
            return
        _, late = await asyncio.wait(set(self._handling), timeout=grace)
        if late:
            log.warning("twitch: %d chat lines still running at shutdown; cancelled", len(late))
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    @staticmethod
    async def _channel(client: twitchio.Client, channel: str) -> twitchio.User:
        users = await client.fetch_users(logins=[channel.lower()])
        if not users and channel.isdigit():
            users = await client.fetch_users(ids=[channel])
        if not users:
            raise ValueError(f"twitch.channel {channel!r} is not a Twitch user")
        return users[0]

    async def _viewers(self) -> int | None:
        assert self._client is not None and self.broadcaster_id is not None
        streams = await self._client.fetch_streams(user_ids=[self.broadcaster_id])
        return streams[0].viewer_count if streams else None

    async def _on_revoked(self, payload: twitchio.SubscriptionRevoked) -> None:
        # Twitch revokes on a ban, a revoked token or a removed user: the bot is deaf now.
        log.error("twitch: chat subscription revoked (%s); restart with a valid setup", payload)

    # -- chat in --------------------------------------------------------------------------------

    async def _on_message(self, payload: twitchio.ChatMessage) -> None:
        task = asyncio.current_task()
        if self._closing or task is None:
            return
        self._handling.add(task)
        try:
            await self._chat_message(payload)
        finally:
            self._handling.discard(task)

    async def _chat_message(self, payload: twitchio.ChatMessage) -> None:
        if payload.broadcaster.id != self.broadcaster_id:
            return
        chatter = payload.chatter
        badges = {badge.set_id for badge in payload.badges}
        if chatter.id == self.bot_id:
            # Twitch echoes our own messages, with our badges: that tells us if we're a mod.
            self.outlet.set_moderator(bool(badges & CREATOR_BADGES))
            return
        login = (chatter.name or "").lower()
        user = ChatUser(
            f"twitch:{chatter.id}",
            chatter.display_name or login or chatter.id,
            is_creator=bool(badges & CREATOR_BADGES) or login in self._allowed,
        )
        try:
            await self.handle_chat(user, payload.text, payload.id, login=login or None)
        except Exception:
            log.exception("twitch: could not handle a chat message")

    async def handle_chat(
        self, user: ChatUser, text: str, message_id: str, *, login: str | None = None
    ) -> None:
        """One chat line from ``user`` (``login``: how chat mentions them): run it; answer
        a claim in the next outcome line, anything else in its thread."""
        words = text.strip().split()
        if words and words[0].lower() == f"{self.handler.prefix}link":
            await self.outlet.reply(message_id, await self._link(user, words[1:]))
            return
        out = await self.handler.handle(
            user, text, message_id=message_id, channel=f"twitch:{self.broadcaster_id}"
        )
        if out is None:
            return
        for reply in out.replies:
            if reply.brief is not None:
                brief = await self._outcome(user, reply)
                self.outlet.mention(f"@{login or user.name}", brief)
            else:
                # Never a personal link: a public render carries only the public one.
                await self.outlet.reply(message_id, render(reply, self.commerce.clock.now()))
        for post in out.posts:
            await self.outlet.post(post)

    # -- chat out -------------------------------------------------------------------------------

    async def _outcome(self, user: ChatUser, reply: Message) -> str:
        """A claim's outcome for an outcome line. A pay link is delivered privately first;
        the line says where it went (or that the drop page has the hold)."""
        assert reply.brief is not None
        now = self.commerce.clock.now()
        brief = reply.brief.replace("{at}", relative(reply.at, now) if reply.at else "soon")
        if reply.personal_link is None:
            return brief
        where = await self._deliver_privately(user.identity, reply)
        if where is not None:
            return say.pay_link_went(brief, where)
        page = reply.public_link or (
            self.handler.drop_page(reply.drop_id) if reply.drop_id is not None else ""
        )
        return say.check_out_on_page(brief, page)

    async def reachable(self, user: ChatUser) -> bool:
        """Can a personal link reach this viewer privately: opted-in whispers, a drop page
        they signed in to, or a linked account on a platform here that messages privately?"""
        if self._outlet is not None and self._outlet.whispers:
            return True
        customer_id = await self.commerce.customers.find(user.identity)
        if customer_id is None:
            return False
        customer = await self.commerce.customers.get(customer_id)
        if customer.verified and any(o.platform == PAGES for o in self.hub.outlets):
            return True
        return bool(self._linked_outlets(customer.identities))

    def _linked_outlets(self, identities: Iterable[str]) -> list[tuple[str, Outlet, str]]:
        """(linked identity, outlet, its private channel) for the viewer's accounts on
        platforms running here that message people privately without asking, best first."""
        by_scheme = {i.split(":", 1)[0]: i for i in identities}
        return [
            (by_scheme[scheme.name], outlet, scheme.private.described)
            for scheme in SCHEMES.private(opted_in=False)
            if scheme.private is not None and scheme.name in by_scheme
            for outlet in self.hub.outlets
            if outlet.platform == scheme.name
        ]

    async def _deliver_privately(self, identity: str, message: Message) -> str | None:
        """Where the personal link went: a linked account's private messages (Discord DMs),
        else the drop page the viewer signed in to, else a whisper."""
        customer_id = await self.commerce.customers.find(identity)
        if customer_id is not None:
            customer = await self.commerce.customers.get(customer_id)
            for linked, outlet, channel in self._linked_outlets(customer.identities):
                try:
                    if await outlet.send_private(linked, message):
                        return say.in_private(channel)
                except Exception:
                    log.exception("twitch: a private message to a linked account failed")
            for page in (o for o in self.hub.outlets if o.platform == PAGES):
                if await page.send_private(identity, message):
                    return say.on_signed_in_page(message.public_link)
        if await self.outlet.send_private(identity, message):
            return say.in_private(say.TWITCH_WHISPERS)
        return None

    def routes(self) -> list[web.RouteDef]:
        return []  # everything happens on Twitch

    async def _link(self, user: ChatUser, args: list[str]) -> str:
        if len(args) != 1:
            return say.link_code_needed(user.name, self.handler.prefix)
        if await self.linker.redeem_link_code(args[0], user.identity):
            return say.accounts_linked(user.name)
        return say.LINK_CODE_UNKNOWN
