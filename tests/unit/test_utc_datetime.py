"""UTCDateTime on SQLite writes the text SQLAlchemy's DATETIME writes and reads it back
exactly; naive datetimes are refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from commerce.storage.tables import UTCDateTime

SQLITE = sqlite.dialect()
OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
WHEN = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=OFFSETS
)


@given(WHEN)
def test_sqlite_text_is_sqlalchemys_datetime_text_and_reads_back(when: datetime) -> None:
    kind = UTCDateTime()
    text = kind.process_bind_param(when, SQLITE)
    their_process = sqlite.DATETIME().bind_processor(SQLITE)
    assert their_process is not None
    assert text == their_process(when.astimezone(UTC).replace(tzinfo=None))
    back = kind.process_result_value(text, SQLITE)
    assert back == when and back is not None and back.tzinfo is UTC


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        UTCDateTime().process_bind_param(datetime(2026, 1, 1), SQLITE)
