"""Value objects and read models of the drop domain. Plain dataclasses, no framework."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from commerce.domain.errors import InvalidInput
from commerce.domain.identities import SCHEMES

SHIP_POOL = "ship"
PICKUP_PREFIX = "pickup:"

# ISO 4217 currencies without minor units; everything else here uses two decimals.
_ZERO_DECIMAL = frozenset({"JPY", "KRW", "VND", "CLP", "ISK", "UGX", "XAF", "XOF", "PYG"})
_SKU = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_POOL = re.compile(r"^(ship|pickup:[a-z0-9][a-z0-9-]{0,70})$")
# The largest price or shipping fee, in minor units: a line of 100 bundles of 100 parts at
# this price still fits the 64-bit integer columns that store amounts.
MAX_AMOUNT_MINOR = 10**13


class DropFormat(StrEnum):
    CAPSULE = "capsule"
    BUNDLE = "bundle"
    COLLAB = "collab"


class DropState(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    LIVE = "live"
    CLOSED = "closed"


class CloseReason(StrEnum):
    SOLD_OUT = "sold_out"
    WINDOW_ENDED = "window_ended"
    MANUAL = "manual"


class HoldStatus(StrEnum):
    ACTIVE = "active"
    CONVERTED = "converted"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class OrderStatus(StrEnum):
    PENDING = "pending"  # waiting for the provider; the hold still reserves the units
    RESERVED = "reserved"  # manual payment: units committed, paid at pickup / by invoice
    PAID = "paid"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


class WaitlistStatus(StrEnum):
    WAITING = "waiting"  # in the queue
    OFFERED = "offered"  # a freed unit is held for them (the offer's hold)
    CLAIMED = "claimed"  # they got a hold, offered or by claiming themselves
    LAPSED = "lapsed"  # the offer ran out, or they left
    CLOSED = "closed"  # the drop closed while they waited (a restock reopens it)


class SubscriptionStatus(StrEnum):
    ACTIVE = "active"
    ENDED = "ended"


class NotificationStatus(StrEnum):
    PENDING = "pending"  # due at not_before
    SENDING = "sending"  # leased by a sender until lease_until
    SENT = "sent"
    UNREACHABLE = "unreachable"  # e.g. closed DMs: not retried
    FAILED = "failed"  # out of attempts
    UNSUBSCRIBED = "unsubscribed"
    SKIPPED = "skipped"  # no longer wanted (the person was forgotten)


class WebhookStatus(StrEnum):
    """One outbound webhook delivery (one event to one endpoint)."""

    PENDING = "pending"  # due at next_attempt_at
    SENDING = "sending"  # leased by the worker until lease_until
    SENT = "sent"  # the endpoint answered 2xx
    FAILED = "failed"  # a permanent refusal (a 4xx other than 429, a redirect)
    DEAD = "dead"  # retried until 24 h after the event, or its endpoint was disabled


class Fulfilment(StrEnum):
    """What happened to a settled order's goods (independent of how it was paid)."""

    SHIPPED = "shipped"
    PICKED_UP = "picked_up"


class DeskStatus(StrEnum):
    """One word for an order on the creator's desk: its payment state, or its fulfilment
    once the goods have left (a refunded order reads refunded whatever happened before)."""

    PENDING = "pending"
    RESERVED = "reserved"
    PAID = "paid"
    SHIPPED = "shipped"
    PICKED_UP = "picked_up"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"


class ClaimOutcome(StrEnum):
    HELD = "held"  # a new hold was placed
    ALREADY_HELD = "already_held"  # the same claim (or an active hold of this customer) again
    SOLD_OUT = "sold_out"
    LIMIT_REACHED = "limit_reached"
    NOT_OPEN = "not_open"
    CLOSED = "closed"


def currency_exponent(currency: str) -> int:
    return 0 if currency in _ZERO_DECIMAL else 2


@dataclass(frozen=True, slots=True)
class Money:
    amount_minor: int
    currency: str

    @classmethod
    def parse(cls, amount: str | int | float, currency: str, field_name: str = "price") -> Money:
        """Parse a decimal amount ("12.00") into integer minor units, refusing sub-cent values."""
        currency = currency.upper()
        if not re.fullmatch(r"[A-Z]{3}", currency):
            raise InvalidInput("currency", f"{currency!r} is not a three-letter ISO 4217 code")
        if isinstance(amount, float):
            amount = repr(amount)
        try:
            value = Decimal(str(amount).strip())
        except InvalidOperation:
            raise InvalidInput(field_name, f"{amount!r} is not a number") from None
        if not value.is_finite() or value < 0:
            raise InvalidInput(field_name, f"{amount!r} must be zero or more")
        scaled = value.scaleb(currency_exponent(currency))
        if scaled != scaled.to_integral_value():
            raise InvalidInput(field_name, f"{amount!r} has more decimals than {currency} allows")
        if scaled > MAX_AMOUNT_MINOR:
            largest = Decimal(MAX_AMOUNT_MINOR).scaleb(-currency_exponent(currency))
            raise InvalidInput(field_name, f"{amount!r} is more than {largest:f} {currency}")
        return cls(int(scaled), currency)

    def __add__(self, other: Money) -> Money:
        if other.currency != self.currency:
            raise InvalidInput("currency", f"cannot add {other.currency} to {self.currency}")
        return Money(self.amount_minor + other.amount_minor, self.currency)

    def __mul__(self, factor: int) -> Money:
        return Money(self.amount_minor * factor, self.currency)

    def format(self) -> str:
        exponent = currency_exponent(self.currency)
        value = Decimal(self.amount_minor).scaleb(-exponent)
        return f"{value:.{exponent}f} {self.currency}"


