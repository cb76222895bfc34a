"""A small local fake of the Stripe endpoints dropcast uses, plus signed webhook events."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import stripe
from aiohttp import web
from aiohttp.test_utils import TestServer

WEBHOOK_SECRET = "whsec_test_secret"
API_KEY = "sk_test_fake"


def unflatten(form: dict[str, str]) -> dict[str, Any]:
    """Stripe's form encoding (line_items[0][price_data][currency]=usd) back to a dict."""
    out: dict[str, Any] = {}
    for key, value in form.items():
        parts = key.replace("]", "").split("[")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists(out)


def _lists(node: Any) -> Any:
    if isinstance(node, dict):
        if node and all(k.isdigit() for k in node):
            return [_lists(node[k]) for k in sorted(node, key=int)]
        return {k: _lists(v) for k, v in node.items()}
    return node


@dataclass
class FakeStripe:
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: list[dict[str, Any]] = field(default_factory=list)
    idempotency: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: int = 0  # answer this many session requests with a 500
    server: TestServer | None = None

    @property
    def base(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/checkout/sessions", self._create_session)
        app.router.add_post("/v1/refunds", self._create_refund)
        return app

    def _auth(self, request: web.Request) -> None:
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            raise web.HTTPUnauthorized()

    async def _create_session(self, request: web.Request) -> web.Response:
        self._auth(request)
        if self.failures:
            self.failures -= 1
            return web.json_response(
                {"error": {"message": "boom", "type": "api_error"}}, status=500
            )
        key = request.headers.get("Idempotency-Key", "")
        if key in self.idempotency:
            return web.json_response(self.idempotency[key])
        params = unflatten(dict(await request.post()))
        session_id = f"cs_test_{len(self.sessions) + 1}"
        session = {
            "id": session_id,
            "object": "checkout.session",
            "url": f"{self.base}/pay/{session_id}",
            "payment_status": "unpaid",
            "status": "open",
            "payment_intent": f"pi_test_{len(self.sessions) + 1}",
            **params,
            "expires_at": int(params["expires_at"]),
        }
        self.sessions[session_id] = session
        self.idempotency[key] = session
        return web.json_response(session)

    async def _create_refund(self, request: web.Request) -> web.Response:
        self._auth(request)
        key = request.headers.get("Idempotency-Key", "")
        if key in self.idempotency:
            return web.json_response(self.idempotency[key])
        params = unflatten(dict(await request.post()))
        refund = {"id": f"re_{len(self.refunds) + 1}", "object": "refund", "status": "succeeded"}
        refund.update(params)
        self.refunds.append(refund)
        self.idempotency[key] = refund
        return web.json_response(refund)

    def completed_event(self, session_id: str, event_id: str = "evt_1") -> bytes:
        """The webhook body Stripe sends when the buyer has paid."""
        session = {**self.sessions[session_id], "payment_status": "paid", "status": "complete"}
        event = {
            "id": event_id,
            "object": "event",
            "type": "checkout.session.completed",
            "api_version": "2024-06-20",
            "created": int(time.time()),
            "data": {"object": session},
        }
        return json.dumps(event).encode()


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return stripe.WebhookSignature.generate_signature_header(body.decode(), secret)
