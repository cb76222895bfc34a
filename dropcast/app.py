"""The composition root: builds the database, the commerce core, the link signer, the web
app, the bots and the scheduler from settings, and owns start-up and shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

from commerce.clock import Clock, SystemClock
from commerce.core import Commerce
from commerce.domain.model import normalize_identity
from commerce.dropfile import validate_spec
from commerce.links import LinkSigner
from commerce.storage.database import Database
from commerce.storage.migrate import upgrade
from config.settings import Settings

log = logging.getLogger("dropcast")


@dataclass
class App:
    settings: Settings
    db: Database
    commerce: Commerce
    signer: LinkSigner

    @classmethod
    async def open(
        cls, settings: Settings, *, clock: Clock | None = None, migrate: bool = True
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
        configured = settings.security.secret_key
        secret = configured.get_secret_value() if configured else await commerce.secret_key()
        signer = LinkSigner(secret, commerce.clock, settings.security.link_ttl_seconds)
        return cls(settings, db, commerce, signer)

    async def close(self) -> None:
        await self.db.dispose()

    def link_url(self, drop_id: int, identity: str, tag: str | None = None) -> tuple[str, datetime]:
        """A personal one-click URL for ``identity`` on ``drop_id``."""
        token, link = self.signer.issue(drop_id, identity, tag)
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

    async def serve(self, *, demo: bool = False, stop: asyncio.Event | None = None) -> None:
        """Run everything in this process until SIGINT/SIGTERM (or ``stop`` is set)."""
        from scheduler.runner import LifecycleScheduler

        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - non-main thread
                pass
        await self.commerce.outbox.relay_pending()
        scheduler = LifecycleScheduler(
            self.commerce,
            interval_seconds=self.settings.scheduler.sweep_interval_seconds,
            timezone=self.settings.scheduler.timezone,
        )
        runner = await self._start_web()
        scheduler.start()
        if demo:
            drop_id = await self.seed_demo()
            self._print_demo(drop_id)
        try:
            await stop.wait()
        finally:
            scheduler.shutdown()
            if runner is not None:
                await runner.cleanup()

    async def _start_web(self) -> Any:
        try:
            from aiohttp import web
            from commerce.web.app import build_payments, create_app
        except ImportError:
            log.warning("web app not available; running scheduler only")
            return None
        app = create_app(
            self.commerce, self.settings, self.signer, build_payments(self.settings, self.commerce)
        )
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.settings.web.host, self.settings.web.port)
        await site.start()
        log.info("web listening on http://%s:%s", self.settings.web.host, self.settings.web.port)
        return runner

    def _print_demo(self, drop_id: int) -> None:
        base = self.settings.web.base_url
        url, _ = self.link_url(drop_id, "web:demo@example.com")
        print(f"demo drop {drop_id} opens in about a minute:")
        print(f"  drop page   {base}/d/{drop_id}")
        print(f"  overlay     {base}/overlay/{drop_id}")
        print(f"  buy link    {url}")
        print("Ctrl-C stops.", flush=True)
