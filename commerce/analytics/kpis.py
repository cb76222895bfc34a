"""Drop KPIs (the playbook's measurement framework), computed from the tables.

Loading is a handful of SQLAlchemy Core queries in one read transaction (the same on SQLite
and PostgreSQL); the arithmetic is pure Python over those rows, in ``compute``.

Definitions, so every number can be checked by hand:
- a *sale* is a converted hold; its time is the moment the hold converted (``ended_at``),
  which is ``paid_at`` for provider payments and the reservation for pay-at-pickup;
- *seconds to checkout*: hold placed → sale (friction), and drop opened → sale;
- *people*: customers folded together by ``customers.merged_into`` count as one person;
- *viewers*: each platform's latest sample, summed, between opening and close (or now);
  the average is time-weighted, so irregular sampling does not skew it;
- the *funnel* is strict: each step counts people who also passed the previous one;
- *repeat rate at N days*: buyers of this drop who bought in another drop within N days
  after their first purchase here;
- *capacity* is claim-units (whole bundles for a bundle), restocks included.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from commerce.analytics.metrics import FIRST_WINDOW_S, evaluate_objective, metric_values
from commerce.analytics.results import (
    AfterSale,
    CheckoutTimes,
    ClaimStats,
    Distribution,
    DropInfo,
    DropKpis,
    DropSummary,
    EarlyBucket,
    FunnelStep,
    HoldStats,
    PerThousand,
    Point,
    ReminderAttribution,
    RepeatRate,
    SalesBucket,
    Series,
    ViewerStats,
    WaitlistStats,
)
from commerce.analytics.tracking import ActivityKind
from commerce.domain.errors import DropNotFound, InvalidInput
from commerce.domain.model import (
    DropFormat,
    HoldStatus,
    Money,
    OrderStatus,
    StockLine,
    claimable_units,
)
from commerce.storage.tables import (
    activity,
    claims,
    customers,
    drop_stock,
    drops,
    holds,
    orders,
    waitlist,
)
from commerce.storage.unit_of_work import UnitOfWork

BUCKET_S = 10
FIRST_VIEW_S = 120
REPEAT_DAYS = (7, 30)
FUNNEL_STEPS = ("link_issued", "link_opened", "held", "paid")

# One person per customer: linking identities folds a customer into another (flat: the
# link service re-points earlier merges, so one level is all there is).
person = func.coalesce(customers.c.merged_into, customers.c.id)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0–1) by linear interpolation between closest ranks; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def pct(part: float, whole: float) -> float | None:
    return 100.0 * part / whole if whole else None


# -- the rows KPIs are computed from --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HoldRow:
    id: int
    person: int
    qty: int
    status: str
    source: str
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None
    order_status: str | None

    def released_at(self) -> datetime | None:
        """When the units went back to stock; None while they are sold (or still held)."""
        if self.status == HoldStatus.CONVERTED:
            return None
        if self.order_status == OrderStatus.REFUNDED and self.ended_at is not None:
            return self.ended_at  # sold, then refunded: back in stock at the refund
        if self.status == HoldStatus.ACTIVE:
            return self.expires_at
        return min(self.expires_at, self.ended_at or self.expires_at)


@dataclass(frozen=True, slots=True)
class ActivityRow:
    kind: str
    person: int | None
    at: datetime
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class LineRow:
    sku: str
    pool: str
    per_unit: int
    total: int


@dataclass(frozen=True, slots=True)
class WaitRow:
    offered_at: datetime | None
    hold_id: int | None


@dataclass(frozen=True, slots=True)
class OrderRow:
    status: str
    amount_minor: int
    currency: str
    paid_at: datetime | None
    fulfilled_at: datetime | None
    fulfilment: str | None


@dataclass
class DropFacts:
    """Everything ``compute`` needs about one drop, read in one transaction."""

    drop: DropInfo
    format: DropFormat
    objective: Any
    lines: list[LineRow]
    holds: list[HoldRow]
    claims: list[tuple[datetime, str]]  # (arrived_at, outcome)
    waitlist: list[WaitRow]
    activity: list[ActivityRow]
    revenue: Money | None
    later_sales: list[tuple[int, datetime]] = field(default_factory=list)  # other drops
    orders: list[OrderRow] = field(default_factory=list)


# -- loading ---------------------------------------------------------------------------------


class DropAnalytics:
    """KPIs per drop and across drops. Read-only; safe to call while a drop is live."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    async def kpis(self, drop_id: int) -> DropKpis:
        """Every KPI of one drop as of now; DropNotFound for an unknown id."""
        as_of = self.uow.clock.now()
        async with self.uow.read() as conn:
            facts = await load_facts(conn, drop_id)
        return compute(facts, as_of)

    async def compare(self, since: timedelta) -> list[DropSummary]:
        """Headline KPIs of every drop opened within ``since``, oldest first."""
        if since <= timedelta(0):
            raise InvalidInput("since", "must be a positive period")
        as_of = self.uow.clock.now()
        async with self.uow.read() as conn:
            ids = (
                await conn.execute(
                    select(drops.c.id)
                    .where(drops.c.opened_at >= as_of - since)
                    .order_by(drops.c.opened_at, drops.c.id)
                )
            ).scalars()
            return [DropSummary.of(compute(await load_facts(conn, i), as_of)) for i in ids]


