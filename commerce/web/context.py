"""Everything a handler needs, built once per app and reached through one typed AppKey."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field

from aiohttp import web
from itsdangerous import Signer
from multidict import CIMultiDict, CIMultiDictProxy

from commerce.core import Commerce
from commerce.desk import OrderDesk
from commerce.domain.model import ClaimOutcome, ClaimResult
from commerce.domain.payments import PaymentGateways
from commerce.links import ClaimLink, LinkIssuer, LinkSigner
from commerce.observability import request_id
from commerce.services.arrivals import Arrival
from commerce.services.checkout import CheckoutService
from commerce.storage.database import database_unreachable
from commerce.web.errors import RateLimited
from commerce.web.inbox import WebInbox
from commerce.web.live import LiveHub, RefusalGate, StatusFeed, ViewCache
from commerce.web.mail import EmailProofs, Mailer
from commerce.web.metrics import Metrics
from commerce.web.render import Assets, Skeleton, Templates
from commerce.web.rendered import Rendered, RenderMemo
from commerce.web.security import (
    AuthThrottle,
    Csrf,
    EmbedPolicy,
    Network,
    RateLimiter,
    StreamSlots,
    client_ip,
)
from commerce.web.sessions import Sessions
from config.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Visit:
    link: ClaimLink
    customer_id: int
    arrival: Arrival  # its place in line, taken as the request came in
    opened: asyncio.Future[None]  # the "link opened" step being written


class PickupKeys:
    """The partner shop's own link to its pickup list: ``?key=`` is an HMAC of the location
    keyed by the server secret (itsdangerous), so it needs no admin rights, opens one
    location only, and stays valid until the secret changes."""

    def __init__(self, secret: str) -> None:
        self._signer = Signer(secret, salt="dropcast.pickup", digest_method=hashlib.sha256)

    def key(self, location: str) -> str:
        return self._signer.get_signature(location).decode()

    def check(self, location: str, key: object) -> bool:
        """True when ``key`` (anything a client sent) opens ``location``; constant time."""
        if not isinstance(key, str) or not key or len(key) > 128:
            return False
        return self._signer.verify_signature(location, key)


@dataclass
class WebContext:
    commerce: Commerce
    settings: Settings
    signer: LinkSigner
    links: LinkIssuer
    checkout: CheckoutService  # paying for holds, gateway webhooks
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
    auth_throttle: AuthThrottle  # failed admin sign-ins per address
    code_throttle: AuthThrottle  # wrong pickup codes per address: a code is not guessed
    streams: StreamSlots  # open SSE streams per address
    inbox: WebInbox
    desk: OrderDesk  # the creator's orders: list, refund, ship, picked up
    # Where a viewer may sign in ({"platform", "label"}), in the order the pages offer them.
    signin_platforms: list[dict[str, str]] = field(default_factory=list)
    mailer: Mailer | None = None  # email claims are on when set
    mail_limiter: RateLimiter = field(default_factory=lambda: RateLimiter(0))
    csrf: Csrf | None = None  # keyed at start-up with the secret create_app was given
    sessions: Sessions | None = None  # likewise
    proofs: EmailProofs | None = None  # likewise
    pickup_keys: PickupKeys | None = None  # likewise
    heartbeat_seconds: float = 15.0
    embed: EmbedPolicy = field(default_factory=EmbedPolicy)  # CORS for the widget's reads
    # The public drop page and JSON of each drop's current view, rendered once (per locale).
    rendered_pages: RenderMemo[Rendered] = field(default_factory=RenderMemo)
    rendered_states: RenderMemo[Rendered] = field(default_factory=RenderMemo)
    # Checkout pages (a hold, sold out, closed) per drop's catalogue view and variant,
    # rendered once with the buyer's token, form keys and times left as slots.
    skeletons: RenderMemo[Skeleton] = field(default_factory=lambda: RenderMemo(variants=64))
    openapi: object | None = None  # the OpenAPI document, built at its first request (docs.py)
    # Added to every response at the edge (CSP, framing, sniffing, referrer, Server): built once.
    security_headers: CIMultiDictProxy[str] = field(
        default_factory=lambda: CIMultiDictProxy(CIMultiDict())
    )

    @property
    def base_url(self) -> str:
        return self.settings.web.base_url

    @property
    def payments(self) -> PaymentGateways:
        """The payment methods this shop accepts (checkout's gateways)."""
        return self.checkout.gateways

    def secure(self, response: web.StreamResponse) -> None:
        """The security headers and the request's id (bound at the edge: X-Request-Id finds
        the request in the logs), added once to ``response`` before its headers are sent:
        the edge does it for every route, a handler that sends a stream's headers itself
        (the event stream, a WebSocket's upgrade) first."""
        response.headers.extend(self.security_headers)
        rid = request_id.get()
        if rid is not None:
            response.headers["X-Request-Id"] = rid

    def require_csrf(self) -> Csrf:
        assert self.csrf is not None, "app not started"
        return self.csrf

    def require_sessions(self) -> Sessions:
        assert self.sessions is not None, "app not started"
        return self.sessions

    def hold_link(self, drop_id: int, identity: str) -> str:
        """A personal link that finds the hold ``identity`` already has (one per person),
        for that person's own signed-in page: not a new hand-out, so not in the funnel."""
        token, _ = self.signer.issue(drop_id, identity, tag="page")
        return f"{self.base_url}/c/{token}"

    def require_pickup_keys(self) -> PickupKeys:
        assert self.pickup_keys is not None, "app not started"
        return self.pickup_keys

    def require_proofs(self) -> EmailProofs:
        assert self.proofs is not None, "app not started"
        return self.proofs

    def rate_limit_mail(self, request: web.Request, identity: str) -> None:
        """Proof mails per IP and per address (429 when spent): a mailbox is no free
        identity, and we must not become a way to flood one."""
        wait = max(
            self.mail_limiter.hit(client_ip(request, self.trusted_proxies)),
            self.mail_limiter.hit(identity),
        )
        if wait > 0:
            raise RateLimited(wait)

    def rate_limit(self, request: web.Request, identity: str) -> None:
        """Per-IP and per-customer token buckets on every claim entrypoint (429 when empty)."""
        wait = max(
            self.ip_limiter.hit(client_ip(request, self.trusted_proxies)),
            self.customer_limiter.hit(identity),
        )
        if wait > 0:
            raise RateLimited(wait)

    async def visit(self, request: web.Request, link: ClaimLink, arrival: Arrival) -> Visit:
        """Someone opened a personal link: rate limits, who they are, and the funnel's
        "opened" step (recorded whatever the answer; the answer waits for it)."""
        self.rate_limit(request, link.identity)
        customer_id = await self.commerce.customers.resolve(link.identity)
        opened = self._track_opened(link, customer_id)
        # Seen even when the answer fails first (a database outage): no "never retrieved".
        opened.add_done_callback(lambda done: done.cancelled() or done.exception())
        return Visit(link, customer_id, arrival, opened)

    async def claim(self, visit: Visit, pool: str | None, source: str) -> ClaimResult:
        """Claim for a visit: the in-memory refusal gate (never for a customer who holds or
        bought), else the core. Either way the claim is in the claims log."""
        link, commerce = visit.link, self.commerce
        refusal = self.gate.answer(link.drop_id, link.identity)
        if refusal is not None:
            visit.arrival.leave()  # answered from memory: hold no one up
            commerce.tracker.note_claim(
                link.drop_id, visit.customer_id, source, visit.arrival.at, refusal.value
            )
            try:
                await visit.opened
            except Exception as exc:
                # The answer needs no database: an outage must not turn it into an error.
                # The tracker keeps both rows and writes them once the database is back.
                if not database_unreachable(exc):
                    raise
                log.warning("drop %s: funnel step kept for later: %s", link.drop_id, exc)
            self.metrics.gated.inc()
            self.metrics.claims.labels(refusal.value).inc()
            return ClaimResult(refusal)
        result = await commerce.claims.claim(
            link.drop_id,
            visit.customer_id,
            pool=pool,
            claim_key=link.claim_key,
            source=source,
            arrival=visit.arrival,
        )
        await visit.opened
        self.metrics.claims.labels(result.outcome.value).inc()
        if result.outcome in (ClaimOutcome.SOLD_OUT, ClaimOutcome.CLOSED):
            self.gate.refused(link.drop_id)
        return result

    def _track_opened(self, link: ClaimLink, customer_id: int) -> asyncio.Future[None]:
        """Funnel step "link opened" (and which reminder brought them), whatever the answer,
        written before the answer goes out: the returned future is done once it is (shared
        writes: see Tracker.log)."""
        tracker = self.commerce.tracker
        if link.tag and link.tag.startswith("reminder"):
            tracker.note(link.drop_id, "reminder_opened", customer_id, tag=link.tag)
        tracker.note(link.drop_id, "link_opened", customer_id, tag=link.tag)
        return tracker.committed()


CONTEXT: web.AppKey[WebContext] = web.AppKey("dropcast", WebContext)
