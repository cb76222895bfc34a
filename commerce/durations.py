"""The one duration grammar, for drop files (``opens_at = "+10m"``), the CLI (``--lead 24h``)
and reports (``--since 30d``): an optional ``+``, a number, a unit.

Units: ``s`` seconds, ``m`` minutes, ``h`` hours, ``d`` days, ``w`` weeks; spaces around the
parts are allowed (``+ 90 s``), a decimal fraction too (``+1.5h``) unless the caller counts
whole units. Every error names the bad value and shows the forms that work.
"""

from __future__ import annotations

import re
from datetime import timedelta

from commerce.domain.errors import InvalidInput

FORMS = "+90s, 10m, 2h, 1d or 1w"
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
UNIT_NAMES = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# Far beyond any use, and still a valid date either side of now (datetime stops at year 1
# and 9999): ``now ± LONGEST`` cannot overflow.
LONGEST = timedelta(weeks=99_999)
_DURATION = re.compile(r"\s*\+?\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*")


def is_duration(text: str) -> bool:
    """True when ``text`` is written in the grammar (whatever its size)."""
    return _DURATION.fullmatch(text) is not None


def parse_duration(
    text: str, field: str, *, positive: bool = False, whole: bool = False
) -> timedelta:
    """``+90s``, ``10m``, ``2h``, ``1d``, ``1w`` as a timedelta; InvalidInput naming ``field``
    and the bad value otherwise. ``positive`` refuses zero; ``whole`` refuses fractions."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise InvalidInput(field, f"{text!r} is not a period like {FORMS}")
    count, unit = match[1], match[2]
    if whole and "." in count:
        raise InvalidInput(field, f"{text!r} is not a whole number of {UNIT_NAMES[unit]}")
    seconds = float(count) * UNIT_SECONDS[unit]
    if positive and seconds == 0:
        raise InvalidInput(field, f"{text!r} is no time at all: give a period like {FORMS}")
    if seconds > LONGEST.total_seconds():
        raise InvalidInput(field, f"{text!r} is longer than {LONGEST.days // 7} weeks")
    return timedelta(seconds=seconds)


def parse_period(text: str, field: str = "since") -> timedelta:
    """A look-back window such as a report's ``--since``: whole units, longer than zero."""
    return parse_duration(text, field, positive=True, whole=True)