async def load_facts(conn: AsyncConnection, drop_id: int) -> DropFacts:
    row = (await conn.execute(select(drops).where(drops.c.id == drop_id))).first()
    if row is None:
        raise DropNotFound(drop_id)
    info = DropInfo(
        row.id, row.title, row.format, row.state, row.opened_at, row.closed_at, row.close_reason
    )
    lines = [
        LineRow(r.sku, r.pool, r.per_unit, r.total)
        for r in await conn.execute(
            select(drop_stock.c.sku, drop_stock.c.pool, drop_stock.c.per_unit, drop_stock.c.total)
            .where(drop_stock.c.drop_id == drop_id)
            .order_by(drop_stock.c.position, drop_stock.c.id)
        )
    ]
    hold_rows = [
        HoldRow(**r._mapping)
        for r in await conn.execute(
            select(
                holds.c.id,
                person.label("person"),
                holds.c.qty,
                holds.c.status,
                holds.c.source,
                holds.c.created_at,
                holds.c.expires_at,
                holds.c.ended_at,
                orders.c.status.label("order_status"),
            )
            .select_from(
                holds.join(customers, customers.c.id == holds.c.customer_id).outerjoin(
                    orders, orders.c.hold_id == holds.c.id
                )
            )
            .where(holds.c.drop_id == drop_id)
            .order_by(holds.c.created_at, holds.c.id)
        )
    ]
    claim_rows = [
        (r.arrived_at, r.outcome)
        for r in await conn.execute(
            select(claims.c.arrived_at, claims.c.outcome).where(claims.c.drop_id == drop_id)
        )
    ]
    wait_rows = [
        WaitRow(r.offered_at, r.hold_id)
        for r in await conn.execute(
            select(waitlist.c.offered_at, waitlist.c.hold_id).where(waitlist.c.drop_id == drop_id)
        )
    ]
    activity_rows = [
        ActivityRow(r.kind, r.person, r.at, r.detail if isinstance(r.detail, dict) else {})
        for r in await conn.execute(
            select(activity.c.kind, activity.c.at, activity.c.detail, person.label("person"))
            .select_from(activity.outerjoin(customers, customers.c.id == activity.c.customer_id))
            .where(activity.c.drop_id == drop_id)
            .order_by(activity.c.at, activity.c.id)
        )
    ]
    revenue_rows = (
        await conn.execute(
            select(orders.c.currency, func.sum(orders.c.amount_minor))
            .where(
                orders.c.drop_id == drop_id,
                orders.c.status.in_((OrderStatus.PAID, OrderStatus.RESERVED)),
            )
            .group_by(orders.c.currency)
            .order_by(func.sum(orders.c.amount_minor).desc())
        )
    ).all()
    order_rows = [
        OrderRow(**r._mapping)
        for r in await conn.execute(
            select(
                orders.c.status,
                orders.c.amount_minor,
                orders.c.currency,
                orders.c.paid_at,
                orders.c.fulfilled_at,
                orders.c.fulfilment,
            ).where(orders.c.drop_id == drop_id)
        )
    ]
    facts = DropFacts(
        orders=order_rows,
        drop=info,
        format=DropFormat(row.format),
        objective=row.objective,
        lines=lines,
        holds=hold_rows,
        claims=claim_rows,
        waitlist=wait_rows,
        activity=activity_rows,
        revenue=Money(int(revenue_rows[0][1]), revenue_rows[0][0]) if revenue_rows else None,
    )
    first = first_purchases(facts.holds)
    if first:
        latest = max(first.values()) + timedelta(days=max(REPEAT_DAYS))
        facts.later_sales = [
            (r.person, r.ended_at)
            for r in await conn.execute(
                select(person.label("person"), holds.c.ended_at)
                .select_from(holds.join(customers, customers.c.id == holds.c.customer_id))
                .where(
                    holds.c.status == HoldStatus.CONVERTED,
                    holds.c.drop_id != drop_id,
                    holds.c.ended_at > min(first.values()),
                    holds.c.ended_at <= latest,
                    person.in_(list(first)),
                )
            )
        ]
    return facts


