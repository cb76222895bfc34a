"""``record``: domain records from rows, generated from the dataclass fields."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from commerce.domain.model import CloseReason, Drop, DropFormat, DropState, Money
from commerce.storage.rows import record


@dataclass(frozen=True)
class Sample:
    id: int
    state: DropState
    reason: CloseReason | None
    price: Money | None = None
    note: str = "kept"


def test_enums_are_made_from_their_values_and_none_stays_none() -> None:
    found = record(Sample, {"id": 1, "state": "live", "reason": None, "extra": "ignored"})
    assert found == Sample(1, DropState.LIVE, None)
    assert record(Sample, {"id": 2, "state": "closed", "reason": "sold_out"}).reason is (
        CloseReason.SOLD_OUT
    )


def test_computed_fields_win_and_missing_columns_keep_their_defaults() -> None:
    price = Money(1200, "USD")
    found = record(Sample, {"id": 3, "state": "draft", "reason": None, "price": 5}, price=price)
    assert (found.price, found.note) == (price, "kept")


def test_a_value_no_enum_member_has_is_refused() -> None:
    with pytest.raises(ValueError):
        record(Sample, {"id": 4, "state": "melted", "reason": None})


def test_a_drop_row_becomes_a_drop() -> None:
    now = datetime(2026, 11, 29, tzinfo=UTC)
    columns = {
        "id": 7, "title": "Chips", "format": "capsule", "state": "scheduled", "opens_at": now,
        "closes_at": None, "demo_seconds": None, "hold_seconds": 300, "per_customer_limit": 1,
        "created_at": now, "opened_at": None, "closed_at": None, "close_reason": None,
        "currency": "USD", "objective": None, "replay_url": None, "shipping": {"US": 500},
    }  # fmt: skip
    drop = record(Drop, columns)
    assert (drop.format, drop.state, drop.shipping) == (
        DropFormat.CAPSULE,
        DropState.SCHEDULED,
        {"US": 500},
    )
