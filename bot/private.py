"""Which private messages carried which hold's pay link, so an outlet can edit them to say
"paid" (``Outlet.edit_private``). Kept in memory for the most recent holds only: a hold
lives a minute or so, and a restart merely leaves the old text standing."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

T = TypeVar("T")


class PrivateTrail(Generic[T]):
    def __init__(self, keep: int = 5_000) -> None:
        self._keep = keep
        self._by_hold: OrderedDict[int, list[T]] = OrderedDict()

    def add(self, hold_id: int, sent: T) -> None:
        self._by_hold.setdefault(hold_id, []).append(sent)
        self._by_hold.move_to_end(hold_id)
        while len(self._by_hold) > self._keep:
            self._by_hold.popitem(last=False)

    def pop(self, hold_id: int) -> list[T]:
        """The messages sent about ``hold_id``, forgotten here (each is edited once)."""
        return self._by_hold.pop(hold_id, [])
