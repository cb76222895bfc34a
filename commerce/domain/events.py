"""Domain events, in the past tense. They reach subscribers only after the change commits.

``DURABLE`` events are also written to the outbox inside the same transaction, so an
announcement such as "sold out" survives a crash between commit and publish.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class Event:
    drop_id: int
    durable: ClassVar[bool] = False

    @property
    def name(self) -> str:
        return type(self).__name__

    def to_payload(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in data.items()}


@dataclass(frozen=True, slots=True)
class DropScheduled(Event):
    opens_at: datetime
    durable: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class DropOpened(Event):
    at: datetime
    durable: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class DropClosed(Event):
    reason: str
    at: datetime
    durable: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class HoldPlaced(Event):
    hold_id: int
    customer_id: int
    expires_at: datetime
    source: str


@dataclass(frozen=True, slots=True)
class HoldExpired(Event):
    hold_id: int
    customer_id: int


@dataclass(frozen=True, slots=True)
class HoldCancelled(Event):
    hold_id: int
    customer_id: int


@dataclass(frozen=True, slots=True)
class OrderPaid(Event):
    order_id: int
    hold_id: int
    customer_id: int
    amount_minor: int
    currency: str
    durable: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class OrderRefunded(Event):
    order_id: int
    customer_id: int
    reason: str
    durable: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class OrderFulfilled(Event):
    """The goods left: shipped (``carrier`` and ``tracking`` set) or picked up."""

    order_id: int
    customer_id: int
    fulfilment: str
    carrier: str | None
    tracking: str | None
    durable: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class StockChanged(Event):
    """Live counts after a change; ``available`` is claimable units (bundles: whole bundles)."""

    available: int
    held: int
    sold: int
    total: int


@dataclass(frozen=True, slots=True)
class SoldOut(Event):
    durable: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class Restocked(Event):
    sku: str
    pool: str
    added: int
    durable: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class PriceChanged(Event):
    """The creator changed what a claim costs (``sku`` None: a bundle's price)."""

    sku: str | None
    price_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class WaitlistJoined(Event):
    customer_id: int
    position: int


@dataclass(frozen=True, slots=True)
class WaitlistOffered(Event):
    """A freed unit was held for the next waiting customer; they get a personal link."""

    customer_id: int
    hold_id: int
    expires_at: datetime
    durable: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class ReplayPosted(Event):
    """The creator attached a replay or clip; subscribers and non-buyers hear of it."""

    url: str
    durable: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class ClipReady(Event):
    """A clip of the stream kept with the drop is served now (``reason``: a ClipReason)."""

    reason: str
    url: str


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        DropScheduled,
        DropOpened,
        DropClosed,
        HoldPlaced,
        HoldExpired,
        HoldCancelled,
        OrderPaid,
        OrderRefunded,
        OrderFulfilled,
        StockChanged,
        SoldOut,
        Restocked,
        PriceChanged,
        WaitlistJoined,
        WaitlistOffered,
        ReplayPosted,
        ClipReady,
    )
}


def event_from_payload(topic: str, payload: dict[str, Any]) -> Event:
    """Rebuild an event read back from the outbox."""
    cls = EVENT_TYPES[topic]
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        value = payload[f.name]
        if f.type in ("datetime", datetime) and isinstance(value, str):
            value = datetime.fromisoformat(value)
        kwargs[f.name] = value
    return cls(**kwargs)
