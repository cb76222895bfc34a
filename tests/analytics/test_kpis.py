"""Drop KPIs against a hand-built event log (tests/analytics/scenario.py) with known answers,
on both engines; plus the arithmetic on its own."""

from __future__ import annotations

from datetime import timedelta

import pytest

from commerce.analytics.kpis import DropAnalytics, percentile
from commerce.analytics.metrics import evaluate_objective
from commerce.analytics.results import to_json
from commerce.analytics.tracking import Tracker
from commerce.domain.errors import DropNotFound, InvalidInput
from commerce.domain.model import ClaimOutcome, Money
from commerce.dropfile import validate_spec
from commerce.durations import parse_period
from tests.analytics.scenario import DAY, buy, claim_and_buy
from tests.helpers import bundle_spec, capsule_spec, customers, live_drop


@pytest.fixture
def kpis(seeded):
    return seeded.kpis


def series(points):
    return [(p.t_s, p.value) for p in points]


def test_the_objective_leads_with_its_actual_value_and_verdict(kpis):
    objective = kpis.objective
    assert (objective.metric, objective.target, objective.actual) == ("units_first_10m", 4, 3)
    assert objective.met is False and objective.higher_is_better


def test_units_sell_through_time_to_sell_out_and_revenue(kpis):
    assert (kpis.units_sold, kpis.capacity, kpis.units_first_10m) == (3, 3, 3)
    assert kpis.sell_through_pct == 100.0
    assert kpis.sold_out_after_s == 95.0
    assert kpis.revenue == Money(3600, "USD")
    assert (kpis.drop.state, kpis.drop.close_reason) == ("closed", "sold_out")


def test_seconds_to_checkout_from_claim_and_from_open(kpis):
    # claim → paid: 14, 28, 15 s; open → paid: 20, 40, 95 s
    claim, opened = kpis.seconds_to_checkout.from_claim, kpis.seconds_to_checkout.from_open
    assert (claim.count, claim.p50, claim.p90) == (3, 15.0, pytest.approx(25.4))
    assert (opened.p50, opened.p90) == (40.0, pytest.approx(84.0))


def test_viewers_sum_platforms_only_while_live_and_average_over_time(kpis):
    # 100 for 30 s, 300 + 50 for 30 s, 200 + 50 for 35 s (until the close at 95 s)
    assert (kpis.viewers.samples, kpis.viewers.peak) == (3, 350)
    assert kpis.viewers.average == pytest.approx(22250 / 95)
    assert kpis.units_per_1k_viewers.peak == pytest.approx(3000 / 350)
    assert kpis.units_per_1k_viewers.average == pytest.approx(3000 / (22250 / 95))
    assert series(kpis.series.viewers) == [(0, 100), (30, 350), (60, 250)]


def test_claims_holds_and_the_waitlist(kpis):
    assert (kpis.claims.total, kpis.claims.by_outcome) == (4, {"held": 3, "sold_out": 1})
    holds = kpis.holds
    assert (holds.placed, holds.converted, holds.expired, holds.cancelled, holds.active) == (
        4, 3, 1, 0, 0,
    )  # fmt: skip
    assert holds.by_source == {"chat": 1, "link": 2, "waitlist": 1}
    waitlist = kpis.waitlist
    assert (waitlist.joined, waitlist.offered, waitlist.converted) == (2, 1, 1)
    assert waitlist.conversion_pct == 50.0


def test_the_funnel_is_strict_and_counts_linked_identities_once(kpis):
    # issued c1 c2 c4 c6 → opened c1 c2 c4 → held c1 c2 (c3 held from chat, no link) → paid
    steps = [(s.step, s.people, s.drop_off_pct) for s in kpis.funnel]
    assert steps == [
        ("link_issued", 4, None),
        ("link_opened", 3, 25.0),
        ("held", 2, pytest.approx(100 / 3)),
        ("paid", 2, 0.0),
    ]


def test_reminders_are_credited_with_what_their_openers_bought(kpis):
    rows = [(r.tag, r.sent, r.opened, r.buyers, r.units) for r in kpis.reminders]
    assert rows == [("reminder:1h", 1, 1, 1, 1), ("reminder:5m", 3, 2, 1, 1)]


def test_repeat_rate_at_7_and_30_days_follows_linked_identities(kpis):
    # Buyers c1, c2 (= c7 after linking), c5: c1 again at 3 days, c2 as c7 at 20 days,
    # c5 only at 45 days.
    rates = [(r.days, r.buyers, r.repeaters, r.complete) for r in kpis.repeat]
    assert rates == [(7, 3, 1, True), (30, 3, 2, True)]
    assert [r.rate_pct for r in kpis.repeat] == [pytest.approx(100 / 3), pytest.approx(200 / 3)]


def test_the_first_120_seconds_in_10_second_buckets(kpis):
    view = {b.start_s: (b.claims, b.holds, b.units) for b in kpis.first_120s}
    assert sorted(view) == list(range(0, 120, 10))
    nonzero = {start: counts for start, counts in view.items() if counts != (0, 0, 0)}
    assert nonzero == {
        0: (1, 1, 0),
        10: (3, 2, 0),
        20: (0, 0, 1),
        40: (0, 0, 1),
        80: (0, 1, 0),
        90: (0, 0, 1),
    }