# -- computing -------------------------------------------------------------------------------


def sales(holds_: Iterable[HoldRow]) -> list[HoldRow]:
    """Converted holds in the order they converted."""
    sold = [h for h in holds_ if h.status == HoldStatus.CONVERTED and h.ended_at is not None]
    return sorted(sold, key=lambda h: (h.ended_at, h.id))


def first_purchases(holds_: Iterable[HoldRow]) -> dict[int, datetime]:
    """Each buyer's first purchase time in this drop."""
    first: dict[int, datetime] = {}
    for hold in sales(holds_):
        assert hold.ended_at is not None
        first.setdefault(hold.person, hold.ended_at)
    return first


def compute(facts: DropFacts, as_of: datetime) -> DropKpis:
    """All KPIs from the loaded rows (pure: no I/O)."""
    opened = facts.drop.opened_at
    sold = sales(facts.holds)
    units = sum(h.qty for h in sold)
    restocks = [a for a in facts.activity if a.kind == ActivityKind.RESTOCKED]
    capacity = capacity_at(facts, restocks, None)
    live_end = facts.drop.closed_at or as_of
    viewer_points = viewer_curve(facts.activity, opened, live_end)
    viewers = viewer_stats(viewer_points, live_end)
    # (seconds after opening, units) per sale; empty for a drop that never opened
    timeline = [(_seconds(h.ended_at, opened), h.qty) for h in sold] if opened else []
    checkout = CheckoutTimes(
        from_claim=distribution([_seconds(h.ended_at, h.created_at) for h in sold]),
        from_open=distribution([offset for offset, _ in timeline]),
    )
    sold_out_after = None
    running = 0
    for offset, qty in timeline:
        running += qty
        if capacity and running >= capacity:
            sold_out_after = offset
            break
    first_10m = sum(qty for offset, qty in timeline if 0 <= offset < FIRST_WINDOW_S)
    per_1k = PerThousand(
        peak=1000.0 * units / viewers.peak if viewers.peak else None,
        average=1000.0 * units / viewers.average if viewers.average else None,
    )
    sell_through = pct(units, capacity)
    stock = stock_curve(facts, restocks, opened, as_of)
    buckets = sales_buckets(sold, opened)
    series = Series(
        stock_available=stock,
        sales_per_10s=buckets,
        viewers=viewer_points,
        live_until_s=_seconds(live_end, opened) if opened else 0.0,
        end_s=chart_end(stock, buckets, opened, live_end),
    )
    kpis = DropKpis(
        drop=facts.drop,
        as_of=as_of,
        objective=None,  # measured below, from the other KPIs
        units_sold=units,
        capacity=capacity,
        sell_through_pct=sell_through,
        sold_out_after_s=sold_out_after,
        units_first_10m=first_10m,
        revenue=facts.revenue,
        viewers=viewers,
        units_per_1k_viewers=per_1k,
        seconds_to_checkout=checkout,
        claims=ClaimStats(len(facts.claims), _count(outcome for _, outcome in facts.claims)),
        holds=hold_stats(facts.holds, as_of),
        funnel=funnel(facts.activity, facts.holds),
        waitlist=waitlist_stats(facts.waitlist, {h.id for h in sold}),
        repeat=repeat_rates(first_purchases(facts.holds), facts.later_sales, as_of),
        reminders=reminder_attribution(facts.activity, sold),
        first_120s=first_view(facts, sold, opened),
        series=series,
        after_sale=after_sale(facts.orders),
    )
    objective = evaluate_objective(facts.objective, metric_values(kpis))
    return replace(kpis, objective=objective)


def after_sale(rows: Sequence[OrderRow]) -> AfterSale:
    """Refunds the creator gave (money had been taken: late payments refused at once are
    not sales, so not refunds of one) and how quickly paid goods left."""
    refunded = [r for r in rows if r.status == OrderStatus.REFUNDED and r.paid_at is not None]
    settled = [r for r in rows if r.status in (OrderStatus.PAID, OrderStatus.RESERVED)]
    # Paid → shipped. Pickups are left out: pay-at-pickup orders are paid as they leave.
    left = [r for r in settled if r.fulfilment == "shipped" and r.fulfilled_at and r.paid_at]
    amount = sum(r.amount_minor for r in refunded)
    return AfterSale(
        refunds=len(refunded),
        refunded=Money(amount, refunded[0].currency) if refunded else None,
        shipped=sum(r.fulfilment == "shipped" for r in settled),
        picked_up=sum(r.fulfilment == "picked_up" for r in settled),
        awaiting=sum(r.fulfilment is None for r in settled),
        fulfilment=distribution([_seconds(r.fulfilled_at, r.paid_at) for r in left]),
    )


