"""Web fixtures: the real app on a real port (aiohttp TestServer) over both engines."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from commerce.clock import ManualClock
from commerce.core import Commerce
from commerce.domain.payments import PaymentGateways
from commerce.links import LinkSigner
from commerce.payments import build_gateways
from commerce.web.app import create_app
from commerce.web.context import CONTEXT, WebContext
from commerce.web.sessions import COOKIE as SESSION_COOKIE
from commerce.web.sessions import Session, Signed
from commerce.web.signin import remember
from config.settings import Settings
from tests.conftest import SHIP_ADDRESS
from tests.web.fake_stripe import API_KEY, WEBHOOK_SECRET, FakeStripe

SECRET = "test-secret-key-0123456789abcdef"
ADMIN = "admin-token-for-tests-0123456789"
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]*)"')
HOLD_FIELD = re.compile(r'name="hold_id" value="(\d+)"')
POOL_FIELD = re.compile(r'name="pool" value="([^"]*)"')
# What ``Web.pay`` sends when a ship hold's page asks where it goes and the test does not say.
DEFAULT_ADDRESS = SHIP_ADDRESS


def found(pattern: re.Pattern[str], text: str) -> str:
    """The first group of ``pattern``'s first match in ``text``; fails when there is none."""
    match = pattern.search(text)
    assert match is not None, f"{pattern.pattern!r} not found"
    return match[1]


def make_settings(**sections: dict[str, Any]) -> Settings:
    web_section = {"claim_rate_per_ip": 0, "claim_rate_per_customer": 0, **sections.pop("web", {})}
    security = {"secret_key": SECRET, "admin_token": ADMIN, **sections.pop("security", {})}
    # Only sections go on by name (the checker cannot tell them from BaseSettings' own
    # ``_env_file``-style keywords when they come as ``**sections``).
    others: dict[str, Any] = sections
    return Settings(web=web_section, security=security, **others)


def web_app(
    commerce: Commerce,
    settings: Settings,
    signer: LinkSigner,
    routes: Iterable[web.AbstractRouteDef] = (),
) -> tuple[web.Application, PaymentGateways]:
    """The app as the composition root builds it, and its gateways (close them after)."""
    gateways = build_gateways(settings.payments, commerce.clock)
    secret = settings.security.secret_key
    assert secret is not None  # make_settings always sets one (a test may rotate it)
    app = create_app(
        commerce, settings, signer, gateways, secret=secret.get_secret_value(), routes=routes
    )
    return app, gateways


@dataclass
class Web:
    """A running app plus the handles tests need."""

    client: TestClient[web.Request, web.Application]
    app: web.Application
    commerce: Commerce
    clock: ManualClock
    signer: LinkSigner
    settings: Settings

    @property
    def ctx(self) -> WebContext:
        return self.app[CONTEXT]

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN}"}

    async def sign_in(self, identity: str = "twitch:1", name: str = "viewer") -> None:
        """This client's browser session proved ``identity`` (as the OAuth callback does)."""
        value = await self.session_cookie(identity, name)
        self.client.session.cookie_jar.update_cookies({SESSION_COOKIE: value})

    async def session_cookie(self, identity: str = "twitch:1", name: str = "viewer") -> str:
        """The session cookie's value of a browser that proved ``identity``."""
        signed = Signed(identity, name)
        await remember(self.ctx, signed, ())
        return self.ctx.require_sessions().value(Session(f"sid-{identity}", (signed,)))

    def token(self, drop_id: int, identity: str = "discord:1", tag: str | None = None) -> str:
        token, _ = self.signer.issue(drop_id, identity, tag)
        return token

    async def held_page(self, drop_id: int, identity: str = "discord:1") -> tuple[str, str]:
        """Open a fresh link and return (token, page html); asserts the hold was placed."""
        token = self.token(drop_id, identity)
        response = await self.client.get(f"/c/{token}")
        text = await response.text()
        assert response.status == 200, text
        return token, text

    async def pay(self, token: str, page: str, provider: str | None = None, **override: str) -> Any:
        """Submit the held page's pay form. A ship hold's address form (or, when the provider
        takes the address, its country) gets ``DEFAULT_ADDRESS`` unless the test gives any
        address field itself."""
        form = {
            "csrf": found(CSRF_FIELD, page),
            "hold_id": found(HOLD_FIELD, page),
            "pool": found(POOL_FIELD, page),
        }
        if provider:
            form["provider"] = provider
        if not DEFAULT_ADDRESS.keys() & override.keys():
            form.update({k: v for k, v in DEFAULT_ADDRESS.items() if f'name="{k}"' in page})
        form.update(override)
        return await self.client.post(f"/c/{token}/pay", data=form, allow_redirects=False)


WebFactory = Callable[..., Awaitable[Web]]


@pytest.fixture
async def make_web(commerce: Commerce, clock: ManualClock) -> AsyncIterator[WebFactory]:
    clients: list[TestClient[web.Request, web.Application]] = []
    made: list[PaymentGateways] = []

    async def build(**sections: dict[str, Any]) -> Web:
        settings = make_settings(**sections)
        signer = LinkSigner(SECRET, clock, settings.security.link_ttl_seconds)
        app, gateways = web_app(commerce, settings, signer)
        made.append(gateways)
        client = TestClient(TestServer(app))
        clients.append(client)  # closed after the test, also when it did not start
        await client.start_server()
        return Web(client, app, commerce, clock, signer, settings)

    yield build
    for client in clients:
        await client.close()
    for gateways in made:  # as the composition root does: after the web has stopped
        await gateways.close()


@pytest.fixture
async def site(make_web: WebFactory) -> Web:
    return await make_web()


@pytest.fixture
async def stripe_fake() -> AsyncIterator[FakeStripe]:
    """The local Stripe fake on a real port."""
    fake = FakeStripe()
    fake.server = TestServer(fake.app())
    await fake.server.start_server()
    yield fake
    await fake.server.close()


@pytest.fixture
async def stripe_shop(make_web: WebFactory, stripe_fake: FakeStripe) -> Web:
    """The app taking card payments through the Stripe fake."""
    return await make_web(
        payments={
            "provider": "stripe",
            "stripe_api_key": API_KEY,
            "stripe_webhook_secret": WEBHOOK_SECRET,
            "stripe_api_base": stripe_fake.base,
        }
    )