def test_the_chart_series_stock_and_sales(kpis):
    # c3's hold gives its unit back at its expiry (75 s), not at the sweep (80 s).
    assert series(kpis.series.stock_available) == [
        (0, 3), (6, 2), (12, 1), (15, 0), (75, 1), (80, 0),
    ]  # fmt: skip
    assert [(b.start_s, b.units) for b in kpis.series.sales_per_10s] == [(20, 1), (40, 1), (90, 1)]
    assert kpis.series.end_s == 120.0


def test_json_has_stable_keys_and_iso_utc_times(kpis):
    data = to_json(kpis)
    assert list(data) == [
        "drop", "as_of", "objective", "units_sold", "capacity", "sell_through_pct",
        "sold_out_after_s", "units_first_10m", "revenue", "viewers", "units_per_1k_viewers",
        "seconds_to_checkout", "claims", "holds", "funnel", "waitlist", "repeat", "reminders",
        "first_120s", "series", "after_sale",
    ]  # fmt: skip
    assert data["drop"]["opened_at"].endswith("Z")
    assert data["revenue"] == {"amount_minor": 3600, "currency": "USD"}
    assert data["viewers"]["average"] == round(22250 / 95, 3)


def test_compare_lists_drops_opened_within_the_period(seeded):
    every, scenario = seeded.compare_90d, seeded.scenario
    assert [r.drop_id for r in every] == [scenario.drop_a, *scenario.later_drops]
    first = every[0]
    assert (first.units_sold, first.capacity, first.checkout_p50_s, first.viewer_peak) == (
        3, 3, 15.0, 350,
    )  # fmt: skip
    assert first.objective.met is False and first.repeat_30d_pct == pytest.approx(200 / 3)
    assert [r.drop_id for r in seeded.compare_30d] == scenario.later_drops[-1:]


async def test_an_unknown_drop_is_not_found(commerce):
    with pytest.raises(DropNotFound):
        await DropAnalytics(commerce.uow).kpis(999)


async def test_a_drop_that_never_opened_has_empty_measures(commerce):
    drop_id = await commerce.drops.create(validate_spec(capsule_spec(4)))
    kpis = await DropAnalytics(commerce.uow).kpis(drop_id)
    assert (kpis.units_sold, kpis.capacity, kpis.sell_through_pct) == (0, 4, 0.0)
    assert kpis.first_120s == [] and kpis.series.stock_available == []
    assert kpis.objective is None and kpis.viewers.peak is None
    assert kpis.seconds_to_checkout.from_claim.p50 is None


async def test_a_restock_raises_the_stock_curve_when_it_happened(commerce, clock):
    tracker = Tracker(commerce.uow)
    tracker.follow(commerce.bus)
    drop_id = await live_drop(commerce, capsule_spec(1, hold_seconds=60))
    (buyer,) = await customers(commerce, 1)
    clock.advance(5)
    await claim_and_buy(commerce, drop_id, buyer)  # sold out: the drop closes
    clock.advance(25)
    await commerce.drops.restock(drop_id, "CHIPS-SPICY", 2)  # reopens
    kpis = await DropAnalytics(commerce.uow).kpis(drop_id)
    assert series(kpis.series.stock_available) == [(0, 1), (5, 0), (30, 2)]
    assert (kpis.units_sold, kpis.capacity) == (1, 3)
    assert kpis.sold_out_after_s is None


async def test_a_lapsed_hold_counts_as_expired_before_the_sweep(commerce, clock):
    drop_id = await live_drop(commerce, capsule_spec(2, hold_seconds=60))
    (viewer,) = await customers(commerce, 1)
    assert (await commerce.claims.claim(drop_id, viewer)).outcome is ClaimOutcome.HELD
    clock.advance(61)
    kpis = await DropAnalytics(commerce.uow).kpis(drop_id)
    assert (kpis.holds.expired, kpis.holds.active) == (1, 0)
    assert series(kpis.series.stock_available) == [(0, 1), (60, 2)]  # back at its expiry


async def test_a_refund_takes_the_sale_back_and_returns_the_unit_at_the_refund(commerce, clock):
    drop_id = await live_drop(commerce, capsule_spec(3, hold_seconds=60))  # stays live
    first, second = await customers(commerce, 2)
    result = await commerce.claims.claim(drop_id, first)
    clock.advance(10)
    await buy(commerce, result.hold.id, first)
    clock.advance(10)
    await claim_and_buy(commerce, drop_id, second)
    clock.advance(100)
    order = await commerce.orders.for_hold(result.hold.id)
    await commerce.orders.refund(order.id)
    kpis = await DropAnalytics(commerce.uow).kpis(drop_id)
    assert kpis.units_sold == 1
    assert kpis.sell_through_pct == pytest.approx(100 / 3)
    assert kpis.revenue == Money(1200, "USD")
    assert (kpis.after_sale.refunds, kpis.after_sale.refunded) == (1, Money(1200, "USD"))
    assert series(kpis.series.stock_available) == [(0, 2), (20, 1), (120, 2)]


