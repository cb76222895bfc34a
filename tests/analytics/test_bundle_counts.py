"""A bundle drop counts bundles everywhere: the stock event, the report and the dashboard
never mix bundles with the units inside them."""

from __future__ import annotations

from rich.console import Console

from commerce.domain.events import StockChanged
from dropcast.report import kpi_table
from tests.helpers import EventLog, bundle_spec, customers, live_drop


async def sold_one_bundle(commerce) -> int:
    drop_id = await live_drop(commerce, bundle_spec(chips=8, salsa=3))
    (buyer,) = await customers(commerce, 1)
    held = await commerce.claims.claim(drop_id, buyer)
    order = await commerce.orders.checkout(held.hold.id, buyer, "test")
    await commerce.orders.confirm_payment(order.id, "pi_1")
    return drop_id


async def test_stock_events_count_whole_bundles(commerce):
    events = EventLog(commerce)
    await sold_one_bundle(commerce)
    last = events.of(StockChanged)[-1]
    # 8 chips and 3 salsas make 3 bundles; one sold, two left.
    assert (last.available, last.sold, last.total) == (2, 1, 3)


async def test_the_report_says_bundles_for_a_bundle_drop(commerce):
    drop_id = await sold_one_bundle(commerce)
    kpis = await commerce.analytics.kpis(drop_id)
    console = Console(width=120, record=True)
    console.print(kpi_table(kpis))
    text = console.export_text()
    assert "bundles sold" in text and "1 of 3" in text and "units sold" not in text
