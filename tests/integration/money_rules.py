"""Shared by the money-rule tests: drops with several stock lines, and the hold, order and
waitlist rows as the database has them (the truth a buyer's money depends on)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from commerce.core import Commerce
from commerce.domain.model import ClaimOutcome, DropView, StockLine
from tests.helpers import customers

HELD = ClaimOutcome.HELD
SPICY, MILD = "CHIPS-SPICY", "CHIPS-MILD"
PICKUP = "pickup:corner-deli"


def flavours_spec(spicy: int, mild: int, **drop: Any) -> dict[str, Any]:
    """A capsule drop with two flavours (two SKUs at different prices) in one pool."""
    return {
        "drop": {"title": "Two flavours", "format": "capsule", **drop},
        "products": [
            {"sku": SPICY, "title": "Spicy chips, 6-pack", "price": "12.00", "currency": "USD"},
            {"sku": MILD, "title": "Mild chips, 6-pack", "price": "9.50", "currency": "USD"},
        ],
        "items": [{"sku": SPICY, "pools": {"ship": spicy}}, {"sku": MILD, "pools": {"ship": mild}}],
    }


def double_chips_bundle_spec(chips: int, salsa: int, **drop: Any) -> dict[str, Any]:
    """A bundle of two bags of chips and one salsa (per_bundle = 2 for the chips)."""
    return {
        "drop": {"title": "Two chips + salsa", "format": "bundle", **drop},
        "products": [
            {"sku": "CHIPS", "title": "Chips", "price": "5.00"},
            {"sku": "SALSA", "title": "Salsa", "price": "4.50"},
        ],
        "items": [
            {"sku": "CHIPS", "pools": {"ship": chips}, "per_bundle": 2},
            {"sku": "SALSA", "pools": {"ship": salsa}},
        ],
    }


def pickup_only_spec(units: int, **drop: Any) -> dict[str, Any]:
    return {
        "drop": {"title": "Pickup only", "format": "collab", **drop},
        "products": [{"sku": "TOTE", "title": "Tote bag", "price": "20.00"}],
        "items": [{"sku": "TOTE", "pools": {PICKUP: units}}],
    }


def line(view: DropView, sku: str, pool: str = "ship") -> StockLine:
    (found,) = [s for s in view.stock if s.sku == sku and s.pool == pool]
    return found


def counts(stock: StockLine) -> tuple[int, int, int]:
    """(sold, held, available) of one stock line."""
    return stock.sold, stock.held, stock.available


async def people(commerce: Commerce, *names: str) -> list[int]:
    """One customer per name, so a test reads as its story."""
    found = []
    for name in names:
        (customer,) = await customers(commerce, 1, prefix=f"web:{name}")
        found.append(customer)
    return found


async def rows(commerce: Commerce, table: Any, *where: Any) -> list[Any]:
    async with commerce.db.read() as conn:
        return list(await conn.execute(select(table).where(*where).order_by(table.c.id)))


async def row(commerce: Commerce, table: Any, row_id: int) -> Any:
    (found,) = await rows(commerce, table, table.c.id == row_id)
    return found


async def count(commerce: Commerce, table: Any, *where: Any) -> int:
    async with commerce.db.read() as conn:
        query = select(func.count()).select_from(table).where(*where)
        return int((await conn.execute(query)).scalar_one())


async def statuses(commerce: Commerce, table: Any, drop_id: int) -> dict[int, str]:
    """customer id -> status of their hold (the latest) or waitlist entry in a drop."""
    found = await rows(commerce, table, table.c.drop_id == drop_id)
    return {r.customer_id: r.status for r in found}
