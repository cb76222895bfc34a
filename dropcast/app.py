"""The composition root: builds the database, the commerce core, the secret and the link
signer, the payment gateways and checkout, the web app, the bots and the scheduler from
settings, and owns start-up and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from importlib import resources
from typing import Any

from aiohttp import web
from pydantic import SecretStr
from sqlalchemy import select

from bot.commands import CommandHandler
from bot.delivery import OutletSender, WebhookSender
from bot.hub import ChatHub
from bot.linking import AccountLinker
from bot.messages import Message
from bot.platform import ChatPlatform, PlatformContext, PlatformPlugin
from bot.platforms import PLATFORMS, register_schemes
from bot.presenter import Presenter
from bot.presenter.retention import RetentionRenderer
from bot.recap import RecapChart
from bot.webpage import PageOutlet
from commerce.clock import Clock, SystemClock
from commerce.core import Commerce
from commerce.desk import OrderDesk
from commerce.domain.errors import DropNotFound
from commerce.domain.model import (
    DropFormat,
    DropState,
    DropView,
    Money,
    currency_exponent,
    normalize_identity,
)
from commerce.domain.payments import PaymentGateways
from commerce.dropfile import validate_spec
from commerce.links import LinkIssuer, LinkSigner, drop_page_url
from commerce.money_format import set_default_locale
from commerce.payments import build_gateways
from commerce.services.checkout import CheckoutService
from commerce.services.webhooks import WebhookPolicy
from commerce.storage.database import Database
from commerce.storage.migrate import upgrade
from commerce.storage.pg_events import PgEventChannel
from commerce.storage.tables import kv
from commerce.storage.unit_of_work import Tx
from commerce.web.app import create_app
from commerce.web.inbox import WebInbox
from commerce.web.mail import ConsoleMailer, mailer_for
from config.settings import Settings
from dropcast import logs
from scheduler.leader import Leadership
from scheduler.outbox import Dispatcher, Sender
from scheduler.runner import SchedulerRole
from scheduler.webhooks import WebhookWorker

log = logging.getLogger("dropcast")
ALL_ROLES = frozenset({"web", "bots", "scheduler"})
DEMO_KEY = "demo_drop_id"  # kv: the demo drop `run --demo` reuses while it is open


def event_loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """How ``asyncio.Runner`` makes a process's loop (``runtime.event_loop``): uvloop's when
    chosen and installed, else None (asyncio's own)."""
    if name != "uvloop":
        return None
    try:
        import uvloop
    except ImportError:
        log.warning("uvloop is not installed: running on asyncio's event loop")
        return None
    return uvloop.new_event_loop


def event_loop_name() -> str:
    """Which loop this process runs on, "uvloop" or "asyncio" (its startup line says)."""
    return type(asyncio.get_running_loop()).__module__.partition(".")[0]


def drop_file_of(view: DropView) -> dict[str, Any]:
    """The drop file (as parsed TOML) that makes a copy of ``view``'s drop: its settings,
    its own catalogue (titles and prices as this drop sold them) and every pool's total,
    restocks included. No times and no replay: those belong to the original."""
    drop = view.drop
    header: dict[str, Any] = {
        "title": drop.title,
        "format": drop.format.value,
        "hold_seconds": drop.hold_seconds,
        "per_customer_limit": drop.per_customer_limit,
    }
    if drop.demo_seconds is not None:
        header["demo_seconds"] = drop.demo_seconds
    if drop.objective:
        header["objective"] = dict(drop.objective)
    if drop.format is DropFormat.BUNDLE and drop.price is not None:
        header["price"], header["currency"] = _decimal(drop.price), drop.price.currency
    if drop.shipping is not None:
        header["shipping"] = {
            where: _decimal(Money(minor, view.currency)) for where, minor in drop.shipping.items()
        }
    items: dict[str, dict[str, Any]] = {}
    for line in view.stock:  # in the drop's item order
        item = items.setdefault(line.sku, {"sku": line.sku, "pools": {}})
        item["pools"][line.pool] = line.total
        if drop.format is DropFormat.BUNDLE:
            item["per_bundle"] = line.per_unit
    products = []
    for sku in items:
        product = view.products[sku]
        entry = {
            "sku": sku,
            "title": product.title,
            "price": _decimal(product.price),
            "currency": product.price.currency,
        }
        if product.image_url:
            entry["image_url"] = product.image_url
        products.append(entry)
    return {"drop": header, "products": products, "items": list(items.values())}


def _decimal(money: Money) -> str:
    exponent = currency_exponent(money.currency)
    return f"{Decimal(money.amount_minor).scaleb(-exponent):.{exponent}f}"


# Young objects collected when this many more were made than freed: at Python's 700 a
# collection ran about every ten claims under load, and each full one walked every object
# alive (100+ ms pauses in a surge).
GC_THRESHOLDS = (20_000, 20, 20)


def settle_memory() -> None:
    """Once a server has started: what start-up built (modules, compiled templates and
    statements, caches) lives as long as the process, so it is moved out of the cyclic
    collector's sight (``gc.freeze``), and collections come less often. Measured under
    wrk (bench/checkout.py): the collector's share of a claim fell from ~10% to ~1%."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def configure_webhooks(commerce: Commerce, settings: Settings) -> None:
    """The webhooks' retry policy and their payloads' drop-page URLs, from settings."""
    hooks = settings.webhooks
    commerce.webhooks.policy = WebhookPolicy(
        low_stock=hooks.low_stock,
        first_retry=timedelta(seconds=hooks.first_retry_seconds),
        max_retry=timedelta(seconds=hooks.max_retry_seconds),
        max_age=timedelta(hours=hooks.max_age_hours),
        disable_after=hooks.disable_after,
        lease=timedelta(seconds=hooks.lease_seconds),
    )
    base = settings.web.base_url
    commerce.webhooks.drop_url = lambda drop_id: drop_page_url(base, drop_id)


@dataclass
class Chat:
    handler: CommandHandler
    hub: ChatHub
    platforms: dict[str, ChatPlatform]  # the configured ones, by name, not yet started
    web_chats: list[ChatPlatform]  # those of them the web server serves
    pages: PageOutlet | None = None  # signed-in drop pages (where a chat viewer may pay)


@dataclass
class App:
    settings: Settings
    db: Database
    commerce: Commerce
    secret: str  # signs links, forms, sessions: configured, or made once and kept in the db
    signer: LinkSigner
    links: LinkIssuer
    platforms: tuple[PlatformPlugin, ...] = PLATFORMS

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        clock: Clock | None = None,
        migrate: bool = True,
        hand_off: bool = False,
        platforms: tuple[PlatformPlugin, ...] = PLATFORMS,
    ) -> App:
        """Connect, bring the schema up to date, and assemble the core, telling it the chat
        platforms' identity schemes."""
        register_schemes(platforms)
        db = Database(
            settings.database.url,
            echo=settings.database.echo,
            pool_size=settings.database.pool_size,
        )
        if migrate:
            await upgrade(db)
        set_default_locale(settings.chat.locale)  # money for readers of unknown locale
        commerce = Commerce.build(db, clock=clock or SystemClock())
        configure_webhooks(commerce, settings)
        if db.dialect == "postgresql":
            # Changes made here reach every running process (LISTEN/NOTIFY on commit).
            commerce.uow.stage = PgEventChannel(db, commerce.bus)
        else:
            commerce.uow.hand_off = hand_off
        configured = settings.security.secret_key
        secret = configured.get_secret_value() if configured else await commerce.secret_key()
        logs.hide(secret)
        signer = LinkSigner(secret, commerce.clock, settings.security.link_ttl_seconds)
        links = LinkIssuer(signer, commerce.customers, commerce.tracker, settings.web.base_url)
        return cls(settings, db, commerce, secret, signer, links, platforms)

    async def close(self) -> None:
        await self.db.dispose()

    async def issue_link(
        self, drop_id: int, identity: str, tag: str | None = None
    ) -> tuple[str, datetime]:
        """A personal one-click URL for ``identity`` on ``drop_id`` (recorded as issued)."""
        identity = normalize_identity(identity)  # bad input first: it needs no database
        await self.commerce.drops.get(drop_id)  # raises DropNotFound
        issued = await self.links.issue(drop_id, identity, tag)
        return issued.url, issued.link.expires_at

    @contextlib.asynccontextmanager
    async def order_desk(self) -> AsyncIterator[OrderDesk]:
        """The creator's order desk, refunding through this deployment's payment gateways
        (their connections closed afterwards)."""
        checkout = CheckoutService(
            self.commerce.orders, build_gateways(self.settings.payments, self.commerce.clock)
        )
        try:
            yield OrderDesk(self.db, self.commerce.orders, checkout)
        finally:
            await checkout.close()

    async def seed_demo(self) -> int:
        """The demo drop: the one the last demo run made while it is still open, so its id
        and links survive a restart; once it has closed, a fresh one that opens a minute
        from now (so the countdown is visible)."""
        import tomllib

        async with self.db.read() as conn:
            kept = (await conn.execute(select(kv.c.value).where(kv.c.key == DEMO_KEY))).scalar()
        if kept is not None and kept.isdigit():
            with contextlib.suppress(DropNotFound):
                drop = await self.commerce.drops.get(int(kept))
                if drop.state is not DropState.CLOSED:
                    return drop.id
        text = resources.files("config").joinpath("demo_drop.toml").read_text(encoding="utf-8")

        async def remember(tx: Tx, drop_id: int) -> None:  # in the drop's own transaction
            await tx.conn.execute(
                self.db.insert(kv)
                .values(key=DEMO_KEY, value=str(drop_id))
                .on_conflict_do_update(index_elements=["key"], set_={"value": str(drop_id)})
            )

        return await self.commerce.drops.create(validate_spec(tomllib.loads(text)), then=remember)

    async def copy_drop(self, drop_id: int, opens_at: str | None = None) -> int:
        """A new drop made from another (any state): a closed drop never reopens, so this is
        how a creator runs it again. Without ``opens_at`` the copy is a draft."""
        spec = drop_file_of(await self.commerce.drops.view(drop_id))
        if opens_at is not None:
            spec["drop"]["opens_at"] = opens_at
        return await self.commerce.drops.create(validate_spec(spec))

    def _demo_admin_token(self) -> str | None:
        """The demo's dashboard needs an admin token: when none is configured, make one for
        this run only (printed with the demo's links, never stored)."""
        if self.settings.security.admin_token is not None:
            return None
        token = secrets.token_urlsafe(24)
        logs.hide(token)  # printed for the creator, never logged
        self.settings.security.admin_token = SecretStr(token)
        return token

    async def serve(
        self,
        *,
        demo: bool = False,
        roles: frozenset[str] = ALL_ROLES,
        stop: asyncio.Event | None = None,
    ) -> None:
        """Run the given roles in this process until SIGINT/SIGTERM (or ``stop`` is set).

        web: checkout, pages, APIs and the chats served on the web (the studio); bots: the
        remote chat platforms (Discord, Twitch); scheduler: lifecycle jobs and reminder
        delivery (one leader per database).
        """
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not main thread
                loop.add_signal_handler(sig, stop.set)
        async with contextlib.AsyncExitStack() as stack:
            self.commerce.uow.hand_off = False  # this process announces its own events
            demo_token = self._demo_admin_token() if demo else None
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
            chat = self.build_chat(web="web" in roles, bots="bots" in roles, demo=demo)
            log.debug(
                "starting roles %s, chat on %s, event loop %s",
                ", ".join(sorted(roles)),
                ", ".join(sorted(chat.platforms)) or "nothing",
                event_loop_name(),
            )
            await chat.hub.start()
            stack.push_async_callback(chat.hub.stop)
            for platform in chat.platforms.values():
                if platform not in chat.web_chats:  # those start and stop with the web
                    await platform.start()
                    stack.push_async_callback(platform.close)
            if "scheduler" in roles:
                scheduler = self._scheduler(chat)
                await scheduler.start()
                stack.push_async_callback(scheduler.shutdown)
            # The demo drop exists before the web answers: once /healthz says yes, the
            # printed pages (/d/<id>, the studio) are there.
            drop_id = await self.seed_demo() if demo else None
            if "web" in roles:
                gateways = build_gateways(self.settings.payments, self.commerce.clock)
                stack.push_async_callback(gateways.close)  # after the web has stopped
                runner = await self._start_web(chat, gateways, demo=demo)
                stack.push_async_callback(runner.cleanup)
                for web_chat in chat.web_chats:  # closed first: they answer tabs still open
                    await web_chat.start()
                    stack.push_async_callback(web_chat.close)
            if drop_id is not None:
                await self._print_demo(drop_id, studio=bool(chat.web_chats), token=demo_token)
            settle_memory()
            await stop.wait()

    def _scheduler(self, chat: Chat) -> SchedulerRole:
        """The scheduler role; it delivers through the platforms running in this process."""
        sched = self.settings.scheduler
        return SchedulerRole(
            self.commerce,
            sched,
            hub=chat.hub,
            dispatcher=self.dispatcher(chat),
            leadership=Leadership(self.db, poll_seconds=sched.leader_poll_seconds),
            privacy=self.settings.privacy,
            webhooks=WebhookWorker(
                self.commerce,
                timeout=self.settings.webhooks.timeout_seconds,
                concurrency=self.settings.webhooks.concurrency,
            ),
        )

    def dispatcher(self, chat: Chat) -> Dispatcher[Message]:
        """Retention delivery: a notification goes out through the platform named by its
        channel (an identity scheme: the person's private messages there) or a webhook."""
        senders: dict[str, Sender[Message]] = {"webhook": WebhookSender()}
        for name, platform in chat.platforms.items():
            senders[name] = OutletSender(platform.outlet)
        return Dispatcher(
            self.commerce,
            self.renderer(),
            senders,
            lease_seconds=self.settings.scheduler.lease_seconds,
            concurrency=self.settings.scheduler.dispatch_concurrency,
        )

    def renderer(self) -> RetentionRenderer:
        base = self.settings.web.base_url
        return RetentionRenderer(
            self.commerce,
            self.links.url,
            lambda customer_id: f"{base}/u/{self.signer.unsubscribe_token(customer_id)}",
            base,
            self.settings.chat.locale,
        )

    def build_chat(self, *, web: bool = True, bots: bool = True, demo: bool = False) -> Chat:
        """The chat side: one command handler and hub, the drop pages' outlet, and every
        configured platform of the enabled roles (``web``: chats the web server serves,
        ``bots``: the others), built but not started."""
        chat_settings = self.settings.chat
        base = self.settings.web.base_url

        handler = CommandHandler(
            self.commerce,
            self.links.url,
            public_url=base,
            prefix=chat_settings.prefix,
            drops_dir=chat_settings.drops_dir,
            locale=chat_settings.locale,
        )
        hub = ChatHub(
            self.commerce,
            Presenter(self.commerce, base, chat_settings.prefix, chat_settings.locale),
            self.links.url,
            thresholds=chat_settings.tick_thresholds,
            edit_interval=chat_settings.edit_interval_seconds,
            chart=RecapChart(self.commerce.analytics),
        )
        pages = PageOutlet(WebInbox(self.commerce.customers)) if web else None
        if pages is not None:
            hub.add_outlet(pages)
        context = PlatformContext(
            self.settings, self.commerce, handler, hub, AccountLinker(self.commerce), demo
        )
        platforms: dict[str, ChatPlatform] = {}
        web_chats: list[ChatPlatform] = []
        for plugin in self.platforms:
            if not (web if plugin.role == "web" else bots):
                continue
            platform = plugin.build(context)
            if platform is not None:
                platforms[plugin.name] = platform
                handler.reachability[plugin.name] = platform.reachable
                if plugin.role == "web":
                    web_chats.append(platform)
        return Chat(handler, hub, platforms, web_chats, pages)

    async def _start_web(
        self, chat: Chat, gateways: PaymentGateways, *, demo: bool = False
    ) -> web.AppRunner:
        app = create_app(
            self.commerce,
            self.settings,
            self.signer,
            gateways,
            secret=self.secret,
            # The demo's drop page claims by email, the proof link printed here (no mail server).
            mailer=mailer_for(self.settings.email, demo=demo)
            or (ConsoleMailer() if demo else None),
            inbox=chat.pages.inbox if chat.pages is not None else None,
            routes=[route for web_chat in chat.web_chats for route in web_chat.routes()],
        )
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        settings = self.settings.web
        site = web.TCPSite(runner, settings.host, settings.port, backlog=settings.backlog)
        await site.start()
        log.info(
            "web listening on http://%s:%s (event loop: %s)",
            settings.host,
            settings.port,
            event_loop_name(),
        )
        return runner

    async def _print_demo(self, drop_id: int, *, studio: bool, token: str | None) -> None:
        """Where to go, with the demo drop's real id (a restart may have reused it)."""
        base = self.settings.web.base_url
        drop = await self.commerce.drops.get(drop_id)
        url, _ = await self.issue_link(drop_id, "web:demo@example.com")
        if drop.state is DropState.LIVE:
            print(f"demo drop {drop_id} is live:")
        else:
            wait = (drop.opens_at or self.commerce.clock.now()) - self.commerce.clock.now()
            print(
                f"demo drop {drop_id} opens in {max(0, round(wait.total_seconds()))} s "
                f"(or now: dropcast drop open {drop_id}):"
            )
        if studio:
            print(f"  studio chat {base}/studio   (type !drop, then !buy once it is live)")
        print(f"  drop page   {drop_page_url(base, drop_id)}")
        print(f"  overlay     {base}/overlay/{drop_id}")
        print(
            f'  widget      <script type="module" src="{base}/embed.js"></script>'
            f'<dropcast-drop drop="{drop_id}"></dropcast-drop>   (any web page)'
        )
        if token is not None:
            print(f"  dashboard   {base}/dashboard?token={token}   (demo admin token, this run)")
        else:
            print(f"  dashboard   {base}/dashboard?token=<security.admin_token>")
        print(f"  buy link    {url}")
        print(
            "It stays live until it sells out or is closed; once it has closed, the next demo "
            "run starts a fresh one."
        )
        print("Ctrl-C stops.", flush=True)
