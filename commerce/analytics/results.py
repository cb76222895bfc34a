"""The KPI result types: plain frozen dataclasses, and one converter to stable JSON.

Field names are the JSON keys (the report's ``--json``, the dashboard, the recap), so
renaming a field is an interface change. Durations are seconds; percentages are 0–100.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from commerce.domain.model import Money
from commerce.views import iso


@dataclass(frozen=True, slots=True)
class DropInfo:
    id: int
    title: str
    format: str
    state: str
    opened_at: datetime | None
    closed_at: datetime | None
    close_reason: str | None

    @property
    def unit(self) -> str:
        """What the drop's counts count: whole bundles for a bundle drop, else units."""
        return "bundle" if self.format == "bundle" else "unit"


@dataclass(frozen=True, slots=True)
class ObjectiveResult:
    """The drop's single objective (playbook Day 0) and whether it was met.

    ``met`` is None when the actual value cannot be measured (e.g. no viewer samples).
    """

    metric: str
    target: float
    actual: float | None
    met: bool | None
    higher_is_better: bool


@dataclass(frozen=True, slots=True)
class Distribution:
    """Seconds over a set of checkouts: count, median and 90th percentile."""

    count: int
    p50: float | None
    p90: float | None


@dataclass(frozen=True, slots=True)
class CheckoutTimes:
    from_claim: Distribution  # hold placed → checkout completed (friction)
    from_open: Distribution  # drop opened → checkout completed (speed of the drop)


@dataclass(frozen=True, slots=True)
class ViewerStats:
    """Audience while live: all platforms summed. ``average`` is time-weighted."""

    samples: int
    peak: int | None
    average: float | None


@dataclass(frozen=True, slots=True)
class PerThousand:
    """Units sold per 1,000 viewers, against the peak and against the average audience."""

    peak: float | None
    average: float | None


@dataclass(frozen=True, slots=True)
class ClaimStats:
    total: int
    by_outcome: dict[str, int]


@dataclass(frozen=True, slots=True)
class HoldStats:
    placed: int
    converted: int
    expired: int
    cancelled: int
    active: int
    by_source: dict[str, int]


@dataclass(frozen=True, slots=True)
class FunnelStep:
    """People who reached this step having passed every step before it."""

    step: str
    people: int
    drop_off_pct: float | None  # lost since the previous step; None for the first step


@dataclass(frozen=True, slots=True)
class WaitlistStats:
    joined: int
    offered: int
    converted: int  # entries whose hold became a sale
    conversion_pct: float | None


@dataclass(frozen=True, slots=True)
class RepeatRate:
    """Buyers of this drop who bought in another drop within ``days`` after it.

    ``complete`` is False while the window is still open for some buyer (the rate can rise).
    """

    days: int
    buyers: int
    repeaters: int
    rate_pct: float | None
    complete: bool


@dataclass(frozen=True, slots=True)
class ReminderAttribution:
    """Reminders by attribution tag, and purchases by the people who opened them."""

    tag: str
    sent: int
    opened: int
    buyers: int
    units: int


@dataclass(frozen=True, slots=True)
class EarlyBucket:
    """Ten seconds of the first two minutes after opening."""

    start_s: int
    claims: int
    holds: int
    units: int


@dataclass(frozen=True, slots=True)
class SalesBucket:
    start_s: int
    units: int


@dataclass(frozen=True, slots=True)
class Point:
    """A value from ``at`` on (a step function); ``t_s`` is seconds since the drop opened."""

    at: datetime
    t_s: float
    value: float


@dataclass(frozen=True, slots=True)
class Series:
    """What the recap chart draws. Sales buckets are sparse: empty ones are left out."""

    stock_available: list[Point]
    sales_per_10s: list[SalesBucket]
    viewers: list[Point]
    live_until_s: float  # the close (or now), seconds since opening
    end_s: float  # the right edge of the chart: the close, the last sale, at least 120 s


@dataclass(frozen=True, slots=True)
class AfterSale:
    """What happened after the money: refunds given back by the creator, and how fast the
    goods left (paid → shipped). ``revenue`` elsewhere is already net of these
    refunds; ``refunded`` is what they came to."""

    refunds: int
    refunded: Money | None
    shipped: int
    picked_up: int
    awaiting: int  # paid or reserved, not yet shipped or picked up
    fulfilment: Distribution  # seconds from payment to shipping


@dataclass(frozen=True, slots=True)
class DropKpis:
    drop: DropInfo
    as_of: datetime
    objective: ObjectiveResult | None
    units_sold: int
    capacity: int
    sell_through_pct: float | None
    sold_out_after_s: float | None
    units_first_10m: int
    revenue: Money | None  # paid and reserved orders: net of refunds
    viewers: ViewerStats
    units_per_1k_viewers: PerThousand
    seconds_to_checkout: CheckoutTimes
    claims: ClaimStats
    holds: HoldStats
    funnel: list[FunnelStep]
    waitlist: WaitlistStats
    repeat: list[RepeatRate]
    reminders: list[ReminderAttribution]
    first_120s: list[EarlyBucket]
    series: Series
    after_sale: AfterSale


@dataclass(frozen=True, slots=True)
class DropSummary:
    """One row of ``compare``: the headline numbers of a drop."""

    drop_id: int
    title: str
    opened_at: datetime | None
    objective: ObjectiveResult | None
    units_sold: int
    capacity: int
    sell_through_pct: float | None
    sold_out_after_s: float | None
    checkout_p50_s: float | None
    viewer_peak: int | None
    units_per_1k_avg: float | None
    expired_holds: int
    repeat_30d_pct: float | None

    @classmethod
    def of(cls, kpis: DropKpis) -> DropSummary:
        repeat_30 = next((r for r in kpis.repeat if r.days == 30), None)
        return cls(
            drop_id=kpis.drop.id,
            title=kpis.drop.title,
            opened_at=kpis.drop.opened_at,
            objective=kpis.objective,
            units_sold=kpis.units_sold,
            capacity=kpis.capacity,
            sell_through_pct=kpis.sell_through_pct,
            sold_out_after_s=kpis.sold_out_after_s,
            checkout_p50_s=kpis.seconds_to_checkout.from_claim.p50,
            viewer_peak=kpis.viewers.peak,
            units_per_1k_avg=kpis.units_per_1k_viewers.average,
            expired_holds=kpis.holds.expired,
            repeat_30d_pct=repeat_30.rate_pct if repeat_30 else None,
        )


def headline(kpis: DropKpis) -> str:
    """One line leading with the objective: what was aimed for, what happened."""
    objective = kpis.objective
    if objective is None:
        return f"{kpis.units_sold}/{kpis.capacity} sold (no objective set)"
    sign = "≥" if objective.higher_is_better else "≤"
    actual = "n/a" if objective.actual is None else f"{objective.actual:g}"
    verdict = {True: "MET", False: "NOT MET", None: "not measurable"}[objective.met]
    return f"{objective.metric} {sign} {objective.target:g}: {actual} — {verdict}"


def to_json(value: Any) -> Any:
    """Plain JSON data from results: dataclasses become objects (keys = field names),
    times ISO 8601 UTC with ``Z``, floats rounded to 3 decimals, NaN/inf to null."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, float):
        return round(value, 3) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value
