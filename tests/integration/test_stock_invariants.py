"""Property: any interleaving of claim / pay / expire / cancel / restock / refund / close
keeps sold + held + available == total, nothing negative, and sold == the units of orders
whose holds converted (paid or reserved, or refunded after the drop closed: a closed drop's
refunded units stay sold)."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import func, select

from commerce.clock import ManualClock
from commerce.core import Commerce
from commerce.domain.errors import DomainError
from commerce.domain.model import ClaimOutcome, DropState
from commerce.dropfile import validate_spec
from commerce.storage.database import Database
from commerce.storage.tables import drop_stock, holds, orders
from tests.conftest import ENGINES, truncate_all
from tests.helpers import assert_consistent, bundle_spec, capsule_spec


def make_machine(url_factory):
    class DropMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.loop = asyncio.new_event_loop()
            self.clock = ManualClock()
            self.db = self.run(url_factory())
            self.commerce = Commerce.build(self.db, clock=self.clock)
            self.drop_id = self.run(self._setup())
            self.holds: list[tuple[int, int]] = []
            self.orders: list[int] = []

        def run(self, coro):
            return self.loop.run_until_complete(coro)

        async def _setup(self) -> int:
            self.customers = [
                await self.commerce.customers.resolve(f"web:p{i}@example.com") for i in range(6)
            ]
            spec = capsule_spec(3, hold_seconds=30, per_customer_limit=2)
            drop_id = await self.commerce.drops.create(validate_spec(spec))
            await self.commerce.drops.open(drop_id)
            return drop_id

        async def _try(self, coro):
            try:
                return await coro
            except DomainError:
                return None  # refused cleanly (e.g. hold no longer active): changes nothing

        @rule(who=st.integers(0, 5), qty=st.integers(1, 2))
        def claim(self, who, qty):
            result = self.run(
                self._try(self.commerce.claims.claim(self.drop_id, self.customers[who], qty=qty))
            )
            if result is not None and result.outcome is ClaimOutcome.HELD:
                self.holds.append((result.hold.id, self.customers[who]))

        @rule(who=st.integers(0, 5))
        def join_waitlist(self, who):
            self.run(
                self._try(self.commerce.claims.join_waitlist(self.drop_id, self.customers[who]))
            )

        @rule(pick=st.integers(0, 50), provider=st.sampled_from(["test", "manual"]))
        def pay(self, pick, provider):
            if not self.holds:
                return
            hold_id, customer = self.holds[pick % len(self.holds)]

            async def go():
                order = await self.commerce.orders.checkout(hold_id, customer, provider)
                if provider == "test":
                    await self.commerce.orders.confirm_payment(order.id, f"pi_{order.id}")
                else:
                    await self.commerce.orders.reserve(order.id)
                self.orders.append(order.id)

            self.run(self._try(go()))

        @rule(pick=st.integers(0, 50))
        def cancel(self, pick):
            if self.holds:
                hold_id, customer = self.holds[pick % len(self.holds)]
                self.run(self._try(self.commerce.claims.cancel_hold(hold_id, customer)))

        @rule(pick=st.integers(0, 50))
        def refund(self, pick):
            if self.orders:
                self.run(
                    self._try(self.commerce.orders.refund(self.orders[pick % len(self.orders)]))
                )

        @rule(seconds=st.integers(1, 45))
        def time_passes(self, seconds):
            self.clock.advance(seconds)
            self.run(self.commerce.claims.expire_due())

        @rule(units=st.integers(1, 3))
        def restock(self, units):
            self.run(self._try(self.commerce.drops.restock(self.drop_id, "CHIPS-SPICY", units)))

        @rule()
        def close(self):
            self.run(self.commerce.drops.close(self.drop_id))

        @invariant()
        def stock_adds_up(self):
            view = self.run(self.commerce.drops.view(self.drop_id))
            assert_consistent(view)

            async def sold_in_orders():
                async with self.db.read() as conn:
                    units = await conn.execute(
                        select(func.coalesce(func.sum(orders.c.qty), 0))
                        .join(holds, holds.c.id == orders.c.hold_id)
                        .where(holds.c.status == "converted")
                    )
                    sold = await conn.execute(select(func.sum(drop_stock.c.sold)))
                    return units.scalar(), sold.scalar()

            in_orders, sold = self.run(sold_in_orders())
            assert in_orders == sold

            async def held_by_rows():
                # Recount from the hold rows themselves, ignoring the held counter.
                now = self.clock.now()
                async with self.db.read() as conn:
                    rows = await conn.execute(
                        select(func.coalesce(func.sum(holds.c.qty), 0)).where(
                            holds.c.status == "active", holds.c.expires_at > now
                        )
                    )
                    return rows.scalar()

            assert view.stock[0].held == self.run(held_by_rows())
            if view.drop.state is DropState.CLOSED:
                assert view.waiting == 0

        def teardown(self):
            self.run(self.db.dispose())
            self.loop.close()

    return DropMachine


@pytest.mark.parametrize("engine", ENGINES)
def test_any_interleaving_keeps_stock_consistent(engine, request, sqlite_template):
    workdir = Path(tempfile.mkdtemp())
    made = itertools.count()

    async def fresh_database() -> Database:
        if engine == "sqlite":
            path = workdir / f"{next(made)}.db"
            shutil.copyfile(sqlite_template, path)
            return Database(f"sqlite+aiosqlite:///{path}")
        database = Database(request.getfixturevalue("pg_url"))
        await truncate_all(database)
        return database

    try:
        run_state_machine_as_test(
            make_machine(fresh_database),
            settings=settings(
                max_examples=30,
                stateful_step_count=25,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def test_bundle_stock_adds_up_after_mixed_operations(commerce, clock):
    drop_id = await commerce.drops.create(validate_spec(bundle_spec(chips=3, salsa=2)))
    await commerce.drops.open(drop_id)
    buyers = [await commerce.customers.resolve(f"web:b{i}@example.com") for i in range(4)]
    results = [await commerce.claims.claim(drop_id, c) for c in buyers]
    held = [r for r in results if r.outcome is ClaimOutcome.HELD]
    order = await commerce.orders.checkout(held[0].hold.id, buyers[0], "test")
    await commerce.orders.confirm_payment(order.id, "pi_b")
    clock.advance(120)
    await commerce.claims.expire_due()
    await commerce.drops.restock(drop_id, "SALSA", 1)
    view = await commerce.drops.view(drop_id)
    assert_consistent(view)
    assert view.available_units() == 2
