"""A small local fake of the Stripe endpoints dropcast uses, plus signed webhook events.

It answers as Stripe does where dropcast depends on it: Checkout Session amounts (line items
plus the chosen shipping option), shipping address collection kept to Stripe's country list,
its error shape (``{"error": {"type", "message", "param"}}``, 400), and idempotency (a key
replays its first answer; the same key with other parameters is a 400 idempotency_error).
``complete`` plays the buyer: pays a session, gives an address, and returns the signed
``checkout.session.completed`` delivery.
"""

from __future__ import annotations

import itertools
import json
import time
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, NamedTuple

import stripe
from aiohttp import web
from aiohttp.test_utils import TestServer
from stripe.checkout import Session

WEBHOOK_SECRET = "whsec_test_secret"
API_KEY = "sk_test_fake"
# The version the pinned stripe package speaks, hence the shape of the objects here.
API_VERSION = stripe.api_version
# Before this version a session's collected address was its top-level ``shipping_details``;
# from it on, ``collected_information.shipping_details`` (Stripe changelog, 2025-03-31.basil).
COLLECTED_INFORMATION_SINCE = "2025-03-31"
ADDRESS_KEYS = ("city", "country", "line1", "line2", "postal_code", "state")


@cache
def stripe_countries() -> frozenset[str]:
    """The countries Checkout can collect an address in, as the stripe package types
    ``shipping_address_collection.allowed_countries`` (ISO 3166-1 less 15, plus AC/TA/XK/ZZ)."""
    hint = typing.get_type_hints(Session.ShippingAddressCollection)["allowed_countries"]
    (member,) = typing.get_args(hint)  # List[Union[Literal[...], str]]
    literal = typing.get_args(member)[0]
    return frozenset(typing.get_args(literal))


def unflatten(form: Mapping[str, str]) -> dict[str, Any]:
    """Stripe's form encoding (line_items[0][price_data][currency]=usd) back to a dict."""
    out: dict[str, Any] = {}
    for key, value in form.items():
        parts = key.replace("]", "").split("[")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    unflattened: dict[str, Any] = _lists(out)
    return unflattened


def _lists(node: Any) -> Any:
    if isinstance(node, dict):
        if node and all(k.isdigit() for k in node):
            return [_lists(node[k]) for k in sorted(node, key=int)]
        return {k: _lists(v) for k, v in node.items()}
    return node


