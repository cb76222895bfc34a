"""Plain-data views of domain objects, shared by the CLI (--json) and the JSON API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from commerce.domain.model import DropView


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def drop_state(view: DropView) -> dict[str, Any]:
    """State of a drop with stock per item and pool: total, available, held, sold."""
    drop = view.drop
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
        "available": view.available_units(),
        "total": sum(line.total for line in view.stock),
        "held": sum(line.held for line in view.stock),
        "sold": sum(line.sold for line in view.stock),
        "waiting": view.waiting,
        "objective": drop.objective,
        "replay_url": drop.replay_url,
        "items": list(items.values()),
        "server_time": iso(view.as_of),
    }
