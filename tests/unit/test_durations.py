"""One duration grammar for drop files, the CLI and reports: every form it accepts, and one
error naming the bad value for everything else."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commerce.domain.errors import InvalidInput
from commerce.durations import LONGEST, UNIT_SECONDS, is_duration, parse_duration, parse_period


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+90s", timedelta(seconds=90)),
        ("10m", timedelta(minutes=10)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1w", timedelta(weeks=1)),
        ("+1.5h", timedelta(minutes=90)),  # drop files took fractions before: still do
        (" 90m ", timedelta(minutes=90)),
        ("+ 10 m", timedelta(minutes=10)),
        ("0s", timedelta(0)),
    ],
)
def test_each_form_parses(text, expected):
    assert parse_duration(text, "t") == expected


@given(
    count=st.integers(min_value=0, max_value=99_999),
    unit=st.sampled_from(sorted(UNIT_SECONDS)),
    plus=st.booleans(),
    space=st.sampled_from(["", " "]),
)
def test_any_count_of_any_unit_with_or_without_plus(count, unit, plus, space):
    text = f"{'+' if plus else ''}{space}{count}{space}{unit}"
    assert is_duration(text)
    assert parse_duration(text, "t") == timedelta(seconds=count * UNIT_SECONDS[unit])


@pytest.mark.parametrize("text", ["", "30", "d", "30x", "-3d", "30 days", "10M", "1h30m", "++1h"])
def test_anything_else_is_refused_naming_the_field_and_the_value(text):
    assert not is_duration(text)
    with pytest.raises(InvalidInput) as caught:
        parse_duration(text, "--lead")
    assert caught.value.field == "--lead"
    assert str(caught.value) == f"--lead: {text!r} is not a period like +90s, 10m, 2h, 1d or 1w"


def test_periods_count_whole_units_longer_than_zero():
    assert parse_period("2w") == timedelta(weeks=2)
    with pytest.raises(InvalidInput, match=r"'1\.5d' is not a whole number of days"):
        parse_period("1.5d")
    with pytest.raises(InvalidInput, match="'0d' is no time at all"):
        parse_period("0d")


def test_a_duration_too_long_for_a_date_is_refused():
    assert parse_duration("99999w", "t") == LONGEST
    with pytest.raises(InvalidInput, match="'100000w' is longer than 99999 weeks"):
        parse_duration("100000w", "t")
    with pytest.raises(InvalidInput, match="longer than"):
        parse_duration("999999999999d", "t")
