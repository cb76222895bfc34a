"""Test helpers: build drops from small specs, collect events, read state."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import hmac
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp

from commerce.core import Commerce
from commerce.domain.events import Event
from commerce.domain.model import DropView
from commerce.dropfile import validate_spec

# How long a test waits for something that should happen "soon". Only a failing test waits
# this long; a passing one goes on as soon as the condition holds.
PATIENCE = 15.0

E = TypeVar("E", bound=Event)

if TYPE_CHECKING:
    from config.settings import Settings
    from dropcast.app import App


def capsule_spec(units: int = 10, **drop: Any) -> dict[str, Any]:
    return {
        "drop": {"title": "Spicy chips capsule", "format": "capsule", **drop},
        "products": [
            {
                "sku": "CHIPS-SPICY",
                "title": "Spicy chips, 6-pack",
                "price": "12.00",
                "currency": "USD",
            }
        ],
        "items": [{"sku": "CHIPS-SPICY", "pools": {"ship": units}}],
    }


def bundle_spec(chips: int, salsa: int, **drop: Any) -> dict[str, Any]:
    return {
        "drop": {"title": "Chips + salsa bundle", "format": "bundle", **drop},
        "products": [
            {"sku": "CHIPS", "title": "Chips", "price": "5.00"},
            {"sku": "SALSA", "title": "Salsa", "price": "4.50"},
        ],
        "items": [
            {"sku": "CHIPS", "pools": {"ship": chips}},
            {"sku": "SALSA", "pools": {"ship": salsa}},
        ],
    }


def collab_spec(ship: int, pickup: int, **drop: Any) -> dict[str, Any]:
    return {
        "drop": {"title": "Corner deli collab", "format": "collab", **drop},
        "products": [{"sku": "TOTE", "title": "Tote bag", "price": "20.00"}],
        "items": [{"sku": "TOTE", "pools": {"ship": ship, "pickup:corner-deli": pickup}}],
    }


async def live_drop(commerce: Commerce, spec: dict[str, Any]) -> int:
    drop_id = await commerce.drops.create(validate_spec(spec))
    await commerce.drops.open(drop_id)
    return drop_id


async def customers(commerce: Commerce, count: int, prefix: str = "web:buyer") -> list[int]:
    return [await commerce.customers.resolve(f"{prefix}{i}@example.com") for i in range(count)]


def assert_consistent(view: DropView) -> None:
    for line in view.stock:
        assert line.sold >= 0 and line.held >= 0 and line.available >= 0, line
        assert line.sold + line.held + line.available == line.total, line


class EventLog:
    def __init__(self, commerce: Commerce) -> None:
        self.events: list[Event] = []
        commerce.bus.subscribe(self._record)

    async def _record(self, event: Event) -> None:
        self.events.append(event)

    def names(self) -> list[str]:
        return [e.name for e in self.events]

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]


def links(make: Callable[..., str]) -> Callable[..., Awaitable[str]]:
    """A stand-in for ``LinkIssuer.url`` from a plain function of the same arguments."""

    async def issue(*args: Any) -> str:
        return make(*args)

    return issue


@contextmanager
def settled_memory() -> Iterator[None]:
    """The collector as a started dropcast process runs it (``dropcast.app.settle_memory``:
    what start-up built frozen out of its sight, rarer collections), for a test that measures
    a surge against a platform's clock. A test process holds the whole suite's modules and
    what earlier tests left: on Python's defaults, full collections of that heap paused a
    1,000-viewer surge for about a second. The process's own settings come back after."""
    from dropcast.app import settle_memory

    thresholds = gc.get_threshold()
    settle_memory()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


async def eventually(
    condition: Callable[[], Any],
    *,
    timeout: float = PATIENCE,
    what: str = "the condition",
    interval: float = 0.01,
) -> Any:
    """Poll ``condition`` (a function, or one returning an awaitable) until it gives a truthy
    value, and return it. The deadline is generous: CI runs on a busy machine, and a test
    asserts behaviour, never a time bound. ``interval``: longer for costly conditions."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


@asynccontextmanager
async def serving(settings: Settings, *, demo: bool = False) -> AsyncIterator[tuple[App, str]]:
    """``App.serve`` (the web role) in this process, on ``settings``' port, up and answering:
    yields the app and the server's base URL."""
    from dropcast.app import App  # the composition root: only for the tests that serve it

    base = f"http://127.0.0.1:{settings.web.port}"
    app = await App.open(settings)
    stop = asyncio.Event()
    served = asyncio.create_task(app.serve(demo=demo, roles=frozenset({"web"}), stop=stop))
    try:
        async with aiohttp.ClientSession() as http:

            async def healthy() -> bool:
                if served.done():
                    served.result()  # it failed to start: say why
                try:
                    async with http.get(f"{base}/healthz") as response:
                        return response.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await eventually(healthy, what="the web server")
        yield app, base
    finally:
        stop.set()
        await served
        await app.close()


def patient_browser() -> None:
    """Playwright's ``expect`` gives up after 5 s by default: make it wait as long as
    ``eventually`` (the page is not slower; the machine may be busy)."""
    from playwright.async_api import expect

    expect.set_options(timeout=PATIENCE * 1000)


def signature_ok(secret: str, header: str, raw: bytes) -> bool:
    """A webhook receiver's check of ``Dropcast-Signature``, written here from the header's
    definition (not from the code that signs)."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + raw, hashlib.sha256)
    return hmac.compare_digest(expected.hexdigest(), parts["v1"])
