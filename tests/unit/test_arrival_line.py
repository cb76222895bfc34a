"""The claim line's bookkeeping: the oldest place still on its way, whatever order places
leave in, and memory that does not grow with places that have left."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commerce.services.arrivals import Arrival, ArrivalLine

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@given(st.lists(st.one_of(st.just(None), st.integers(min_value=0, max_value=200)), max_size=400))
def test_the_first_on_its_way_is_the_oldest_place_not_yet_left(steps):
    """``None`` takes a place; a number leaves the place at that index (mod the count)."""
    line = ArrivalLine(patience=3600)
    taken: list[Arrival] = []
    left: set[int] = set()
    for step in steps:
        if step is None or not taken:
            taken.append(line.arrive(NOW))
        else:
            arrival = taken[step % len(taken)]
            arrival.leave()
            left.add(arrival.seq)
        waiting = [a.seq for a in taken if a.seq not in left]
        first = line.first_on_the_way()
        assert (first[0] if first else None) == (min(waiting) if waiting else None)
        assert line.on_the_way == len(waiting)
        assert len(line._oldest) <= 2 * len(waiting) + 65  # bounded memory


def test_a_flood_that_never_reaches_a_queue_leaves_nothing_behind():
    line = ArrivalLine()
    for _ in range(10_000):
        with line.arrive(NOW):
            pass
    assert line.on_the_way == 0
    assert len(line._oldest) == 0
    assert line.first_on_the_way() is None


def test_patience_must_not_be_negative():
    with pytest.raises(ValueError, match="patience"):
        ArrivalLine(patience=-1)
