"""Fan-out benchmark: schedule N reminders, then DM them through a local fake Discord.

Scheduling is what the scheduler job does: one ``fan_out`` (a single INSERT … SELECT into
the outbox) for N subscribers with Discord identities; printed: its time and the peak
Python memory it allocated (tracemalloc), plus the process's peak RSS. Dispatch is the
real ``Dispatcher`` + ``OutletSender`` + ``DiscordBot``/``DiscordOutlet`` (real discord.py)
against ``tests.fakes.discord.FakeDiscord`` on loopback, which enforces Discord's global
50 requests/s. A DM costs two requests (open the DM channel, post the message), both
counted against that limit as Discord does, so the ceiling is 25 DMs/s. Printed: the
achieved request rate as a fraction of the limit (target >= 95%), duplicates (recipients
with more than one DM; must be 0), 429s received, and the time to the last message.

Not a test. Run ``.venv/bin/python -m bench.fanout --count 3000`` (about 2 min). The
default N = 100,000 takes about 67 min at 50 requests/s (~1 h): dispatch is bounded by
the rate limit, not by dropcast. ``--schedule-only`` measures scheduling alone (fast at
any N). SQLite in a temporary directory by default; ``--pg URL`` uses a scratch database
created on that server and dropped afterwards. Every run is bounded by ``--deadline``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from bot.commands import CommandHandler
from bot.delivery import OutletSender
from bot.discord import DiscordBot
from bot.discord.pacing import discord_limiter
from bot.hub import ChatHub
from bot.platforms import register_schemes
from bot.presenter import Presenter
from bot.presenter.retention import RetentionRenderer
from bot.ratelimit import RateLimiter, TokenBucket
from commerce.core import Commerce
from commerce.dropfile import validate_spec
from commerce.storage.database import Database
from commerce.storage.migrate import upgrade
from commerce.storage.tables import customers, identities, subscriptions
from config.settings import DiscordSettings
from scheduler.outbox import Dispatcher

_REPO_ROOT = str(Path(__file__).resolve().parents[1])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.fakes.discord import FakeDiscord, FakeGuild, RecordedRequest  # noqa: E402
from tests.helpers import links  # noqa: E402

LIMIT = 50  # Discord's global requests/s, enforced by the fake
BASE = "https://shop.bench"
CHUNK = 5_000  # rows per bulk insert while creating subscribers
DM_ROUTES = {("POST", "/users/@me/channels"), ("POST", "/channels/{channel_id}/messages")}
SPEC = {
    "drop": {"title": "Bench capsule", "format": "capsule", "opens_at": "+120m"},
    "products": [{"sku": "BENCH", "title": "Bench unit", "price": "1.00"}],
    "items": [{"sku": "BENCH", "pools": {"ship": 10}}],
}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# -- scheduling --------------------------------------------------------------------------


async def add_subscribers(commerce: Commerce, guild: FakeGuild, fake: FakeDiscord, n: int) -> None:
    """N guild members, each a customer with a Discord identity subscribed to the creator
    by DM (bulk inserts: this is set-up, not what is measured)."""
    now = datetime.now(UTC)
    for start in range(0, n, CHUNK):
        users = [fake.add_user(f"fan{i}") for i in range(start, min(n, start + CHUNK))]
        for user in users:
            fake.add_member(guild, user)
        async with commerce.db.write() as conn:
            result = await conn.execute(
                insert(customers).returning(customers.c.id, sort_by_parameter_order=True),
                [{"display_name": u.username, "created_at": now} for u in users],
            )
            ids = list(result.scalars())
            await conn.execute(
                insert(identities),
                [
                    {"identity": f"discord:{u.id}", "customer_id": c, "created_at": now}
                    for u, c in zip(users, ids, strict=True)
                ],
            )
            await conn.execute(
                insert(subscriptions),
                [
                    {
                        "customer_id": c,
                        "scope": "creator",
                        "target": "*",
                        "channel": "discord",
                        "address": f"discord:{u.id}",
                        "timezone": "UTC",
                        "status": "active",
                        "created_at": now,
                    }
                    for u, c in zip(users, ids, strict=True)
                ],
            )


async def schedule(commerce: Commerce, drop_id: int) -> tuple[int, float, float]:
    """One fan-out: rows queued, seconds, peak Python allocation (MiB) while it ran."""
    tracemalloc.start()
    start = time.perf_counter()
    queued = await commerce.notifications.fan_out(drop_id, "reminder:300")
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return queued, seconds, peak / 2**20


# -- dispatch ----------------------------------------------------------------------------


@dataclass
class Tally:
    """What the fake answered, drained from its recordings as the run goes (its request
    log would otherwise hold every request body: ~1 GB at 100k)."""

    since: float
    statuses: Counter[int] = field(default_factory=Counter)
    last: float | None = None
    last_message: float | None = None

    @property
    def accepted(self) -> int:
        """Requests that counted against the global limit (everything but 429s)."""
        return sum(n for status, n in self.statuses.items() if status != 429)

    def drain(self, fake: FakeDiscord) -> None:
        answered: list[RecordedRequest] = []
        waiting: list[RecordedRequest] = []
        for record in fake.requests:
            (answered if record.status is not None else waiting).append(record)
        fake.requests[:] = waiting
        for record in answered:
            if record.time < self.since or (record.method, record.route) not in DM_ROUTES:
                continue
            self.statuses[record.status or 0] += 1
            if record.status != 429:
                self.last = record.time if self.last is None else max(self.last, record.time)
        for event in fake.message_log:
            if event.action == "create":
                self.last_message = max(self.last_message or 0.0, event.time)
        fake.message_log.clear()


class BenchBot(DiscordBot):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        return None  # no 5 s pause before a re-IDENTIFY


@asynccontextmanager
async def running_bot(
    commerce: Commerce, fake: FakeDiscord, guild: FakeGuild, limiter: RateLimiter
) -> AsyncIterator[DiscordBot]:
    settings = DiscordSettings(
        token=fake.token,
        guild_ids=[guild.id],
        channel_id=guild.channel("general").id,
        api_base=fake.api_base,
        gateway_url=fake.gateway_url,
    )
    handler = CommandHandler(commerce, links(lambda d, who: f"{BASE}/c/{d}/{who}"), public_url=BASE)
    hub = ChatHub(commerce, Presenter(commerce, BASE), handler.issue_link, thresholds=[5])
    bot = BenchBot(settings, handler, hub, limiter=limiter, guild_ready_timeout=0.05)
    await bot.start()
    try:
        await asyncio.wait_for(bot.commands_synced.wait(), 30)
        yield bot
    finally:
        await bot.close()


def limiter(args: argparse.Namespace) -> RateLimiter:
    """The bot's own pacing: ``discord_limiter()`` unless --pace-rate/--pace-burst say
    otherwise (to try other settings of its global bucket)."""
    pacing = discord_limiter()
    if args.pace_rate is not None or args.pace_burst is not None:
        bucket = pacing.global_bucket
        pacing.global_bucket = TokenBucket(
            args.pace_rate or bucket.rate,
            args.pace_burst if args.pace_burst is not None else bucket.capacity,
        )
    return pacing


async def dispatch(
    commerce: Commerce,
    fake: FakeDiscord,
    guild: FakeGuild,
    n: int,
    deadline: float,
    pacing: RateLimiter,
) -> tuple[Tally, float, bool]:
    """Run the Dispatcher until the outbox is empty; (tally, start time, finished)."""
    async with running_bot(commerce, fake, guild, pacing) as bot:
        render = RetentionRenderer(
            commerce,
            links(lambda d, who, tag: f"{BASE}/c/{d}/{who}?tag={tag}"),
            lambda c: f"{BASE}/u/{c}",
            BASE,
        )
        dispatcher = Dispatcher(commerce, render, {"discord": OutletSender(bot.outlet)})
        fake.requests.clear()
        fake.message_log.clear()
        stop = asyncio.Event()
        start = time.monotonic()
        tally = Tally(since=start)
        task = asyncio.create_task(dispatcher.run(stop, idle_seconds=0.2))
        finished = False
        next_report = start + 10
        try:
            while time.monotonic() - start < deadline:
                await asyncio.sleep(1.0)
                tally.drain(fake)
                if task.done():
                    task.result()  # surfaces a crash
                if await commerce.notifications.pending() == 0:
                    finished = True
                    break
                if time.monotonic() >= next_report:
                    next_report += 10
                    elapsed = time.monotonic() - start
                    print(
                        f"  {elapsed:6.0f} s: {dispatcher.sent}/{n} sent, "
                        f"{tally.accepted / elapsed / LIMIT:5.1%} of the limit",
                        flush=True,
                    )
        finally:
            stop.set()
            await task
            tally.drain(fake)
    return tally, start, finished


# -- main --------------------------------------------------------------------------------


async def run(args: argparse.Namespace, url: str) -> None:
    db = Database(url, pool_size=20)
    try:
        await upgrade(db)
        register_schemes()  # as the composition root does: the core learns discord:<id>
        commerce = Commerce.build(db)
        async with FakeDiscord(global_rate_limit=LIMIT) as fake:
            guild = fake.add_guild("Bench Shop")
            t = time.perf_counter()
            await add_subscribers(commerce, guild, fake, args.count)
            drop_id = await commerce.drops.create(validate_spec(SPEC))
            print(f"set-up: {args.count} subscribers in {time.perf_counter() - t:.1f} s")

            queued, seconds, peak = await schedule(commerce, drop_id)
            print(
                f"scheduling: {queued} reminders queued by one fan-out in {seconds:.2f} s "
                f"({queued / seconds:,.0f}/s); peak Python memory during it {peak:.2f} MiB; "
                f"process peak RSS {peak_rss_mb():.0f} MiB"
            )
            if args.schedule_only:
                return

            expected = 2 * queued / LIMIT
            deadline = args.deadline or expected * 2 + 60
            pacing = limiter(args)
            bucket = pacing.global_bucket
            print(
                f"dispatch: {queued} DMs = {2 * queued} requests, >= {expected:.0f} s at 50/s; "
                f"bot pacing: global bucket {bucket.rate:g}/s, burst {bucket.capacity:g}"
            )
            tally, start, finished = await dispatch(commerce, fake, guild, queued, deadline, pacing)

            per_recipient = [len(fake.messages[c.id]) for c in fake.channels.values() if c.is_dm]
            dms = sum(per_recipient)
            duplicates = sum(1 for count in per_recipient if count > 1)
            end = tally.last_message or time.monotonic()
            window = max((tally.last or end) - start, 1e-9)
            counts = await commerce.notifications.counts(drop_id)
            print(
                f"{'finished' if finished else 'STOPPED AT THE DEADLINE'}: outcomes {counts}\n"
                f"  achieved rate: {tally.accepted} requests in {window:.1f} s = "
                f"{tally.accepted / window:.2f}/s = {tally.accepted / window / LIMIT:.1%} of "
                f"the {LIMIT}/s limit (target >= 95%); {dms / window:.2f} DMs/s of 25\n"
                f"  duplicates: {duplicates} recipients with more than one DM "
                f"({dms} DMs to {len(per_recipient)} recipients; "
                f"{len(fake.nonce_replays)} resends absorbed by the nonce)\n"
                f"  429s received: {tally.statuses[429]} (answers: {dict(tally.statuses)})\n"
                f"  time to the last message: {end - start:.1f} s\n"
                f"  process peak RSS {peak_rss_mb():.0f} MiB"
            )
    finally:
        await db.dispose()


async def main(args: argparse.Namespace) -> None:
    engine = "PostgreSQL" if args.pg else "SQLite"
    print(f"dropcast fan-out bench · {engine} · N = {args.count} · loopback fake Discord")
    if not args.pg:
        with tempfile.TemporaryDirectory() as tmp:
            await run(args, f"sqlite+aiosqlite:///{Path(tmp) / 'fanout.db'}")
        return
    admin = make_url(args.pg).set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"dropcast_fanout_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin, timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        try:
            await run(args, make_url(args.pg).set(database=name).render_as_string(False))
        finally:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="reminders (subscribers)")
    parser.add_argument(
        "--pg", help="PostgreSQL server URL (postgresql+asyncpg://…): a scratch database is used"
    )
    parser.add_argument("--schedule-only", action="store_true", help="skip the dispatch")
    parser.add_argument(
        "--deadline", type=float, help="seconds the dispatch may take (default 2x ideal + 60)"
    )
    parser.add_argument("--pace-rate", type=float, help="override the bot's global rate")
    parser.add_argument("--pace-burst", type=float, help="override the bot's global burst")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("discord").setLevel(logging.ERROR)  # 429 retries are counted instead
    asyncio.run(main(parser.parse_args()))
