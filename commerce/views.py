"""Plain-data views of domain objects, shared by the CLI (--json) and the JSON API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from commerce.domain.model import CloseReason, DropState, DropView


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


class Phase(StrEnum):
    """What a viewer can do with a drop right now."""

    NOT_SCHEDULED = "not_scheduled"
    SCHEDULED = "scheduled"
    LIVE = "live"
    SOLD_OUT = "sold_out"  # live, nothing claimable now; the waitlist is open
    CLOSED = "closed"


class Action(StrEnum):
    REMIND = "remind"
    CLAIM = "claim"
    WAITLIST = "waitlist"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class DropStatus:
    """The one headline and action every screen shows for a drop: the drop page, the
    overlay, the studio and the bots read it from here, so they never disagree."""

    phase: Phase
    headline: str
    detail: str
    action: Action
    available: int  # claim units: whole bundles for a bundle drop
    total: int
    unit: str  # "unit" or "bundle"

    def as_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase.value,
            "headline": self.headline,
            "detail": self.detail,
            "action": self.action.value,
            "available": self.available,
            "total": self.total,
            "unit": self.unit,
        }


def left_text(available: int, total: int, unit: str) -> str:
    """ "3 of 10 left", "1 of 4 bundles left" (the unit word only for bundles)."""
    noun = "" if unit == "unit" else f" {unit}s" if total != 1 else f" {unit}"
    return f"{available} of {total}{noun} left"


def drop_status(view: DropView) -> DropStatus:
    """Phase, headline, detail and action of a drop as of its view."""
    drop = view.drop
    counts = view.counts()
    unit = view.unit_word

    def status(phase: Phase, headline: str, detail: str, action: Action) -> DropStatus:
        return DropStatus(phase, headline, detail, action, counts.available, counts.total, unit)

    if drop.state is DropState.DRAFT:
        return status(
            Phase.NOT_SCHEDULED,
            "Not scheduled yet",
            "The creator has not set a start time.",
            Action.NONE,
        )
    if drop.state is DropState.SCHEDULED:
        return status(
            Phase.SCHEDULED,
            "Starting soon",
            f"{counts.total} {unit}s" if counts.total != 1 else f"1 {unit}",
            Action.REMIND,
        )
    if drop.state is DropState.LIVE:
        if counts.available > 0:
            return status(
                Phase.LIVE,
                "Live now",
                left_text(counts.available, counts.total, unit),
                Action.CLAIM,
            )
        return status(
            Phase.SOLD_OUT,
            "Sold out",
            f"Every {unit} is taken. If a hold lapses, the waitlist gets it first, in order.",
            Action.WAITLIST,
        )
    sold_out = drop.close_reason is CloseReason.SOLD_OUT
    return status(
        Phase.CLOSED,
        "Sold out · closed" if sold_out else "Closed",
        f"This drop has ended: {counts.sold} of {counts.total} sold.",
        Action.NONE,
    )


def drop_state(view: DropView) -> dict[str, Any]:
    """State of a drop with stock per item and pool: total, available, held, sold."""
    drop = view.drop
    counts = view.counts()
    items: dict[str, dict[str, Any]] = {}
    for line in view.stock:
        product = view.products.get(line.sku)
        item = items.setdefault(
            line.sku,
            {
                "sku": line.sku,
                "title": product.title if product else line.sku,
                "price": product.price.format() if product else None,
                "price_minor": product.price.amount_minor if product else None,
                "currency": product.price.currency if product else None,
                "per_bundle": line.per_unit,
                "pools": [],
            },
        )
        item["pools"].append(
            {
                "pool": line.pool,
                "total": line.total,
                "available": max(line.available, 0),
                "held": line.held,
                "sold": line.sold,
            }
        )
    return {
        "id": drop.id,
        "title": drop.title,
        "format": drop.format.value,
        "state": drop.state.value,
        "opens_at": iso(drop.opens_at),
        "closes_at": iso(drop.closes_at),
        "opened_at": iso(drop.opened_at),
        "closed_at": iso(drop.closed_at),
        "close_reason": drop.close_reason.value if drop.close_reason else None,
        "hold_seconds": drop.hold_seconds,
        "per_customer_limit": drop.per_customer_limit,
        "demo_seconds": drop.demo_seconds,
        "price": view.unit_price.format() if view.products else None,
        # The same price as data, for a reader that writes it in its own locale (the widget).
        "price_minor": view.unit_price.amount_minor if view.products else None,
        "currency": view.unit_price.currency if view.products else None,
        "available": counts.available,
        "total": counts.total,
        "held": counts.held,
        "sold": counts.sold,
        "unit": view.unit_word,
        "status": drop_status(view).as_dict(),
        "waiting": view.waiting,
        "objective": drop.objective,
        "replay_url": drop.replay_url,
        "items": list(items.values()),
        "server_time": iso(view.as_of),
    }
