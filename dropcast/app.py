"""The composition root: builds the database, the commerce core, the link signer, the web
app, the bots and the scheduler from settings, and owns start-up and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources

from aiohttp import web

from bot.commands import CommandHandler
from bot.discord import DiscordBot
from bot.hub import ChatHub
from bot.presenter import Presenter
from bot.studio.outlet import StudioOutlet
from bot.twitch import AccountLinker, TwitchBot
from commerce.clock import Clock, SystemClock
from commerce.core import Commerce
from commerce.domain.model import normalize_identity
from commerce.dropfile import validate_spec
from commerce.links import LinkSigner
from commerce.storage.database import Database
from commerce.storage.migrate import upgrade
from commerce.storage.pg_events import PgEventChannel
from commerce.web.app import build_payments, create_app
from config.settings import Settings
from scheduler.leader import Leadership
from scheduler.outbox import (
    Dispatcher,
    OutletSender,
    RetentionRenderer,
    Sender,
    WebhookSender,
)
from scheduler.runner import SchedulerRole

log = logging.getLogger("dropcast")
ALL_ROLES = frozenset({"web", "bots", "scheduler"})


@dataclass
class Chat:
    handler: CommandHandler
    hub: ChatHub
    studio: StudioOutlet | None


@dataclass
class App:
    settings: Settings
    db: Database
    commerce: Commerce
    signer: LinkSigner
    _background: set[asyncio.Task[None]] = field(default_factory=set)

    async def _track_issued(self, drop_id: int, identity: str, tag: str | None) -> None:
        customer_id = await self.commerce.customers.resolve(identity)
        self.commerce.tracker.note(drop_id, "link_issued", customer_id, tag=tag)

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        clock: Clock | None = None,
        migrate: bool = True,
        hand_off: bool = False,
    ) -> App:
        """Connect, bring the schema up to date, and assemble the core."""
        db = Database(
            settings.database.url,
            echo=settings.database.echo,
            pool_size=settings.database.pool_size,
        )
        if migrate:
            await upgrade(db)
        commerce = Commerce.build(db, clock=clock or SystemClock())
        if db.dialect == "postgresql":
            # Changes made here reach every running process (LISTEN/NOTIFY on commit).
            commerce.uow.stage = PgEventChannel(db, commerce.bus)
        else:
            commerce.uow.hand_off = hand_off
        configured = settings.security.secret_key
        secret = configured.get_secret_value() if configured else await commerce.secret_key()
        signer = LinkSigner(secret, commerce.clock, settings.security.link_ttl_seconds)
        return cls(settings, db, commerce, signer)

    async def close(self) -> None:
        await self.db.dispose()

    def link_url(self, drop_id: int, identity: str, tag: str | None = None) -> tuple[str, datetime]:
        """A personal one-click URL for ``identity`` on ``drop_id`` (counted as issued)."""
        token, link = self.signer.issue(drop_id, identity, tag)
        with contextlib.suppress(RuntimeError):  # no running loop: nothing to measure into
            task = asyncio.get_running_loop().create_task(
                self._track_issued(drop_id, link.identity, tag)
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return f"{self.settings.web.base_url}/c/{token}", link.expires_at

    async def issue_link(
        self, drop_id: int, identity: str, tag: str | None = None
    ) -> tuple[str, datetime]:
        identity = normalize_identity(identity)  # bad input first: it needs no database
        await self.commerce.drops.get(drop_id)  # raises DropNotFound
        return self.link_url(drop_id, identity, tag)

    async def seed_demo(self) -> int:
        """The demo drop: opens a minute from now, so the countdown is visible."""
        import tomllib

        text = resources.files("config").joinpath("demo_drop.toml").read_text(encoding="utf-8")
        spec = validate_spec(tomllib.loads(text))
        return await self.commerce.drops.create(spec)

    async def serve(
        self,
        *,
        demo: bool = False,
        roles: frozenset[str] = ALL_ROLES,
        stop: asyncio.Event | None = None,
    ) -> None:
        """Run the given roles in this process until SIGINT/SIGTERM (or ``stop`` is set).

        web: checkout, pages, APIs and the studio chat; bots: Discord and Twitch;
        scheduler: lifecycle jobs and reminder delivery (one leader per database).
        """
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not main thread
                loop.add_signal_handler(sig, stop.set)
        async with contextlib.AsyncExitStack() as stack:
            self.commerce.uow.hand_off = False  # this process announces its own events
            if isinstance(self.commerce.uow.stage, PgEventChannel):
                # Several processes share one stock count: events cross via LISTEN/NOTIFY.
                channel = self.commerce.uow.stage
                await channel.start()
                stack.push_async_callback(channel.stop)
            await self.commerce.outbox.relay_pending()
            tracker = self.commerce.tracker
            tracker.follow(self.commerce.bus)
            flusher = asyncio.create_task(tracker.run(stop))
            stack.push_async_callback(lambda: asyncio.wait_for(flusher, 10))
            chat = self.build_chat(web="web" in roles, bots="bots" in roles)
            await chat.hub.start()
            stack.push_async_callback(chat.hub.stop)
            if "bots" in roles:
                for bot in self._bots(chat):
                    await bot.start()
                    stack.push_async_callback(bot.close)
            if "web" in roles:
                runner = await self._start_web(chat)
                stack.push_async_callback(runner.cleanup)
            if "scheduler" in roles:
                scheduler = self._scheduler(chat)
                await scheduler.start()
                stack.push_async_callback(scheduler.shutdown)
            if demo:
                drop_id = await self.seed_demo()
                self._print_demo(drop_id, studio=chat.studio is not None)
            await stop.wait()

    def _bots(self, chat: Chat) -> list[DiscordBot | TwitchBot]:
        """The chat platforms with credentials in the settings, sharing one linker."""
        bots: list[DiscordBot | TwitchBot] = []
        linker = AccountLinker(self.commerce)
        if self.settings.discord.enabled:
            bots.append(DiscordBot(self.settings.discord, chat.handler, chat.hub, linker=linker))
        if self.settings.twitch.enabled:
            tracker = self.commerce.tracker

            async def viewers(drop_id: int, count: int) -> None:
                await tracker.record_viewers(drop_id, count, "twitch")

            bots.append(
                TwitchBot(
                    self.settings.twitch,
                    chat.handler,
                    chat.hub,
                    self.commerce,
                    linker=linker,
                    on_viewers=viewers,
                )
            )
        return bots

    def _scheduler(self, chat: Chat) -> SchedulerRole:
        """The scheduler role; it delivers through the outlets living in this process."""
        senders: dict[str, Sender] = {"webhook": WebhookSender()}
        for outlet in chat.hub.outlets:
            senders[outlet.platform] = OutletSender(outlet)
        sched = self.settings.scheduler
        dispatcher = Dispatcher(
            self.commerce,
            self.renderer(),
            senders,
            lease_seconds=sched.lease_seconds,
            concurrency=sched.dispatch_concurrency,
        )
        return SchedulerRole(
            self.commerce,
            sched,
            hub=chat.hub,
            dispatcher=dispatcher,
            leadership=Leadership(self.db, poll_seconds=sched.leader_poll_seconds),
        )

    def renderer(self) -> RetentionRenderer:
        base = self.settings.web.base_url

        def issue(drop_id: int, identity: str, tag: str | None) -> str:
            return self.link_url(drop_id, identity, tag)[0]

        return RetentionRenderer(
            self.commerce,
            issue,
            lambda customer_id: f"{base}/u/{self.signer.unsubscribe_token(customer_id)}",
            base,
        )

    def build_chat(self, *, web: bool = True, bots: bool = True) -> Chat:
        """The chat side: one command handler and hub, and the platform outlets."""
        chat_settings = self.settings.chat
        base = self.settings.web.base_url

        def issue(drop_id: int, identity: str) -> str:
            return self.link_url(drop_id, identity)[0]

        handler = CommandHandler(
            self.commerce,
            issue,
            public_url=base,
            prefix=chat_settings.prefix,
            drops_dir=chat_settings.drops_dir,
        )
        hub = ChatHub(
            self.commerce,
            Presenter(self.commerce, base, chat_settings.prefix),
            issue,
            thresholds=chat_settings.tick_thresholds,
            edit_interval=chat_settings.edit_interval_seconds,
        )
        studio_on = chat_settings.studio
        if studio_on is None:
            studio_on = not (self.settings.discord.enabled or self.settings.twitch.enabled)
        studio = StudioOutlet(handler) if studio_on and web else None
        if studio is not None:
            hub.add_outlet(studio)
        return Chat(handler, hub, studio)

    async def _start_web(self, chat: Chat) -> web.AppRunner:
        app = create_app(
            self.commerce, self.settings, self.signer, build_payments(self.settings, self.commerce)
        )
        if chat.studio is not None:
            app.router.add_routes(chat.studio.routes())
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.settings.web.host, self.settings.web.port)
        await site.start()
        log.info("web listening on http://%s:%s", self.settings.web.host, self.settings.web.port)
        return runner

    def _print_demo(self, drop_id: int, *, studio: bool) -> None:
        base = self.settings.web.base_url
        url, _ = self.link_url(drop_id, "web:demo@example.com")
        print(f"demo drop {drop_id} opens in about a minute:")
        if studio:
            print(f"  studio chat {base}/studio   (type !drop, then !buy once it is live)")
        print(f"  drop page   {base}/d/{drop_id}")
        print(f"  overlay     {base}/overlay/{drop_id}")
        print(f"  buy link    {url}")
        print("Ctrl-C stops.", flush=True)
