"""What ``dropcast report`` prints: a drop's KPIs as tables leading with its objective, and
the table comparing the drops of a period. The command itself is in ``dropcast.cli``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from rich import box
from rich.console import Console, JustifyMethod
from rich.markup import escape
from rich.table import Table

from commerce.analytics.metrics import shown
from commerce.analytics.results import DropKpis, DropSummary, ObjectiveResult, RepeatRate, headline
from commerce.money_format import format_money
from commerce.views import iso

DASH = "–"
PIPE_WIDTH = 132  # a classic wide terminal


def wide_console() -> Console:
    """Rich's console; when piped (no terminal to measure) wide enough for the tables."""
    console = Console(highlight=False, soft_wrap=False)
    if not console.is_terminal:
        console.width = max(console.width, PIPE_WIDTH)
    return console


def print_kpis(console: Console, kpis: DropKpis) -> None:
    """The report for one drop: the objective first, then every KPI, then the detail."""
    drop = kpis.drop
    state = drop.state + (f", {drop.close_reason}" if drop.close_reason else "")
    console.print(f"[bold]Drop {drop.id}: {escape(drop.title)}[/] ({drop.format}, {state})")
    console.print(_objective_line(kpis.objective, headline(kpis)))
    console.print(
        f"opened {iso(drop.opened_at) or DASH}  closed {iso(drop.closed_at) or DASH}  "
        f"as of {iso(kpis.as_of)}"
    )
    console.print(kpi_table(kpis))
    console.print(metric_table(kpis))
    console.print(funnel_table(kpis))
    console.print(first_view_table(kpis))
    if kpis.reminders:
        console.print(reminder_table(kpis))


def _objective_line(objective: ObjectiveResult | None, text: str) -> str:
    met = objective.met if objective else None
    colour = "yellow" if met is None else ("green" if met else "red")
    return f"[bold {colour}]Objective: {text}[/]"


def _hours(seconds: float | None) -> str:
    return DASH if seconds is None else f"{seconds / 3600:.1f} h"


