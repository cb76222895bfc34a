"""Everything a handler needs, built once per app and reached through one typed AppKey."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from commerce.core import Commerce
from commerce.domain.model import ClaimOutcome, ClaimResult
from commerce.links import ClaimLink, LinkSigner
from commerce.payments.base import PaymentProviders
from commerce.web.errors import RateLimited
from commerce.web.live import LiveHub, SoldOutGate, ViewCache
from commerce.web.metrics import Metrics
from commerce.web.render import Assets, Templates
from commerce.web.security import Csrf, Network, RateLimiter, client_ip
from config.settings import Settings

HELD_COOKIE = "dc_held"


@dataclass
class WebContext:
    commerce: Commerce
    settings: Settings
    signer: LinkSigner
    payments: PaymentProviders
    assets: Assets
    templates: Templates
    metrics: Metrics
    hub: LiveHub
    gate: SoldOutGate
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

    def holds_cookie(self, request: web.Request, link: ClaimLink) -> bool:
        token = request.cookies.get(HELD_COOKIE)
        return token is not None and self.require_csrf().check(token, "held", link.nonce)

    async def claim(
        self, request: web.Request, link: ClaimLink, pool: str | None, source: str
    ) -> ClaimResult:
        """Claim for a verified link: rate limits, the in-memory sold-out gate, then the core.

        The gate is checked again after the customer lookup: a surge that sold out while
        this request waited on the database is answered from memory too.
        """
        self.rate_limit(request, link.identity)
        gated = not self.holds_cookie(request, link)
        if gated and self.gate.closed(link.drop_id, link.claim_key):
            return self._gated()
        commerce = self.commerce
        customer_id = await commerce.customers.resolve(link.identity)
        self._track_opened(link, customer_id)
        if gated and self.gate.closed(link.drop_id, link.claim_key):
            return self._gated()
        result = await commerce.claims.claim(
            link.drop_id, customer_id, pool=pool, claim_key=link.claim_key, source=source
        )
        self.metrics.claims.labels(result.outcome.value).inc()
        if result.ok:
            self.gate.won(link.drop_id, link.claim_key)
        return result

    def _track_opened(self, link: ClaimLink, customer_id: int) -> None:
        """Funnel step "link opened" (and which reminder brought them), written in batches."""
        tracker = self.commerce.tracker
        tracker.note(link.drop_id, "link_opened", customer_id, tag=link.tag)
        if link.tag and link.tag.startswith("reminder"):
            tracker.note(link.drop_id, "reminder_opened", customer_id, tag=link.tag)

    def _gated(self) -> ClaimResult:
        self.metrics.gated.inc()
        self.metrics.claims.labels(ClaimOutcome.SOLD_OUT.value).inc()
        return ClaimResult(ClaimOutcome.SOLD_OUT)


CONTEXT: web.AppKey[WebContext] = web.AppKey("dropcast", WebContext)
