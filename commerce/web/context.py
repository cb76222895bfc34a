"""Everything a handler needs, built once per app and reached through one typed AppKey."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from commerce.core import Commerce
from commerce.domain.model import ClaimOutcome, ClaimResult
from commerce.links import ClaimLink, LinkIssuer, LinkSigner
from commerce.payments.base import PaymentProviders
from commerce.web.errors import RateLimited
from commerce.web.live import LiveHub, RefusalGate, StatusFeed, ViewCache
from commerce.web.metrics import Metrics
from commerce.web.render import Assets, Templates
from commerce.web.security import Csrf, Network, RateLimiter, client_ip
from config.settings import Settings


@dataclass(frozen=True, slots=True)
class Visit:
    link: ClaimLink
    customer_id: int
    arrived: datetime
    opened: asyncio.Future[None]  # the "link opened" step being written


@dataclass
class WebContext:
    commerce: Commerce
    settings: Settings
    signer: LinkSigner
    links: LinkIssuer
    payments: PaymentProviders
    assets: Assets
    templates: Templates
    metrics: Metrics
    hub: LiveHub
    status: StatusFeed
    gate: RefusalGate
    states: ViewCache  # live stock: short TTL, dropped on every event of the drop
    catalog: ViewCache  # titles, products, prices: long TTL, dropped on restock
    trusted_proxies: tuple[Network, ...]
    ip_limiter: RateLimiter
    customer_limiter: RateLimiter
    admin_token: str | None
    csrf: Csrf | None = None  # keyed at start-up (the key may live in the database)
    heartbeat_seconds: float = 15.0

    @property
    def base_url(self) -> str:
        return self.settings.web.base_url

    def require_csrf(self) -> Csrf:
        assert self.csrf is not None, "app not started"
        return self.csrf

    def rate_limit(self, request: web.Request, identity: str) -> None:
        """Per-IP and per-customer token buckets on every claim entrypoint (429 when empty)."""
        wait = max(
            self.ip_limiter.hit(client_ip(request, self.trusted_proxies)),
            self.customer_limiter.hit(identity),
        )
        if wait > 0:
            raise RateLimited(wait)

    async def visit(self, request: web.Request, link: ClaimLink) -> Visit:
        """Someone opened a personal link: rate limits, who they are, and the funnel's
        "opened" step (recorded whatever the answer; the answer waits for it)."""
        self.rate_limit(request, link.identity)
        arrived = self.commerce.clock.now()
        customer_id = await self.commerce.customers.resolve(link.identity)
        opened = asyncio.ensure_future(self._track_opened(link, customer_id))
        return Visit(link, customer_id, arrived, opened)

    async def claim(self, visit: Visit, pool: str | None, source: str) -> ClaimResult:
        """Claim for a visit: the in-memory refusal gate (never for a customer who holds or
        bought), else the core. Either way the claim is in the claims log."""
        link, commerce = visit.link, self.commerce
        refusal = self.gate.answer(link.drop_id, link.identity)
        if refusal is not None:
            commerce.tracker.note_claim(
                link.drop_id, visit.customer_id, source, visit.arrived, refusal.value
            )
            await visit.opened
            self.metrics.gated.inc()
            self.metrics.claims.labels(refusal.value).inc()
            return ClaimResult(refusal)
        result = await commerce.claims.claim(
            link.drop_id,
            visit.customer_id,
            pool=pool,
            claim_key=link.claim_key,
            source=source,
            arrived_at=visit.arrived,
        )
        await visit.opened
        self.metrics.claims.labels(result.outcome.value).inc()
        if result.outcome in (ClaimOutcome.SOLD_OUT, ClaimOutcome.CLOSED):
            self.gate.refused(link.drop_id)
        return result

    async def _track_opened(self, link: ClaimLink, customer_id: int) -> None:
        """Funnel step "link opened" (and which reminder brought them), whatever the answer,
        written before the answer goes out (shared writes: see Tracker.log)."""
        tracker = self.commerce.tracker
        if link.tag and link.tag.startswith("reminder"):
            tracker.note(link.drop_id, "reminder_opened", customer_id, tag=link.tag)
        await tracker.log(link.drop_id, "link_opened", customer_id, tag=link.tag)


CONTEXT: web.AppKey[WebContext] = web.AppKey("dropcast", WebContext)