def kpi_table(k: DropKpis) -> Table:
    """The KPIs that take more than one number; ``metric_table`` lists the single ones."""
    table = _table("KPIs", ("KPI", "left"), ("value", "left"))
    ct = k.seconds_to_checkout
    units = f"{k.drop.unit}s"
    rows = [
        (f"{units} sold", f"{k.units_sold} of {k.capacity} ({_num(k.sell_through_pct, '%')} sold)"),
        ("revenue (net of refunds)", format_money(k.revenue, None) if k.revenue else DASH),
        (
            "refunds",
            f"{k.after_sale.refunds}"
            + (f" ({format_money(k.after_sale.refunded, None)})" if k.after_sale.refunded else ""),
        ),
        (
            "fulfilment",
            f"{k.after_sale.shipped} shipped, {k.after_sale.picked_up} picked up, "
            f"{k.after_sale.awaiting} to go; paid → shipped p50 "
            f"{_hours(k.after_sale.fulfilment.p50)}",
        ),
        ("viewers peak / average", f"{_num(k.viewers.peak)} / {_num(k.viewers.average)}"),
        (
            f"{units} per 1k viewers (peak / avg)",
            f"{_num(k.units_per_1k_viewers.peak)} / {_num(k.units_per_1k_viewers.average)}",
        ),
        (
            "seconds to checkout, claim → paid",
            f"p50 {_num(ct.from_claim.p50)}  p90 {_num(ct.from_claim.p90)}  "
            f"(n={ct.from_claim.count})",
        ),
        (
            "seconds to checkout, open → paid",
            f"p50 {_num(ct.from_open.p50)}  p90 {_num(ct.from_open.p90)}",
        ),
        ("claims", f"{k.claims.total} ({_pairs(k.claims.by_outcome.items())})"),
        (
            "holds",
            f"{k.holds.placed} placed: {k.holds.converted} paid, {k.holds.expired} expired, "
            f"{k.holds.cancelled} cancelled, {k.holds.active} active",
        ),
        (
            "waitlist",
            f"{k.waitlist.joined} joined, {k.waitlist.offered} offered, "
            f"{k.waitlist.converted} bought ({_num(k.waitlist.conversion_pct, '%')})",
        ),
        *((f"repeat purchase, {r.days} days", _repeat(r)) for r in k.repeat),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def metric_table(k: DropKpis) -> Table:
    """Every registered metric, as the dashboard shows it, with the name a drop file uses."""
    table = _table("Metrics", ("metric", "left"), ("value", "right"), ("name", "left"))
    for metric, label, text in shown(k):
        table.add_row(label, text, metric.name)
    return table


def funnel_table(k: DropKpis) -> Table:
    table = _table("Funnel (people)", ("step", "left"), ("people", "right"), ("drop-off", "right"))
    for step in k.funnel:
        table.add_row(step.step, str(step.people), _num(step.drop_off_pct, "%"))
    return table


def first_view_table(k: DropKpis) -> Table:
    table = _table(
        "First 120 seconds",
        ("from", "right"),
        ("claims", "right"),
        ("holds", "right"),
        ("units", "right"),
    )
    for b in k.first_120s:
        table.add_row(f"{b.start_s} s", str(b.claims), str(b.holds), str(b.units))
    return table


def reminder_table(k: DropKpis) -> Table:
    table = _table(
        "Reminder attribution",
        ("tag", "left"),
        ("sent", "right"),
        ("opened", "right"),
        ("buyers", "right"),
        ("units", "right"),
    )
    for r in k.reminders:
        table.add_row(escape(r.tag), str(r.sent), str(r.opened), str(r.buyers), str(r.units))
    return table


def compare_table(rows: list[DropSummary], since: str) -> Table | str:
    if not rows:
        return f"no drops opened in the last {since}"
    table = _table(
        f"Drops opened in the last {since}",
        ("id", "right"),
        ("opened", "left"),
        ("title", "left"),
        ("objective", "left"),
        ("met", "left"),
        ("sold", "right"),
        ("sell %", "right"),
        ("sold out", "right"),
        ("p50 s", "right"),
        ("peak", "right"),
        ("/1k avg", "right"),
        ("expired", "right"),
        ("rep 30d", "right"),
    )
    for r in rows:
        table.add_row(
            str(r.drop_id),
            _day(r.opened_at),
            escape(r.title),
            r.objective.metric if r.objective else DASH,
            _verdict(r.objective),
            f"{r.units_sold}/{r.capacity}",
            _num(r.sell_through_pct, "%"),
            _num(r.sold_out_after_s, " s"),
            _num(r.checkout_p50_s),
            _num(r.viewer_peak),
            _num(r.units_per_1k_avg),
            str(r.expired_holds),
            _num(r.repeat_30d_pct, "%"),
        )
    return table


def _table(title: str, *columns: tuple[str, JustifyMethod]) -> Table:
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
    )
    for name, justify in columns:
        table.add_column(name, justify=justify)
    return table


def _num(value: float | int | None, suffix: str = "") -> str:
    if value is None:
        return DASH
    text = str(value) if isinstance(value, int) else f"{value:.1f}".removesuffix(".0")
    return text + suffix


def _pairs(items: Iterable[tuple[str, int]]) -> str:
    return ", ".join(f"{n} {name}" for name, n in items) or "none"


def _repeat(rate: RepeatRate) -> str:
    text = f"{_num(rate.rate_pct, '%')} ({rate.repeaters} of {rate.buyers} buyers)"
    return text if rate.complete or not rate.buyers else text + ", window still open"


def _verdict(objective: ObjectiveResult | None) -> str:
    if objective is None:
        return DASH
    return {True: "yes", False: "no", None: "n/a"}[objective.met]


def _day(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%d") if when else DASH
