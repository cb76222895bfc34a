"""Tables. SQLAlchemy Core only: the claim path runs hand-built statements, no ORM.

Invariants the database itself enforces (the backstop behind the services):
- ``drop_stock``: 0 <= sold <= total — stock can never go negative or be oversold;
- ``holds``: one hold per (drop, claim_key) — a retried claim never makes a second hold;
- ``orders``: one order per hold and per idempotency key; provider references unique.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from commerce.domain.model import (
    ClipReason,
    ClipStatus,
    DropFormat,
    DropState,
    Fulfilment,
    HoldStatus,
    NotificationStatus,
    OrderStatus,
    SubscriptionStatus,
    WaitlistStatus,
    WebhookStatus,
)

naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=naming_convention)


class _SQLiteDateTimeText(sqlite.DATETIME):
    """SQLite's DATETIME column with the text passed through both ways: ``UTCDateTime``
    writes it (the same text DATETIME writes) and reads it with ``fromisoformat``."""

    def bind_processor(self, dialect: Dialect) -> None:
        return None

    def result_processor(self, dialect: Dialect, coltype: object) -> None:
        return None


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python; naive UTC text on SQLite, timestamptz on PostgreSQL.

    SQLite compares the stored ISO text lexicographically, which is correct only if every
    value is normalised to UTC first — hence this type rather than plain DateTime.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(_SQLiteDateTimeText())  # type: ignore[no-untyped-call]
        return dialect.type_descriptor(self.impl)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | str | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use UTC-aware datetimes")
        value = value.astimezone(UTC)
        if dialect.name != "sqlite":
            return value
        # SQLAlchemy's SQLite DATETIME text, written here: its own processor builds a dict
        # per value, a measurable share of a surge's inserts.
        return (
            f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
            f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}"
        )

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        when: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        if when.tzinfo is None:  # SQLite text, or raw text from an aggregate expression
            return when.replace(tzinfo=UTC)
        return when.astimezone(UTC)


Id = BigInteger().with_variant(Integer(), "sqlite")  # INTEGER PRIMARY KEY = rowid on SQLite


def one_of(column: str, values: type[StrEnum]) -> CheckConstraint:
    """``column`` holds one of the enum's values (or NULL where the column allows it): the
    domain's enum is the one list of what a status may be."""
    allowed = ", ".join(f"'{value}'" for value in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=f"{column}_known")