def distribution(seconds: Sequence[float]) -> Distribution:
    return Distribution(len(seconds), percentile(seconds, 0.5), percentile(seconds, 0.9))


def viewer_curve(
    rows: Iterable[ActivityRow], opened: datetime | None, end: datetime
) -> list[Point]:
    """The audience over time: at each sample time, the sum of every platform's latest
    sample. Only samples taken while the drop was live count."""
    if opened is None:
        return []
    latest: dict[str, int] = {}
    totals: dict[datetime, int] = {}
    for row in rows:
        if row.kind != ActivityKind.VIEWERS or not opened <= row.at <= end:
            continue
        count = row.detail.get("count")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            continue  # written by hand, not by Tracker: skip rather than guess
        latest[str(row.detail.get("platform", "manual"))] = count
        totals[row.at] = sum(latest.values())  # rows come sorted by time
    return [Point(at, _seconds(at, opened), float(v)) for at, v in totals.items()]


def viewer_stats(points: Sequence[Point], end: datetime) -> ViewerStats:
    if not points:
        return ViewerStats(0, None, None)
    peak = int(max(p.value for p in points))
    span = (end - points[0].at).total_seconds()
    if span <= 0:
        return ViewerStats(len(points), peak, sum(p.value for p in points) / len(points))
    edges = [p.at for p in points[1:]] + [end]
    weighted = sum(p.value * (e - p.at).total_seconds() for p, e in zip(points, edges, strict=True))
    return ViewerStats(len(points), peak, weighted / span)


def capacity_at(facts: DropFacts, restocks: Sequence[ActivityRow], when: datetime | None) -> int:
    """Claim-units the drop had at ``when`` (None: now), undoing restocks made after it."""
    later: dict[tuple[str, str], int] = defaultdict(int)
    for row in restocks:
        if when is not None and row.at > when:
            added = row.detail.get("added")
            if isinstance(added, int):
                later[(str(row.detail.get("sku")), str(row.detail.get("pool")))] += added
    lines = [
        StockLine(
            0, ln.sku, ln.pool, ln.per_unit, max(ln.total - later[(ln.sku, ln.pool)], 0), 0, 0
        )
        for ln in facts.lines
    ]
    return claimable_units(lines, facts.format)


def stock_curve(
    facts: DropFacts, restocks: Sequence[ActivityRow], opened: datetime | None, as_of: datetime
) -> list[Point]:
    """Claimable units over time: capacity minus units held or sold at each moment."""
    if opened is None:
        return []
    taken: dict[datetime, int] = defaultdict(int)
    for hold in facts.holds:
        taken[hold.created_at] += hold.qty
        released = hold.released_at()
        if released is not None and released <= as_of:
            taken[released] -= hold.qty
    moments = sorted(set(taken) | {r.at for r in restocks} | {opened})
    points: list[Point] = []
    in_use = 0
    for moment in moments:
        in_use += taken.get(moment, 0)
        if moment < opened:
            continue
        value = float(capacity_at(facts, restocks, moment) - in_use)
        if not points or points[-1].value != value:
            points.append(Point(moment, _seconds(moment, opened), value))
    return points