def validate_sku(sku: str, field_name: str = "sku") -> str:
    if not isinstance(sku, str) or not _SKU.match(sku):
        raise InvalidInput(field_name, f"{sku!r} is not a valid SKU (letters, digits, . _ -)")
    return sku


def validate_pool(pool: str, field_name: str = "pool") -> str:
    if not isinstance(pool, str) or not _POOL.match(pool):
        raise InvalidInput(
            field_name, f"{pool!r} is not a pool: use 'ship' or 'pickup:<location-slug>'"
        )
    return pool


def normalize_identity(identity: str) -> str:
    """Check and normalise an identity such as ``web:a@b.co`` against the schemes this
    process knows (the core's own and those its chat platforms registered)."""
    return SCHEMES.normalize(identity)


@dataclass(frozen=True, slots=True)
class Product:
    sku: str
    title: str
    price: Money
    image_url: str | None = None


@dataclass(frozen=True, slots=True)
class StockLine:
    """One stock row: an item of a drop in one pool."""

    stock_id: int
    sku: str
    pool: str
    per_unit: int
    total: int
    sold: int
    held: int

    @property
    def available(self) -> int:
        return self.total - self.sold - self.held


def claimable_units(lines: Iterable[StockLine], fmt: DropFormat) -> int:
    """Units a claim could still take: for a bundle, whole bundles (bounded by every part)."""
    return stock_counts(lines, fmt).available


@dataclass(frozen=True, slots=True)
class StockCounts:
    """A drop's stock in claim units: units, or whole bundles for a bundle drop."""

    available: int
    held: int
    sold: int
    total: int