async def test_a_closed_drops_refund_stays_a_sale_but_leaves_the_net_revenue(commerce, clock):
    drop_id = await live_drop(commerce, capsule_spec(3))
    first, second = await customers(commerce, 2)
    await claim_and_buy(commerce, drop_id, first)
    await claim_and_buy(commerce, drop_id, second)
    await commerce.drops.close(drop_id)
    refunded = await first_order(commerce, drop_id)
    await commerce.orders.refund(refunded, "requested")

    kpis = await DropAnalytics(commerce.uow).kpis(drop_id)
    assert kpis.units_sold == 2
    assert kpis.revenue == Money(1200, "USD")
    assert (kpis.after_sale.refunds, kpis.after_sale.refunded) == (1, Money(1200, "USD"))


async def test_fulfilment_time_is_paid_to_shipped(commerce, clock):
    drop_id = await live_drop(commerce, capsule_spec(5))
    buyers = await customers(commerce, 3)
    for buyer in buyers:
        await claim_and_buy(commerce, drop_id, buyer)
    orders = await all_orders(commerce, drop_id)
    clock.advance(2 * 3600)
    await commerce.orders.ship(orders[0], "UPS", "1Z1")
    clock.advance(2 * 3600)
    await commerce.orders.ship(orders[1], "UPS", "1Z2")

    after = (await DropAnalytics(commerce.uow).kpis(drop_id)).after_sale
    assert (after.shipped, after.picked_up, after.awaiting, after.refunds) == (2, 0, 1, 0)
    assert after.fulfilment.p50 == pytest.approx(3 * 3600)


async def all_orders(commerce, drop_id) -> list[int]:
    from sqlalchemy import select

    from commerce.storage.tables import orders

    async with commerce.db.read() as conn:
        rows = await conn.execute(
            select(orders.c.id).where(orders.c.drop_id == drop_id).order_by(orders.c.id)
        )
        return list(rows.scalars())


async def first_order(commerce, drop_id) -> int:
    return (await all_orders(commerce, drop_id))[0]


async def test_bundle_capacity_counts_whole_bundles(commerce, clock):
    drop_id = await live_drop(commerce, bundle_spec(chips=4, salsa=2))
    (buyer,) = await customers(commerce, 1)
    await claim_and_buy(commerce, drop_id, buyer)
    kpis = await DropAnalytics(commerce.uow).kpis(drop_id)
    assert (kpis.units_sold, kpis.capacity, kpis.sell_through_pct) == (1, 2, 50.0)


async def test_a_repeat_window_still_open_is_marked_incomplete(commerce, clock):
    drop_id = await live_drop(commerce, capsule_spec(2))
    (buyer,) = await customers(commerce, 1)
    await claim_and_buy(commerce, drop_id, buyer)
    clock.advance(10 * DAY)
    kpis = await DropAnalytics(commerce.uow).kpis(drop_id)
    assert [(r.days, r.buyers, r.complete) for r in kpis.repeat] == [(7, 1, True), (30, 1, False)]


# -- the arithmetic alone --------------------------------------------------------------------


def test_percentiles_interpolate_between_ranks():
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.9) == 7.0
    assert percentile([14, 28, 15], 0.5) == 15
    assert percentile([14, 28, 15], 0.9) == pytest.approx(25.4)
    assert percentile([1, 2, 3, 4], 0.5) == 2.5


@pytest.mark.parametrize(
    ("metric", "actual", "met"),
    [
        ("units_first_10m", 8.0, True),
        ("units_first_10m", 7.0, False),
        ("seconds_to_checkout_p50", 8.0, True),  # lower is better
        ("seconds_to_checkout_p50", 9.0, False),
        ("units_per_1k_viewers", None, None),  # no viewer samples: cannot say
    ],
)
def test_objectives_compare_in_the_metric_s_direction(metric, actual, met):
    result = evaluate_objective({"metric": metric, "target": 8}, {metric: actual})
    assert result is not None and result.met is met


def test_an_objective_that_is_missing_or_malformed_is_none():
    metrics: dict[str, float | None] = {"sell_through_pct": 50.0}
    assert evaluate_objective(None, metrics) is None
    assert evaluate_objective({"metric": "vibes", "target": 1}, metrics) is None
    assert evaluate_objective({"metric": "sell_through_pct", "target": "x"}, metrics) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30d", timedelta(days=30)), ("12h", timedelta(hours=12)), (" 90m ", timedelta(minutes=90)),
     ("2w", timedelta(weeks=2))],
)  # fmt: skip
def test_periods_parse(text, expected):
    assert parse_period(text) == expected


@pytest.mark.parametrize("text", ["", "30", "0d", "d", "30x", "-3d", "1.5d", "30 days"])
def test_bad_periods_name_the_problem(text):
    with pytest.raises(InvalidInput, match="since"):
        parse_period(text)