def sales_buckets(sold: Sequence[HoldRow], opened: datetime | None) -> list[SalesBucket]:
    if opened is None:
        return []
    units: dict[int, int] = defaultdict(int)
    for hold in sold:
        offset = _seconds(hold.ended_at, opened)
        if offset >= 0:
            units[int(offset // BUCKET_S) * BUCKET_S] += hold.qty
    return [SalesBucket(start, n) for start, n in sorted(units.items())]


def first_view(
    facts: DropFacts, sold: Sequence[HoldRow], opened: datetime | None
) -> list[EarlyBucket]:
    """Claims, holds and units sold in each 10 s of the first 120 s after opening."""
    if opened is None:
        return []
    count = FIRST_VIEW_S // BUCKET_S
    claims_, holds_, units = [0] * count, [0] * count, [0] * count

    def slot(when: datetime | None) -> int | None:
        offset = _seconds(when, opened)
        return int(offset // BUCKET_S) if 0 <= offset < FIRST_VIEW_S else None

    for arrived, _ in facts.claims:
        if (i := slot(arrived)) is not None:
            claims_[i] += 1
    for hold in facts.holds:
        if (i := slot(hold.created_at)) is not None:
            holds_[i] += 1
    for hold in sold:
        if (i := slot(hold.ended_at)) is not None:
            units[i] += hold.qty
    return [EarlyBucket(i * BUCKET_S, claims_[i], holds_[i], units[i]) for i in range(count)]


def hold_stats(rows: Sequence[HoldRow], as_of: datetime) -> HoldStats:
    # An active hold past its expiry has expired, whether or not the sweeper ran yet.
    status = [
        HoldStatus.EXPIRED if h.status == HoldStatus.ACTIVE and h.expires_at <= as_of else h.status
        for h in rows
    ]
    return HoldStats(
        placed=len(rows),
        converted=status.count(HoldStatus.CONVERTED),
        expired=status.count(HoldStatus.EXPIRED),
        cancelled=status.count(HoldStatus.CANCELLED),
        active=status.count(HoldStatus.ACTIVE),
        by_source=_count(h.source for h in rows),
    )


def funnel(rows: Sequence[ActivityRow], holds_: Sequence[HoldRow]) -> list[FunnelStep]:
    """link issued → opened → held → paid, strict: each step within the one before."""
    reached = [
        _people(rows, ActivityKind.LINK_ISSUED),
        _people(rows, ActivityKind.LINK_OPENED),
        {h.person for h in holds_},
        {h.person for h in holds_ if h.status == HoldStatus.CONVERTED},
    ]
    steps: list[FunnelStep] = []
    cohort: set[int] | None = None
    for name, people in zip(FUNNEL_STEPS, reached, strict=True):
        previous = cohort
        cohort = people if previous is None else previous & people
        drop_off = None if previous is None else pct(len(previous) - len(cohort), len(previous))
        steps.append(FunnelStep(name, len(cohort), drop_off))
    return steps


def waitlist_stats(rows: Sequence[WaitRow], sold_hold_ids: set[int]) -> WaitlistStats:
    converted = sum(1 for w in rows if w.hold_id in sold_hold_ids)
    return WaitlistStats(
        joined=len(rows),
        offered=sum(1 for w in rows if w.offered_at is not None),
        converted=converted,
        conversion_pct=pct(converted, len(rows)),
    )


def repeat_rates(
    first: dict[int, datetime], later: Sequence[tuple[int, datetime]], as_of: datetime
) -> list[RepeatRate]:
    rates = []
    for days in REPEAT_DAYS:
        window = timedelta(days=days)
        repeaters = {p for p, at in later if p in first and first[p] < at <= first[p] + window}
        complete = bool(first) and as_of >= max(first.values()) + window
        rates.append(
            RepeatRate(days, len(first), len(repeaters), pct(len(repeaters), len(first)), complete)
        )
    return rates


def reminder_attribution(
    rows: Sequence[ActivityRow], sold: Sequence[HoldRow]
) -> list[ReminderAttribution]:
    """Per tag: people reminded, people who opened, and what openers bought afterwards."""
    sent: dict[str, set[int]] = defaultdict(set)
    opened: dict[str, dict[int, datetime]] = defaultdict(dict)
    for row in rows:
        if row.person is None:
            continue
        tag = str(row.detail.get("tag") or "untagged")
        if row.kind == ActivityKind.REMINDER_SENT:
            sent[tag].add(row.person)
        elif row.kind == ActivityKind.REMINDER_OPENED:
            opened[tag].setdefault(row.person, row.at)
    result = []
    for tag in sorted(set(sent) | set(opened)):
        bought = [
            h
            for h in sold
            if h.person in opened[tag] and h.ended_at and h.ended_at >= opened[tag][h.person]
        ]
        result.append(
            ReminderAttribution(
                tag,
                len(sent[tag]),
                len(opened[tag]),
                len({h.person for h in bought}),
                sum(h.qty for h in bought),
            )
        )
    return result


def chart_end(
    stock: Sequence[Point], buckets: Sequence[SalesBucket], opened: datetime | None, end: datetime
) -> float:
    """The chart's right edge in seconds: close (or now), stretched to the last sale or stock
    change, and never narrower than the first 120 s."""
    if opened is None:
        return float(FIRST_VIEW_S)
    last = [p.t_s for p in stock] + [float(b.start_s + BUCKET_S) for b in buckets]
    return max([_seconds(end, opened), float(FIRST_VIEW_S), *last])


def _people(rows: Iterable[ActivityRow], kind: str) -> set[int]:
    return {r.person for r in rows if r.kind == kind and r.person is not None}


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for value in values:
        counts[value] += 1
    return dict(sorted(counts.items()))


def _seconds(later: datetime | None, earlier: datetime | None) -> float:
    assert later is not None and earlier is not None
    return (later - earlier).total_seconds()
