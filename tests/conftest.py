"""Shared fixtures. Storage tests run on SQLite and PostgreSQL (``db`` is parametrized).

PostgreSQL is required: each test session creates its own database on the server named by
DROPCAST_TEST_PG_URL (default: postgres@127.0.0.1:5432/test) and drops it at the end, so
parallel runs never share tables. Set DROPCAST_TEST_SKIP_PG=1 to run SQLite only; CI never
does (``.ci/run`` fails if the PostgreSQL tests did not run).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.platforms import register_schemes
from commerce.clock import ManualClock
from commerce.core import Commerce
from commerce.storage.database import Database
from commerce.storage.migrate import upgrade
from commerce.storage.tables import metadata
from scheduler.webhooks import WebhookWorker
from tests.e2e.processes import Inbox
from tests.helpers import patient_browser

T = TypeVar("T")

PG_ADMIN_URL = os.environ.get(
    "DROPCAST_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
SKIP_PG = os.environ.get("DROPCAST_TEST_SKIP_PG") == "1"
if SKIP_PG and os.environ.get("CI"):
    raise RuntimeError("DROPCAST_TEST_SKIP_PG is not allowed in CI: the PostgreSQL suite must run")
ENGINES = ["sqlite"] if SKIP_PG else ["sqlite", "postgresql"]
register_schemes()  # what the composition root does: the core learns the platforms' identities


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on its own loop, even from inside a running loop
    (session fixtures may be first requested by an async test)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _migrate(url: str) -> None:
    database = Database(url)
    try:
        await upgrade(database)
    finally:
        await database.dispose()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated to head."""
    if SKIP_PG:
        pytest.skip("DROPCAST_TEST_SKIP_PG=1")
    name = f"dropcast_t_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    async def create() -> None:
        try:
            conn = await asyncpg.connect(_asyncpg_dsn(PG_ADMIN_URL), timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            raise RuntimeError(
                f"PostgreSQL is required for the test suite and is not reachable at "
                f"{PG_ADMIN_URL}: {exc}. Start it, or set DROPCAST_TEST_SKIP_PG=1 locally."
            ) from exc
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(_asyncpg_dsn(PG_ADMIN_URL), timeout=10)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    run_blocking(create())
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        run_blocking(_migrate(url))
        yield url
    finally:
        run_blocking(drop())


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    run_blocking(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


async def truncate_all(database: Database) -> None:
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    async with database.write() as conn:
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=ENGINES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """The URL of an empty, migrated database on each engine (for processes and the CLI)."""
    if request.param == "sqlite":
        path = tmp_path / "dropcast.db"
        shutil.copyfile(sqlite_template, path)
        return f"sqlite+aiosqlite:///{path}"
    url = str(request.getfixturevalue("pg_url"))

    async def empty() -> None:
        database = Database(url)
        try:
            await truncate_all(database)
        finally:
            await database.dispose()

    run_blocking(empty())
    return url


@pytest.fixture(params=ENGINES)
async def db(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> AsyncIterator[Database]:
    """An empty, migrated database on each engine."""
    if request.param == "sqlite":
        path = tmp_path / "dropcast.db"
        shutil.copyfile(sqlite_template, path)
        database = Database(f"sqlite+aiosqlite:///{path}")
    else:
        database = Database(request.getfixturevalue("pg_url"), pool_size=20)
        await truncate_all(database)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def commerce(db: Database, clock: ManualClock) -> Commerce:
    return Commerce.build(db, clock=clock)


_postgres_passed = 0


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    global _postgres_passed
    if report.when == "call" and report.passed and "postgresql" in report.nodeid:
        _postgres_passed += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI the PostgreSQL half of the suite is not optional: fail if none of it ran.
    Judged where every test's report arrives: the run itself, or with pytest-xdist its
    controller (a worker sees only its share)."""
    if hasattr(session.config, "workerinput"):
        return
    if os.environ.get("CI") and _postgres_passed == 0 and exitstatus == 0:
        print("\nCI: no PostgreSQL test ran; failing the run", flush=True)
        session.exitstatus = 1


# Browser tests drive Debian's chromium through Playwright (never a downloaded browser).
CHROMIUM = "/usr/bin/chromium"
needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="no /usr/bin/chromium")


@pytest.fixture
async def browser():
    from playwright.async_api import async_playwright

    patient_browser()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            await browser.close()


# A valid address for a ship hold's form, in tests that pay over HTTP or in a browser.
SHIP_ADDRESS = {
    "name": "Test Buyer",
    "line1": "1 Main St",
    "line2": "",
    "postal_code": "12345",
    "city": "Springfield",
    "region": "IL",
    "country": "US",
}


async def fill_ship_address(page: Any, **change: str) -> None:
    """In the browser, fill what a held page asks before Pay: the address fields it shows
    (none for a pickup, the country only when the card page takes the rest)."""
    values = {**SHIP_ADDRESS, **change}
    await page.locator("form.pay").wait_for()
    country = page.locator("form.pay select[name=country]")
    if await country.count():
        await country.select_option(values["country"])
    for key, value in values.items():
        field = page.locator(f"form.pay input[name={key}]")
        if key != "country" and await field.count():
            await field.fill(value)


@pytest.fixture
async def inbox() -> AsyncIterator[Inbox]:
    """A local receiver of webhooks (and mail): what arrived, with scripted answers."""
    box = Inbox()
    await box.start()
    yield box
    await box.stop()


@pytest.fixture
async def webhook_worker(commerce: Commerce) -> AsyncIterator[WebhookWorker]:
    made = WebhookWorker(commerce, timeout=5)
    yield made
    await made.close()
