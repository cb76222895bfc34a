"""Events cross processes on PostgreSQL: a sale in one process reaches another's bus."""

from __future__ import annotations

import pytest

from commerce.clock import ManualClock
from commerce.core import Commerce
from commerce.domain.events import StockChanged
from commerce.storage.database import Database
from commerce.storage.pg_events import PgEventChannel
from tests.helpers import EventLog, capsule_spec, eventually, live_drop


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_sale_in_one_process_reaches_the_other_once(database_url):
    db_a, db_b = Database(database_url), Database(database_url)
    a, b = Commerce.build(db_a, ManualClock()), Commerce.build(db_b, ManualClock())
    channels = [PgEventChannel(db_a, a.bus), PgEventChannel(db_b, b.bus)]
    a.uow.stage, b.uow.stage = channels
    for channel in channels:
        await channel.start()
    try:
        seen_by_a = EventLog(a)
        drop_id = await live_drop(b, capsule_spec(3))
        buyer = await b.customers.resolve("web:x@example.com")
        await b.claims.claim(drop_id, buyer)
        (tick,) = await eventually(lambda: seen_by_a.of(StockChanged))
        assert (tick.drop_id, tick.available, tick.held) == (drop_id, 2, 1)
        # The process that made the change hears it once (locally), not twice. A later sale
        # in A is the marker: notifications arrive in commit order, so an echo of B's own
        # sale would reach B before A's does.
        seen_by_b = EventLog(b)
        await b.claims.claim(drop_id, await b.customers.resolve("web:y@example.com"))
        await a.claims.claim(drop_id, await a.customers.resolve("web:z@example.com"))
        await eventually(lambda: any(e.available == 0 for e in seen_by_b.of(StockChanged)))
        assert [e.available for e in seen_by_b.of(StockChanged)] == [1, 0]
    finally:
        for channel in channels:
            await channel.stop()
        await db_a.dispose()
        await db_b.dispose()
