"""The metric registry: every headline number of a drop, declared once.

A ``Metric`` says what it is called (its name is the JSON key and the drop file's word),
how it reads (label, format), which way is better, whether a drop file may aim for it
(``drop.objective = {metric, target}``), how its value comes out of a drop's KPIs, and, for
the dashboard's live verdict, when it is final and where it ends at the current pace.
The drop file, the KPI JSON, the dashboard and its verdict, and the report read from here.

Adding a KPI is one ``register(Metric(...))`` below, with its value function (and a field
in ``results.DropKpis`` plus its computation in ``kpis.compute`` when the value is new).

Pure: no I/O and nothing from the service layer, so the drop file can validate against it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from commerce.analytics.results import DropKpis, ObjectiveResult, to_json

FIRST_WINDOW_S = 600  # "units in the first 10 minutes"
EMPTY = "—"  # what a metric without a value shows


class Format(StrEnum):
    """How a value reads; the value is the JSON's ``format`` (and the page's ``data-fmt``)."""

    COUNT = "int"  # 1,234
    PERCENT = "pct"  # 12.5 %
    SECONDS = "s"  # 9.5 s, or 2:05 min from 100 s on
    NUMBER = "num"  # 1,234.5


def format_value(value: object, fmt: Format) -> str:
    """A value as people read it; EMPTY for None (and for anything that is not a number)."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return EMPTY
    if fmt is Format.COUNT:
        return f"{round(value):,}"
    if fmt is Format.PERCENT:
        return f"{value:.1f} %"
    if fmt is Format.SECONDS:
        if value < 100:
            return f"{value:.1f} s"
        seconds = round(value)
        return f"{seconds // 60}:{seconds % 60:02d} min"
    return f"{value:,.1f}"


@dataclass(frozen=True, slots=True)
class Pace:
    """A live drop so far, for projecting a metric to its end."""

    actual: float
    elapsed_s: float  # since opening, at least 1
    planned_s: float | None  # opening to the planned close; None without one


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    label: str  # "Units …" reads "Bundles …" for a bundle drop (``label_for``)
    format: Format
    value: Callable[[DropKpis], float | None]
    higher_is_better: bool = True
    objective: bool = False  # a drop file may name it as its objective
    # Counted over the first ``window_s`` after opening: final once that window is over.
    window_s: float | None = None
    # A running count that cannot fall back: once met, met for good (not just "on track").
    final_once_met: bool = False
    # Where it ends if the pace so far holds (higher-is-better metrics only); None: unknown.
    projection: Callable[[Pace], float | None] | None = None

    def label_for(self, unit: str) -> str:
        """The label in what the drop counts: "Bundles sold" for a bundle drop."""
        return self.label if unit == "unit" else self.label.replace("Units", f"{unit.title()}s")


METRICS: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    """Add a metric (its name must be new); the order of registration is the order shown."""
    if metric.name in METRICS:
        raise ValueError(f"metric {metric.name!r} is registered twice")
    METRICS[metric.name] = metric
    return metric


def objective_names() -> list[str]:
    """The metrics a drop file may aim for, in registry order."""
    return [m.name for m in METRICS.values() if m.objective]


def metric_values(kpis: DropKpis) -> dict[str, float | None]:
    """Every registered metric's value for one drop."""
    return {m.name: m.value(kpis) for m in METRICS.values()}


def metrics_json(kpis: DropKpis) -> dict[str, dict[str, Any]]:
    """The ``metrics`` of the KPI JSON: per metric its value, and how to read and show it."""
    data: dict[str, dict[str, Any]] = {}
    for metric in METRICS.values():
        value = metric.value(kpis)
        data[metric.name] = {
            "label": metric.label_for(kpis.drop.unit),
            "format": metric.format.value,
            "value": to_json(value),  # rounded as every KPI is
            "text": format_value(value, metric.format),
            "higher_is_better": metric.higher_is_better,
            "objective": metric.objective,
        }
    return data


def kpi_json(kpis: DropKpis) -> dict[str, Any]:
    """The KPI JSON of the API and ``report --json``: every field of the KPIs (``to_json``)
    and, under ``metrics``, each registered metric."""
    data: dict[str, Any] = to_json(kpis)
    data["metrics"] = metrics_json(kpis)
    return data


def shown(kpis: DropKpis) -> Iterator[tuple[Metric, str, str]]:
    """Each metric with its label (in the drop's unit) and its value as text."""
    for metric in METRICS.values():
        yield (
            metric,
            metric.label_for(kpis.drop.unit),
            format_value(metric.value(kpis), metric.format),
        )


