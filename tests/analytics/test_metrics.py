"""The metric registry on its own: how each format reads, which metrics a drop may aim for,
labels in the drop's unit, and that a name is registered once."""

from __future__ import annotations

import pytest

from commerce.analytics.metrics import METRICS, Format, format_value, objective_names, register


@pytest.mark.parametrize(
    ("value", "fmt", "text"),
    [
        (1234.4, Format.COUNT, "1,234"),
        (33.333, Format.PERCENT, "33.3 %"),
        (9.54, Format.SECONDS, "9.5 s"),
        (125, Format.SECONDS, "2:05 min"),
        (1234.56, Format.NUMBER, "1,234.6"),
        (None, Format.PERCENT, "—"),
        (True, Format.COUNT, "—"),  # a flag is no number
    ],
)
def test_each_format_reads_as_people_read_it(value, fmt, text):
    assert format_value(value, fmt) == text


def test_the_objectives_a_drop_may_aim_for():
    assert objective_names() == [
        "units_first_10m",
        "sell_through_pct",
        "seconds_to_checkout_p50",
        "units_per_1k_viewers",
    ]
    assert not METRICS["seconds_to_checkout_p50"].higher_is_better


def test_labels_count_bundles_for_a_bundle_drop():
    assert METRICS["units_sold"].label_for("bundle") == "Bundles sold"
    assert METRICS["units_sold"].label_for("unit") == "Units sold"
    assert METRICS["sell_through_pct"].label_for("bundle") == "Sell-through"


def test_a_name_is_registered_once():
    with pytest.raises(ValueError, match="registered twice"):
        register(METRICS["units_sold"])