kv = Table(
    "kv",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

products = Table(
    "products",
    metadata,
    Column("sku", String(64), primary_key=True),
    Column("title", String(200), nullable=False),
    Column("price_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("image_url", Text),
    CheckConstraint("price_minor >= 0", name="price_not_negative"),
)

drop_products = Table(
    "drop_products",
    metadata,
    # A drop's catalogue, copied from the products when the drop is created: a later drop
    # that reuses a SKU at another price never re-prices this one. Only the audited price
    # command changes it, and never under an open hold.
    Column("drop_id", Id, ForeignKey("drops.id"), primary_key=True),
    Column("sku", String(64), ForeignKey("products.sku"), primary_key=True),
    Column("title", String(200), nullable=False),
    Column("price_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("image_url", Text),
    CheckConstraint("price_minor >= 0", name="price_not_negative"),
)

customers = Table(
    "customers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("display_name", String(200)),
    Column("created_at", UTCDateTime, nullable=False),
    # Linked identities fold customers together; analytics counts the survivor.
    Column("merged_into", Id, ForeignKey("customers.id")),
    # Erased on request (`customer forget`): no identity, name or address is left.
    Column("forgotten_at", UTCDateTime),
)

identities = Table(
    "identities",
    metadata,
    Column("identity", String(320), primary_key=True),  # "<scheme>:<id>", e.g. "web:a@b.c"
    Column("customer_id", Id, ForeignKey("customers.id"), nullable=False, index=True),
    Column("created_at", UTCDateTime, nullable=False),
    # When its owner proved it by signing in on the web (OAuth); None: only chat vouches.
    Column("verified_at", UTCDateTime),
)

drops = Table(
    "drops",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("title", String(200), nullable=False),
    Column("format", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("opens_at", UTCDateTime),
    Column("closes_at", UTCDateTime),
    Column("demo_seconds", Integer),
    Column("hold_seconds", Integer, nullable=False),
    Column("per_customer_limit", Integer, nullable=False),
    Column("price_minor", BigInteger),  # a bundle's price (its own, or the sum of its parts)
    Column("currency", String(3)),  # the drop's one currency
    Column("objective", JSON),
    Column("replay_url", Text),
    # {"US": 500, "*": 1400} minor units; None (SQL NULL): ships free
    Column("shipping", JSON(none_as_null=True)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("opened_at", UTCDateTime),
    Column("closed_at", UTCDateTime),
    Column("close_reason", String(16)),
    one_of("format", DropFormat),
    one_of("state", DropState),
    CheckConstraint("hold_seconds > 0", name="hold_positive"),
    CheckConstraint("per_customer_limit > 0", name="limit_positive"),
)

drop_stock = Table(
    "drop_stock",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("drop_id", Id, ForeignKey("drops.id"), nullable=False),
    Column("sku", String(64), ForeignKey("products.sku"), nullable=False),
    Column("pool", String(80), nullable=False),  # "ship" or "pickup:<location>"
    Column("per_unit", Integer, nullable=False, default=1),  # bundle: units of this SKU per bundle
    Column("position", Integer, nullable=False, default=0),
    Column("total", Integer, nullable=False),
    Column("sold", Integer, nullable=False, default=0),
    # SKU units in holds whose status is still 'active' — including any that expired a
    # moment ago and await the sweeper, which the claim subtracts by filter. Kept by every
    # hold transition in the same transaction, so a claim never sums all active holds.
    Column("held", Integer, nullable=False, default=0, server_default="0"),
    UniqueConstraint("drop_id", "sku", "pool", name="uq_drop_stock_item_pool"),
    CheckConstraint("sold >= 0 AND total >= 0 AND sold <= total", name="stock_bounds"),
    CheckConstraint("per_unit > 0", name="per_unit_positive"),
    CheckConstraint("held >= 0", name="held_not_negative"),
)

holds = Table(
    "holds",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("drop_id", Id, ForeignKey("drops.id"), nullable=False),
    Column("customer_id", Id, ForeignKey("customers.id"), nullable=False),
    # sku is None for a bundle hold: it covers every part of the drop in its pool.
    Column("sku", String(64)),
    Column("pool", String(80), nullable=False),
    Column("qty", Integer, nullable=False),
    # The price of one claim unit when the hold was placed: what the buyer saw, and pays.
    Column("price_minor", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),  # active|converted|expired|cancelled
    Column("claim_key", String(128), nullable=False),
    Column("source", String(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime),
    UniqueConstraint("drop_id", "claim_key", name="uq_holds_claim_key"),
    CheckConstraint("qty > 0", name="qty_positive"),
    one_of("status", HoldStatus),
)
# Each hold lookup has one index only it can use: without fresh statistics PostgreSQL took
# any index leading with the drop for a per-claim lookup, reading every hold of the drop.
# A drop's active holds by expiry (lapsed units, the next lapse, pending holds):
Index(
    "ix_holds_drop_active",
    holds.c.drop_id,
    holds.c.expires_at,
    sqlite_where=holds.c.status == "active",
    postgresql_where=holds.c.status == "active",
)
Index("ix_holds_customer_drop", holds.c.customer_id, holds.c.drop_id)  # what a buyer holds
Index("ix_holds_status_expiry", holds.c.status, holds.c.expires_at)

orders = Table(
    "orders",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("drop_id", Id, ForeignKey("drops.id"), nullable=False),
    Column("hold_id", Id, ForeignKey("holds.id"), nullable=False, unique=True),
    Column("customer_id", Id, ForeignKey("customers.id"), nullable=False, index=True),
    Column("status", String(16), nullable=False),  # pending|reserved|paid|cancelled|refunded
    Column("qty", Integer, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("provider_ref", String(200), unique=True),
    Column("idempotency_key", String(128), nullable=False, unique=True),
    Column("pool", String(80), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("paid_at", UTCDateTime),
    Column("ended_at", UTCDateTime),
    Column("refund_reason", String(64)),
    # amount_minor includes shipping_minor; None: nothing shipped (a pickup order).
    Column("shipping_minor", BigInteger),
    # The shipping address (personal data: erased by `customer forget` and by retention).
    Column("ship_to", JSON(none_as_null=True)),
    Column("fulfilment", String(16)),  # None | shipped | picked_up
    Column("fulfilled_at", UTCDateTime),
    Column("carrier", String(64)),
    Column("tracking", String(128)),
    Column("pickup_code", String(12)),  # shown on the receipt, checked by the shop
    one_of("status", OrderStatus),
    CheckConstraint("amount_minor >= 0", name="amount_not_negative"),
    one_of("fulfilment", Fulfilment),
)
Index("ix_orders_drop_status", orders.c.drop_id, orders.c.status)

claims = Table(
    "claims",
    metadata,
    # The fairness audit: every claim with its server arrival time and outcome.
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("drop_id", Id, ForeignKey("drops.id"), nullable=False),
    Column("customer_id", Id, ForeignKey("customers.id"), nullable=False),
    Column("source", String(32), nullable=False),
    Column("arrived_at", UTCDateTime, nullable=False),
    Column("decided_at", UTCDateTime, nullable=False),
    Column("outcome", String(24), nullable=False),
    Column("hold_id", Id, ForeignKey("holds.id")),
)
Index("ix_claims_drop_arrived", claims.c.drop_id, claims.c.arrived_at)

waitlist = Table(
    "waitlist",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),  # the id is the queue position
    Column("drop_id", Id, ForeignKey("drops.id"), nullable=False),
    Column("customer_id", Id, ForeignKey("customers.id"), nullable=False),
    Column("sku", String(64)),
    Column("pool", String(80), nullable=False),
    Column("status", String(16), nullable=False),  # waiting|offered|claimed|lapsed|closed
    Column("joined_at", UTCDateTime, nullable=False),
    Column("offered_at", UTCDateTime),
    Column("hold_id", Id, ForeignKey("holds.id")),
    UniqueConstraint("drop_id", "customer_id", name="uq_waitlist_drop_customer"),
    one_of("status", WaitlistStatus),
)
Index("ix_waitlist_drop_status", waitlist.c.drop_id, waitlist.c.status)

outbox = Table(
    "outbox",
    metadata,
    # Events that must not be lost: written in the same transaction as the change,
    # published after commit, re-published at start-up if a crash came in between.
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("topic", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("dispatched_at", UTCDateTime),
)
Index("ix_outbox_pending", outbox.c.dispatched_at, outbox.c.id)

activity = Table(
    "activity",
    metadata,
    # Measurement: every funnel step with server time (link issued/opened, held, paid …).
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("drop_id", Id, ForeignKey("drops.id"), nullable=False),
    Column("customer_id", Id, ForeignKey("customers.id")),
    Column("kind", String(32), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("detail", JSON),
)
Index("ix_activity_drop_kind_at", activity.c.drop_id, activity.c.kind, activity.c.at)


subscriptions = Table(
    "subscriptions",
    metadata,
    # A superfan asked to hear about a creator's drops ('creator', target '*'), one drop
    # ('drop', target = drop id) or restocks of a SKU ('sku', target = SKU).
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("customer_id", Id, ForeignKey("customers.id"), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("target", String(64), nullable=False),
    Column("channel", String(16), nullable=False),  # an identity scheme, or webhook
    Column("address", String(400), nullable=False),  # identity, or the webhook URL
    Column("timezone", String(64), nullable=False, default="UTC"),
    Column("quiet_start", Integer),  # local hour quiet hours begin (inclusive)
    Column("quiet_end", Integer),  # local hour they end (exclusive)
    Column("status", String(16), nullable=False),  # active|ended
    Column("created_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime),
    UniqueConstraint("customer_id", "scope", "target", name="uq_subscriptions_who_what"),
    CheckConstraint("scope IN ('creator', 'drop', 'sku')", name="scope_known"),
    one_of("status", SubscriptionStatus),
    CheckConstraint(
        "(quiet_start IS NULL AND quiet_end IS NULL) OR "
        "(quiet_start BETWEEN 0 AND 23 AND quiet_end BETWEEN 0 AND 23)",
        name="quiet_hours_valid",
    ),
)
Index("ix_subscriptions_scope_target", subscriptions.c.scope, subscriptions.c.target)

notifications = Table(
    "notifications",
    metadata,
    # The delivery outbox: one row per (kind, drop, customer), inserted before anything is
    # sent; the dedupe key makes a second insert (another process, a restart) a no-op.
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("dedupe_key", String(200), nullable=False, unique=True),
    Column("customer_id", Id, ForeignKey("customers.id"), nullable=False),
    Column("drop_id", Id, ForeignKey("drops.id")),
    Column("subscription_id", Id, ForeignKey("subscriptions.id")),
    Column("kind", String(32), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("address", String(400), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("not_before", UTCDateTime, nullable=False),
    Column("lease_until", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    Column("error", String(300)),
    one_of("status", NotificationStatus),
)
Index("ix_notifications_due", notifications.c.status, notifications.c.not_before)

drop_templates = Table(
    "drop_templates",
    metadata,
    # Recurring capsule drops: a drop spec plus a cron schedule in the creator's zone.
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("spec", JSON, nullable=False),
    Column("cron", String(120), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("lead_seconds", Integer, nullable=False),  # create each drop this long before
    Column("active", Integer, nullable=False, default=1),
    Column("created_at", UTCDateTime, nullable=False),
)

template_runs = Table(
    "template_runs",
    metadata,
    Column("template_id", Id, ForeignKey("drop_templates.id"), primary_key=True),
    Column("occurrence", UTCDateTime, primary_key=True),  # one drop per occurrence, ever
    Column("drop_id", Id, ForeignKey("drops.id"), nullable=False),
)

leases = Table(
    "leases",
    metadata,
    # SQLite has no advisory locks; PostgreSQL uses pg_try_advisory_lock instead.
    Column("name", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("until", UTCDateTime, nullable=False),
)

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    # The creator's signed outbound webhooks: where to POST, which events, the HMAC secret.
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("url", String(2000), nullable=False),
    Column("events", JSON, nullable=False),  # names from the catalogue in services.webhooks
    Column("secret", String(100), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("disabled_at", UTCDateTime),
    Column("disabled_reason", String(300)),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    # One row per (event, endpoint), inserted in the transaction that made the event; the
    # body is stored as sent, so a retry signs and sends the very same bytes.
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "endpoint_id",
        Id,
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("event_id", String(120), nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("body", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("lease_until", UTCDateTime),
    Column("last_status", Integer),  # the HTTP status of the last answer, if any
    Column("last_error", String(300)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime),
    UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_event"),
    one_of("status", WebhookStatus),
)
Index(
    "ix_webhook_deliveries_due", webhook_deliveries.c.status, webhook_deliveries.c.next_attempt_at
)

clips = Table(
    "clips",
    metadata,
    # Clips of the stream kept with a drop (the shoppable replay): the platform's id, and
    # its URL once the platform serves it. One row per platform clip.
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("drop_id", Id, ForeignKey("drops.id"), nullable=False),
    Column("platform", String(16), nullable=False),
    Column("clip_id", String(120), nullable=False),
    Column("reason", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("url", Text),
    Column("thumbnail_url", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("ready_at", UTCDateTime),
    UniqueConstraint("platform", "clip_id", name="uq_clips_platform_clip"),
    one_of("reason", ClipReason),
    one_of("status", ClipStatus),
)
Index("ix_clips_drop", clips.c.drop_id)