def goal_text(objective: ObjectiveResult) -> str:
    """The objective in words: ``Sell-through ≥ 80.0 %``."""
    label, fmt = _label_and_format(objective.metric)
    sign = "≥" if objective.higher_is_better else "≤"
    return f"{label} {sign} {format_value(objective.target, fmt)}"


def actual_text(objective: ObjectiveResult) -> str:
    """What the drop reached on its objective's metric, formatted as that metric is."""
    return format_value(objective.actual, _label_and_format(objective.metric)[1])


def _label_and_format(name: str) -> tuple[str, Format]:
    metric = METRICS.get(name)
    return (metric.label, metric.format) if metric else (name, Format.NUMBER)


def evaluate_objective(
    objective: Any, values: Mapping[str, float | None]
) -> ObjectiveResult | None:
    """The drop's objective (as stored: ``{metric, target}``) against the metric ``values``;
    None when the drop names none, or nothing a drop can aim for."""
    if not isinstance(objective, dict):
        return None
    metric = METRICS.get(str(objective.get("metric")))
    if metric is None or not metric.objective or metric.name not in values:
        return None
    try:
        target = float(objective["target"])
    except (KeyError, TypeError, ValueError):
        return None
    actual = values[metric.name]
    higher = metric.higher_is_better
    met = None if actual is None else (actual >= target if higher else actual <= target)
    return ObjectiveResult(metric.name, target, actual, met, higher)


# -- the metrics -------------------------------------------------------------------------------


def _first_window_at_pace(pace: Pace) -> float:
    return pace.actual * FIRST_WINDOW_S / pace.elapsed_s


def _sell_through_at_close(pace: Pace) -> float | None:
    if pace.planned_s is None or pace.planned_s <= pace.elapsed_s:
        return None
    return min(100.0, pace.actual * pace.planned_s / pace.elapsed_s)


def _opened(kpis: DropKpis, value: float) -> float | None:
    return value if kpis.drop.opened_at else None


register(Metric("units_sold", "Units sold", Format.COUNT, lambda k: k.units_sold))
register(
    Metric(
        "units_first_10m",
        "Units sold in the first 10 minutes",
        Format.COUNT,
        lambda k: _opened(k, float(k.units_first_10m)),
        objective=True,
        window_s=FIRST_WINDOW_S,
        final_once_met=True,
        projection=_first_window_at_pace,
    )
)
register(
    Metric(
        "sell_through_pct",
        "Sell-through",
        Format.PERCENT,
        lambda k: k.sell_through_pct,
        objective=True,
        projection=_sell_through_at_close,
    )
)
register(
    Metric(
        "seconds_to_checkout_p50",
        "Checkout p50 (claim → paid)",
        Format.SECONDS,
        lambda k: k.seconds_to_checkout.from_claim.p50,
        higher_is_better=False,
        objective=True,
    )
)
register(
    Metric(
        "seconds_to_checkout_p90",
        "Checkout p90 (claim → paid)",
        Format.SECONDS,
        lambda k: k.seconds_to_checkout.from_claim.p90,
        higher_is_better=False,
    )
)
register(
    Metric(
        "open_to_paid_p50",
        "Open → paid p50",
        Format.SECONDS,
        lambda k: k.seconds_to_checkout.from_open.p50,
        higher_is_better=False,
    )
)
register(Metric("viewers_peak", "Viewers peak", Format.COUNT, lambda k: k.viewers.peak))
register(Metric("viewers_average", "Viewers average", Format.COUNT, lambda k: k.viewers.average))
register(
    Metric(
        "units_per_1k_viewers",
        "Units per 1k viewers (average)",
        Format.NUMBER,
        lambda k: k.units_per_1k_viewers.average,
        objective=True,
    )
)
register(
    Metric(
        "sold_out_after_s",
        "Sold out after",
        Format.SECONDS,
        lambda k: k.sold_out_after_s,
        higher_is_better=False,
    )
)
register(Metric("holds_active", "Holds active", Format.COUNT, lambda k: k.holds.active))
register(
    Metric(
        "holds_expired",
        "Holds expired",
        Format.COUNT,
        lambda k: k.holds.expired,
        higher_is_better=False,
    )
)
register(Metric("waitlist_joined", "Waitlist joined", Format.COUNT, lambda k: k.waitlist.joined))
register(Metric("waitlist_offered", "Waitlist offered", Format.COUNT, lambda k: k.waitlist.offered))
register(
    Metric("waitlist_converted", "Waitlist converted", Format.COUNT, lambda k: k.waitlist.converted)
)
