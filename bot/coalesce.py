"""Claim outcomes for many people in a few public lines.

Twitch allows 20 chat messages per 30 s (100 as a moderator), so at the peak of a drop one
line per viewer cannot work. Outcomes of ``!buy`` are gathered instead and said together,
grouped by what happened, with everyone named::

    @ann @bo: you hold a unit — your pay link is in your Discord DMs · @cy @dee @eve: sold
    out — type !waitlist to be next if a unit frees up

A line never exceeds the platform's limit; names that do not fit wait for the next line.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

SEPARATOR = " · "
MIN_LINE = 20  # room for at least a name and a short outcome


@dataclass(frozen=True, slots=True)
class Mention:
    """One person's outcome: ``who`` as the platform mentions them (``@ann``), ``brief``
    what happened to them, without their name (``Message.brief``)."""

    who: str
    brief: str


class OutcomeLines:
    """Outcomes waiting to be said, grouped by ``brief`` in order of first arrival."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        if limit < MIN_LINE:
            raise ValueError("a chat line needs room for at least a name and an outcome")
        self.limit = limit
        self._clock = clock
        self._groups: OrderedDict[str, list[tuple[str, float]]] = OrderedDict()
        self._filled = asyncio.Event()  # set when the waiting outcomes fill a line

    def __len__(self) -> int:
        return sum(len(names) for names in self._groups.values())

    def add(self, mention: Mention) -> None:
        self._groups.setdefault(mention.brief, []).append((mention.who, self._clock()))
        if self.full():
            self._filled.set()

    async def ready(self, gather: float) -> None:
        """Return once a line is worth saying: at once when the waiting outcomes fill one,
        else when the oldest has waited ``gather`` seconds for others to join it."""
        oldest = self.oldest()
        if oldest is None or self.full():
            return
        self._filled.clear()
        with contextlib.suppress(TimeoutError):
            due = oldest + gather - self._clock()
            await asyncio.wait_for(self._filled.wait(), max(due, 0.0))

    def oldest(self) -> float | None:
        """When the outcome waiting longest arrived (``clock`` time); None: none waits."""
        return min((names[0][1] for names in self._groups.values()), default=None)

    def full(self) -> bool:
        """Would the waiting outcomes fill a whole line? (Then wait no longer for more.)"""
        length = sum(
            len(SEPARATOR) + sum(len(who) + 1 for who, _ in names) + len(brief) + 1
            for brief, names in self._groups.items()
        )
        return length >= self.limit

    def take_line(self, limit: int | None = None) -> tuple[str, list[Mention]] | None:
        """The next line (within ``limit`` characters, by default the platform's) and the
        outcomes it says, taken out of the waiting ones; None when nothing waits."""
        limit = self.limit if limit is None else limit
        parts: list[str] = []
        said: list[Mention] = []
        used = 0
        for brief in list(self._groups):
            names = [who for who, _ in self._groups[brief]]
            tail = f": {brief}"
            lead = len(SEPARATOR) if parts else 0
            taken: list[str] = []
            for who in names:
                if used + lead + len(" ".join([*taken, who])) + len(tail) > limit:
                    break
                taken.append(who)
            if not taken:
                if parts:
                    break
                # A brief too long for any line (it should not happen): cut it, lose nobody.
                taken = [names[0]]
                tail = tail[: limit - len(names[0]) - 1] + "…"
            parts.append(f"{' '.join(taken)}{tail}")
            used += lead + len(parts[-1])
            said.extend(Mention(who, brief) for who in taken)
            del self._groups[brief][: len(taken)]
            if self._groups[brief]:
                break  # the rest of this group opens the next line: outcomes keep their order
            del self._groups[brief]
        if not parts:
            return None
        return SEPARATOR.join(parts), said