class Refusal(Exception):
    """A 4xx answer in Stripe's shape."""

    def __init__(self, message: str, param: str | None = None, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.body: dict[str, Any] = {"type": kind, "message": message}
        if param is not None:
            self.body["param"] = param

    def response(self) -> web.Response:
        return web.json_response({"error": self.body}, status=400)


def _int(value: Any, param: str, least: int = 0) -> int:
    if not isinstance(value, str) or not value.lstrip("-").isdigit():
        raise Refusal(f"Invalid integer: {value}", param)
    number = int(value)
    if number < least:
        raise Refusal(f"This value must be greater than or equal to {least}.", param)
    return number


def _required(node: Mapping[str, Any], key: str, param: str) -> Any:
    value = node.get(key)
    if value in (None, "", [], {}):
        raise Refusal(f"Missing required param: {param}.", param)
    return value


class Delivery(NamedTuple):
    """A webhook as Stripe posts it: the body and its signature header."""

    body: bytes
    headers: dict[str, str]


@dataclass
class FakeStripe:
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The session create requests as they arrived (form values are strings), by session id.
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    shipping_rates: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)  # the 400s' error bodies
    # Idempotency-Key → (endpoint, parameters, the first answer).
    idempotency: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = field(default_factory=dict)
    failures: int = 0  # answer this many session requests with a 500
    server: TestServer | None = None
    _events: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

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

    async def _idempotent(
        self, request: web.Request, create: typing.Callable[[dict[str, Any]], dict[str, Any]]
    ) -> web.Response:
        """Stripe's idempotency: the first answer again for the same key and parameters; a
        400 for the same key with others. A request refused as invalid saves nothing."""
        params = unflatten(dict(await request.post()))  # type: ignore[arg-type]
        key = request.headers.get("Idempotency-Key", "")
        if key in self.idempotency:
            path, first, answer = self.idempotency[key]
            if (path, first) != (request.path, params):
                return self._refuse(
                    Refusal(
                        "Keys for idempotent requests can only be used with the same "
                        "parameters they were first used with. Try using a key other than "
                        f"'{key}' if you meant to execute a different request.",
                        kind="idempotency_error",
                    )
                )
            return web.json_response(answer, headers={"Idempotent-Replayed": "true"})
        try:
            answer = create(params)
        except Refusal as error:
            return self._refuse(error)
        if key:
            self.idempotency[key] = (request.path, params, answer)
        return web.json_response(answer)

    def _refuse(self, error: Refusal) -> web.Response:
        self.rejected.append(error.body)
        return error.response()

    async def _create_session(self, request: web.Request) -> web.Response:
        self._auth(request)
        if self.failures:
            self.failures -= 1
            return web.json_response(
                {"error": {"message": "boom", "type": "api_error"}}, status=500
            )
        return await self._idempotent(request, self._new_session)

    def _new_session(self, params: dict[str, Any]) -> dict[str, Any]:
        number = len(self.sessions) + 1
        session_id = f"cs_test_{number}"
        currency, subtotal = self._line_items(params)
        collection = self._address_collection(params)
        options = self._shipping_options(params, currency)
        shipping_cost = None
        if options:  # Checkout selects the first option until the buyer picks another
            first = options[0]
            shipping_cost = {
                "amount_subtotal": first["shipping_amount"],
                "amount_tax": 0,
                "amount_total": first["shipping_amount"],
                "shipping_rate": first["shipping_rate"],
            }
        shipping = shipping_cost["amount_total"] if shipping_cost else 0
        session = {
            "id": session_id,
            "object": "checkout.session",
            "url": f"{self.base}/pay/{session_id}",
            "payment_status": "unpaid",
            "status": "open",
            "payment_intent": f"pi_test_{number}",
            **{k: v for k, v in params.items() if k != "shipping_options"},
            "expires_at": int(params["expires_at"]),
            "currency": currency,
            "amount_subtotal": subtotal,
            "amount_total": subtotal + shipping,
            "shipping_address_collection": collection,
            "shipping_options": options,
            "shipping_cost": shipping_cost,
            "collected_information": None,
        }
        self.sessions[session_id] = session
        self.requests[session_id] = params
        return session

    @staticmethod
    def _line_items(params: dict[str, Any]) -> tuple[str, int]:
        """(currency, subtotal) of the session's line items, or Stripe's refusal."""
        items = _required(params, "line_items", "line_items")
        if not isinstance(items, list):
            raise Refusal("Invalid array", "line_items")
        currencies, subtotal = set(), 0
        for i, item in enumerate(items):
            where = f"line_items[{i}]"
            price = _required(item, "price_data", f"{where}[price_data]")
            currencies.add(_required(price, "currency", f"{where}[price_data][currency]"))
            unit = _int(price.get("unit_amount"), f"{where}[price_data][unit_amount]")
            subtotal += unit * _int(item.get("quantity"), f"{where}[quantity]", least=1)
        if len(currencies) != 1:
            raise Refusal("All line items must have the same currency.", "line_items")
        return currencies.pop(), subtotal

    @staticmethod
    def _address_collection(params: dict[str, Any]) -> dict[str, Any] | None:
        if "shipping_address_collection" not in params:
            return None
        param = "shipping_address_collection[allowed_countries]"
        node = params["shipping_address_collection"]
        countries = _required(node if isinstance(node, dict) else {}, "allowed_countries", param)
        if not isinstance(countries, list):
            raise Refusal("Invalid array", param)
        for i, code in enumerate(countries):
            if code not in stripe_countries():
                raise Refusal(
                    f"Invalid {param}[{i}]: must be one of "
                    + ", ".join(sorted(stripe_countries())),
                    f"{param}[{i}]",
                )
        return {"allowed_countries": countries}

    def _shipping_options(self, params: dict[str, Any], currency: str) -> list[dict[str, Any]]:
        """Each ``shipping_rate_data`` made a ShippingRate, as Stripe does; the session lists
        them as ``{shipping_amount, shipping_rate}``."""
        given = params.get("shipping_options", [])
        if not isinstance(given, list) or len(given) > 5:
            raise Refusal("Invalid array (at most 5 shipping options)", "shipping_options")
        options = []
        for i, option in enumerate(given):
            where = f"shipping_options[{i}][shipping_rate_data]"
            data = _required(option, "shipping_rate_data", where)
            if data.get("type", "fixed_amount") != "fixed_amount":
                raise Refusal(f"Invalid {where}[type]: must be fixed_amount", f"{where}[type]")
            name = _required(data, "display_name", f"{where}[display_name]")
            if len(name) > 100:
                raise Refusal("Must be at most 100 characters.", f"{where}[display_name]")
            fixed = _required(data, "fixed_amount", f"{where}[fixed_amount]")
            amount = _int(fixed.get("amount"), f"{where}[fixed_amount][amount]")
            rate_currency = _required(fixed, "currency", f"{where}[fixed_amount][currency]")
            if rate_currency != currency:
                raise Refusal(
                    "The shipping rate's currency must match the currency of the line items.",
                    f"{where}[fixed_amount][currency]",
                )
            rate_id = f"shr_test_{len(self.shipping_rates) + 1}"
            self.shipping_rates[rate_id] = {
                "id": rate_id,
                "object": "shipping_rate",
                "active": True,
                "display_name": name,
                "fixed_amount": {"amount": amount, "currency": rate_currency},
                "type": "fixed_amount",
                "metadata": {},
            }
            options.append({"shipping_amount": amount, "shipping_rate": rate_id})
        return options

    async def _create_refund(self, request: web.Request) -> web.Response:
        self._auth(request)
        return await self._idempotent(request, self._new_refund)

    def _new_refund(self, params: dict[str, Any]) -> dict[str, Any]:
        refund = {"id": f"re_{len(self.refunds) + 1}", "object": "refund", "status": "succeeded"}
        refund.update(params)
        self.refunds.append(refund)
        return refund

    # -- the buyer's side -------------------------------------------------------------------

    def complete(
        self,
        session_id: str,
        *,
        name: str = "Ada Lovelace",
        address: Mapping[str, str] | None = None,
        api_version: str = API_VERSION,
    ) -> Delivery:
        """The buyer pays ``session_id`` on Stripe's page, giving ``address`` (Stripe's keys:
        line1, line2, city, state, postal_code, country; missing ones are null) when the
        session collects one. Returns the signed ``checkout.session.completed`` as an
        endpoint on ``api_version`` receives it."""
        session = self.sessions[session_id]
        assert session["status"] == "open", f"{session_id} is {session['status']}"
        collection = session["shipping_address_collection"]
        details = None
        if collection is not None:
            assert address is not None, "this session asks the buyer for an address"
            assert set(address) <= set(ADDRESS_KEYS), f"Stripe has no {set(address)}"
            # Stripe's page offers only the allowed countries.
            assert address.get("country") in collection["allowed_countries"]
            details = {"name": name, "address": {key: address.get(key) for key in ADDRESS_KEYS}}
        else:
            assert address is None, "this session does not collect an address"
        session.update(
            status="complete",
            payment_status="paid",
            collected_information={
                "business_name": None,
                "individual_name": None,
                "shipping_details": details,
            },
        )
        shown = dict(session)
        if api_version < COLLECTED_INFORMATION_SINCE:
            del shown["collected_information"]
            shown["shipping_details"] = details
        body = self._event(shown, f"evt_test_{next(self._events)}", api_version)
        return Delivery(body, {"Stripe-Signature": sign(body)})

    def completed_event(self, session_id: str, event_id: str = "evt_1") -> bytes:
        """The webhook body Stripe sends when the buyer has paid (the session is left open)."""
        session = {**self.sessions[session_id], "payment_status": "paid", "status": "complete"}
        return self._event(session, event_id, API_VERSION)

    @staticmethod
    def _event(session: dict[str, Any], event_id: str, api_version: str) -> bytes:
        event = {
            "id": event_id,
            "object": "event",
            "type": "checkout.session.completed",
            "api_version": api_version,
            "created": int(time.time()),
            "data": {"object": session},
        }
        return json.dumps(event).encode()


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return str(stripe.WebhookSignature.generate_signature_header(body.decode(), secret))
