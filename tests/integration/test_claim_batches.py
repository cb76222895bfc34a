"""The batch statement decides a surge exactly as deciding each claim by its own statement
would: same outcome, same hold (item, pool, quantity), same stock, claim by claim.

Each example builds two identical drops with the same history (holds placed, a paid order,
someone queued), then feeds one batch (duplicate keys, a customer twice, over-limit
quantities, several targets) to one drop through ``ClaimService.claim`` and the same claims
one at a time to the other, with the batch statement replaced by the per-claim statements
of ``_decide_each`` (the reference)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commerce.core import Commerce
from commerce.domain.model import ClaimResult, HoldStatus, OrderStatus
from commerce.services.claims import ClaimService
from tests.helpers import bundle_spec, live_drop


def two_skus_two_pools(**drop: Any) -> dict[str, Any]:
    return {
        "drop": {"title": "Tote and mug collab", "format": "collab", **drop},
        "products": [
            {"sku": "TOTE", "title": "Tote bag", "price": "20.00"},
            {"sku": "MUG", "title": "Mug", "price": "9.00"},
        ],
        "items": [
            {"sku": "TOTE", "pools": {"ship": 3, "pickup:corner-deli": 2}},
            {"sku": "MUG", "pools": {"ship": 2}},
        ],
    }


Spec = Callable[..., dict[str, Any]]
Target = tuple[str | None, str]  # (sku, pool)

SPECS: dict[str, tuple[Spec, list[Target]]] = {
    "collab": (
        two_skus_two_pools,
        [("TOTE", "ship"), ("TOTE", "pickup:corner-deli"), ("MUG", "ship")],
    ),
    "bundle": (lambda **d: bundle_spec(3, 2, **d), [(None, "ship")]),
}


@dataclass(frozen=True)
class Claim:
    who: int
    target: int
    qty: int
    key: int | None  # None: a key of its own; else one of a few shared (duplicates)


claims_strategy = st.builds(
    Claim,
    who=st.integers(0, 5),
    target=st.integers(0, 2),
    qty=st.integers(1, 2),
    key=st.one_of(st.none(), st.integers(0, 3)),
)


async def reference(self: ClaimService, tx, shape, batch):
    return await self._decide_each(tx, shape, batch, queue_in_use=False)


def summary(result: ClaimResult) -> tuple[object, ...]:
    hold = result.hold
    held = None if hold is None else (hold.customer_id, hold.sku, hold.pool, hold.qty, hold.status)
    return (result.outcome, held, result.waitlist_position)


class Scenario:
    def __init__(self, commerce: Commerce, kind: str, people: list[int], serial: int) -> None:
        self.commerce, self.people, self.serial = commerce, people, serial
        self.spec, self.targets = SPECS[kind]

    async def drop_with_history(
        self, history: list[Claim], paid: int | None, queued: int | None
    ) -> int:
        drop_id = await live_drop(self.commerce, self.spec(per_customer_limit=2))
        for claim in history:
            await self.claim(drop_id, claim, f"history{claim.key}")
        if paid is not None:
            hold = await self.commerce.claims.holding(drop_id, self.people[paid])
            if hold is not None:
                orders = self.commerce.orders
                order = await orders.checkout(hold.id, self.people[paid], "test")
                result = await orders.confirm_payment(order.id, f"pi_{order.id}")
                assert result.order.status is OrderStatus.PAID
        if queued is not None:
            sku, pool = self.targets[0]
            await self.commerce.claims.join_waitlist(
                drop_id, self.people[queued], sku=sku, pool=pool
            )
        return drop_id

    async def claim(self, drop_id: int, claim: Claim, key: str | None) -> ClaimResult:
        sku, pool = self.targets[claim.target % len(self.targets)]
        return await self.commerce.claims.claim(
            drop_id, self.people[claim.who], sku=sku, pool=pool, qty=claim.qty, claim_key=key
        )

    def key_of(self, index: int, claim: Claim) -> str:
        return f"own{self.serial}-{index}" if claim.key is None else f"shared{claim.key}"

    async def stock(self, drop_id: int) -> list[tuple[object, ...]]:
        view = await self.commerce.drops.view(drop_id)
        return [(line.sku, line.pool, line.sold, line.held, line.available) for line in view.stock]


@pytest.mark.parametrize("kind", sorted(SPECS))
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    history=st.lists(claims_strategy, max_size=4),
    batch=st.lists(claims_strategy, min_size=1, max_size=12),
    paid=st.one_of(st.none(), st.integers(0, 5)),
    queued=st.one_of(st.none(), st.integers(0, 5)),
)
async def test_a_batch_decides_each_claim_as_one_by_one_would(
    commerce: Commerce, monkeypatch: pytest.MonkeyPatch, kind, history, batch, paid, queued
):
    people = [await commerce.customers.resolve(f"web:p{i}@example.com") for i in range(6)]
    scenario = Scenario(commerce, kind, people, serial=len(history) * 100 + len(batch))

    batched = await scenario.drop_with_history(history, paid, queued)
    results = await asyncio.gather(
        *(scenario.claim(batched, c, scenario.key_of(i, c)) for i, c in enumerate(batch))
    )

    with monkeypatch.context() as patch:
        patch.setattr(ClaimService, "_decide_runs", reference)
        one_by_one = await scenario.drop_with_history(history, paid, queued)
        expected = [
            await scenario.claim(one_by_one, c, scenario.key_of(i, c)) for i, c in enumerate(batch)
        ]

    assert [summary(r) for r in results] == [summary(r) for r in expected]
    assert await scenario.stock(batched) == await scenario.stock(one_by_one)


async def test_a_surge_is_one_batch_statement_per_target(commerce: Commerce):
    """Twelve buyers at once for three units, all in one batch: three holds, the rest told
    sold out, decided by one INSERT for the target (not one per claim)."""
    drop_id = await live_drop(commerce, bundle_spec(3, 5))
    buyers = [await commerce.customers.resolve(f"web:s{i}@example.com") for i in range(12)]
    statements = commerce.claims._sql
    bound: list[int] = []  # the rows each batch statement was given
    original = statements.batch_params

    def counting(rows: Any) -> Any:
        bound.append(len(rows))
        return original(rows)

    statements.batch_params = counting  # type: ignore[method-assign]
    await commerce.claims.validate(drop_id)  # the drop's shape is cached: no claim waits
    results = await asyncio.gather(*(commerce.claims.claim(drop_id, b) for b in buyers))
    assert [r.outcome.value for r in results] == ["held"] * 3 + ["sold_out"] * 9
    assert bound == [12]  # one statement, for the batch of 12
    held = [r.hold for r in results if r.hold is not None]
    assert [h.customer_id for h in held] == buyers[:3]
    assert all(h.status is HoldStatus.ACTIVE for h in held)
    view = await commerce.drops.view(drop_id)
    assert [(line.sku, line.held, line.available) for line in view.stock] == [
        ("CHIPS", 3, 0),
        ("SALSA", 3, 2),
    ]


async def test_batches_of_any_size_share_one_statement(commerce: Commerce):
    """The batch's rows are bound as a few parameters whatever its size, so one statement
    (compiled once, planned small) decides batches of 2 and of 12 alike."""
    drop_id = await live_drop(commerce, bundle_spec(30, 30))
    buyers = [await commerce.customers.resolve(f"web:any{i}@example.com") for i in range(14)]
    await commerce.claims.validate(drop_id)  # the shape is cached: each surge is one batch
    for surge in (buyers[:2], buyers[2:]):
        results = await asyncio.gather(*(commerce.claims.claim(drop_id, b) for b in surge))
        assert {r.outcome.value for r in results} == {"held"}
    assert len(commerce.claims._sql._batches) == 1