def stock_counts(lines: Iterable[StockLine], fmt: DropFormat) -> StockCounts:
    """Available, held, sold and total in the unit a buyer claims. A bundle pool has as many
    bundles as its scarcest part allows; held and sold move every part together."""
    lines = list(lines)
    if fmt is not DropFormat.BUNDLE:
        return StockCounts(
            sum(max(line.available, 0) for line in lines),
            sum(line.held for line in lines),
            sum(line.sold for line in lines),
            sum(line.total for line in lines),
        )
    pools: dict[str, list[StockLine]] = {}
    for line in lines:
        pools.setdefault(line.pool, []).append(line)
    available = held = sold = total = 0
    for parts in pools.values():
        available += min(max(p.available, 0) // p.per_unit for p in parts)
        held += max(max(p.held, 0) // p.per_unit for p in parts)
        sold += max(p.sold // p.per_unit for p in parts)
        total += min(p.total // p.per_unit for p in parts)
    return StockCounts(available, held, sold, total)


@dataclass(frozen=True, slots=True)
class Drop:
    id: int
    title: str
    format: DropFormat
    state: DropState
    opens_at: datetime | None
    closes_at: datetime | None
    demo_seconds: int | None
    hold_seconds: int
    per_customer_limit: int
    created_at: datetime
    opened_at: datetime | None = None
    closed_at: datetime | None = None
    close_reason: CloseReason | None = None
    price: Money | None = None  # a bundle's price
    currency: str | None = None  # the drop's one currency
    objective: dict[str, object] | None = None
    replay_url: str | None = None
    # Shipping per destination in minor units: {"US": 500, "*": 1400}; None: ships free.
    shipping: dict[str, int] | None = None


@dataclass(frozen=True, slots=True)
class DropView:
    """A drop with its products and live stock: what `drop show` and the APIs present."""

    drop: Drop
    products: dict[str, Product]
    stock: list[StockLine]
    waiting: int = 0
    as_of: datetime | None = None

    @property
    def pools(self) -> list[str]:
        return sorted({line.pool for line in self.stock}, key=lambda p: (p != SHIP_POOL, p))

    def available_units(self, pool: str | None = None, sku: str | None = None) -> int:
        """Claimable units: bundles are bounded by every part, per pool."""
        lines = [
            s
            for s in self.stock
            if (pool is None or s.pool == pool) and (sku is None or s.sku == sku)
        ]
        return claimable_units(lines, self.drop.format)

    def counts(self, pool: str | None = None) -> StockCounts:
        """Available, held, sold and total in claim units (bundles for a bundle drop)."""
        lines = [s for s in self.stock if pool is None or s.pool == pool]
        return stock_counts(lines, self.drop.format)

    @property
    def unit_word(self) -> str:
        """What one claim takes: "bundle" for a bundle drop, else "unit"."""
        return "bundle" if self.drop.format is DropFormat.BUNDLE else "unit"

    @property
    def currency(self) -> str:
        if self.drop.currency:
            return self.drop.currency
        return next(iter(self.products.values())).price.currency

    @property
    def unit_price(self) -> Money:
        if self.drop.price is not None:
            return self.drop.price
        if self.drop.format is DropFormat.BUNDLE:
            parts = {s.sku: s.per_unit for s in self.stock}
            currency = next(iter(self.products.values())).price.currency
            return Money(
                sum(self.products[sku].price.amount_minor * n for sku, n in parts.items()),
                currency,
            )
        return next(iter(self.products.values())).price


@dataclass(frozen=True, slots=True)
class Hold:
    id: int
    drop_id: int
    customer_id: int
    sku: str | None
    pool: str
    qty: int
    status: HoldStatus
    created_at: datetime
    expires_at: datetime
    price_minor: int  # one claim unit, as priced when the hold was placed
    source: str = "chat"

    def is_active(self, now: datetime) -> bool:
        return self.status is HoldStatus.ACTIVE and self.expires_at > now


@dataclass(frozen=True, slots=True)
class ClaimResult:
    outcome: ClaimOutcome
    hold: Hold | None = None
    available: int | None = None
    opens_at: datetime | None = None
    waitlist_position: int | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in (ClaimOutcome.HELD, ClaimOutcome.ALREADY_HELD)


@dataclass(frozen=True, slots=True)
class Order:
    id: int
    drop_id: int
    hold_id: int
    customer_id: int
    status: OrderStatus
    qty: int
    amount: Money
    provider: str
    provider_ref: str | None
    pool: str
    created_at: datetime
    paid_at: datetime | None = None
    shipping: Money | None = None  # part of ``amount``; None: nothing to ship
    ship_to: Address | None = None
    fulfilment: Fulfilment | None = None
    fulfilled_at: datetime | None = None
    carrier: str | None = None
    tracking: str | None = None
    pickup_code: str | None = None
    ended_at: datetime | None = None
    refund_reason: str | None = None

    @property
    def desk_status(self) -> DeskStatus:
        if self.status in (OrderStatus.PAID, OrderStatus.RESERVED) and self.fulfilment:
            return DeskStatus(self.fulfilment.value)
        return DeskStatus(self.status.value)

    @property
    def items_amount(self) -> Money:
        """What the goods cost, without shipping."""
        shipping = self.shipping.amount_minor if self.shipping else 0
        return Money(self.amount.amount_minor - shipping, self.amount.currency)


@dataclass(frozen=True, slots=True)
class Address:
    """Where a ``ship`` order goes. Personal data: never logged, erased on request and
    after the retention period."""

    name: str
    line1: str
    city: str
    postal_code: str
    country: str  # ISO 3166-1 alpha-2
    line2: str = ""
    region: str = ""

    def lines(self) -> list[str]:
        """The address as a label prints it."""
        place = " ".join(p for p in (self.postal_code, self.city) if p)
        if self.region:
            place = f"{place}, {self.region}"
        return [p for p in (self.name, self.line1, self.line2, place, self.country) if p]

    def as_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "line1": self.line1,
            "line2": self.line2,
            "postal_code": self.postal_code,
            "city": self.city,
            "region": self.region,
            "country": self.country,
        }

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> Address:
        return cls(
            name=data.get("name", ""),
            line1=data.get("line1", ""),
            line2=data.get("line2", ""),
            postal_code=data.get("postal_code", ""),
            city=data.get("city", ""),
            region=data.get("region", ""),
            country=data.get("country", ""),
        )


@dataclass(frozen=True, slots=True)
class Customer:
    id: int
    identities: tuple[str, ...] = field(default_factory=tuple)
    display_name: str | None = None
    # Identities proven by signing in on the web: such a customer can be reached on the
    # drop page they signed in to (where a chat viewer without private messages pays).
    verified: tuple[str, ...] = field(default_factory=tuple)


class ClipReason(StrEnum):
    """Why a clip of the stream was made: the drop went live, it sold out, or the creator
    asked (``!clip``). The best clip of a drop is the first of these that is ready, in the
    order ``CLIP_PREFERENCE`` gives."""

    OPENED = "opened"
    SOLD_OUT = "sold_out"
    COMMAND = "command"


CLIP_PREFERENCE = (ClipReason.SOLD_OUT, ClipReason.OPENED, ClipReason.COMMAND)


class ClipStatus(StrEnum):
    PENDING = "pending"  # asked for; the platform is still making it
    READY = "ready"  # the platform serves it: url (and thumbnail) known
    FAILED = "failed"  # not served within the platform's time: assumed lost


@dataclass(frozen=True, slots=True)
class Clip:
    """A short video of the stream kept with a drop, as neutral data: the core never asks
    the platform anything about it."""

    id: int
    drop_id: int
    platform: str  # an identity scheme's name ("twitch")
    clip_id: str  # the platform's id of the clip
    reason: ClipReason
    status: ClipStatus
    created_at: datetime
    url: str | None = None
    thumbnail_url: str | None = None
    ready_at: datetime | None = None
