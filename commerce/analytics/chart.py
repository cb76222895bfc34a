"""The recap chart: stock over time, sales per 10 s and the viewer curve, the first 120 s
shaded. PNG bytes, so the CLI can write a file and a bot can attach it to a recap post.
The time axis spans the drop itself, so a 9-second sell-out fills the width.

matplotlib is imported only when a chart is drawn (it is slow to import and most processes
never draw), and through its Agg canvas directly: no pyplot, no global backend state.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from commerce.analytics.kpis import BUCKET_S, FIRST_VIEW_S
from commerce.analytics.results import DropKpis, Point, Series, headline

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

WIDTH_PX, HEIGHT_PX, DPI = 1200, 800, 100
_HIGHLIGHT = "#ffd54f"


def render_png(kpis: DropKpis) -> bytes:
    """Draw the recap chart as a PNG of WIDTH_PX × HEIGHT_PX."""
    buffer = io.BytesIO()
    draw(kpis).savefig(buffer, format="png", dpi=DPI)  # no bbox_inches: keep the exact size
    return buffer.getvalue()


def draw(kpis: DropKpis) -> Figure:
    """The recap chart as a matplotlib Figure on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    stock_ax, sales_ax, viewers_ax = figure.subplots(3, 1, sharex=True)
    series = kpis.series
    figure.suptitle(f"Drop {kpis.drop.id}: {kpis.drop.title}\n{headline(kpis)}", fontsize=13)

    right = x_end(series)
    _steps(stock_ax, series.stock_available, right, "tab:blue")
    stock_ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    stock_ax.set_ylabel("stock available")
    stock_ax.set_ylim(bottom=0)

    sales_ax.bar(
        [b.start_s for b in series.sales_per_10s],
        [b.units for b in series.sales_per_10s],
        width=BUCKET_S,
        align="edge",
        color="tab:green",
    )
    sales_ax.set_ylabel("units sold / 10 s")
    sales_ax.yaxis.set_major_locator(MaxNLocator(integer=True))

    if series.viewers:
        _steps(viewers_ax, series.viewers, series.live_until_s, "tab:purple")
        viewers_ax.set_ylim(bottom=0)
    else:
        viewers_ax.text(0.5, 0.5, "no viewer samples", ha="center", transform=viewers_ax.transAxes)
    viewers_ax.set_ylabel("viewers")
    # A drop that is over within 120 s is all "first 120 s": shading all of it says nothing.
    shade_first_view = right > FIRST_VIEW_S
    viewers_ax.set_xlabel(
        "seconds since the drop opened"
        + ("" if shade_first_view else f" (all within the first {FIRST_VIEW_S} s)")
    )

    for ax in (stock_ax, sales_ax, viewers_ax):
        if shade_first_view:
            ax.axvspan(0, FIRST_VIEW_S, color=_HIGHLIGHT, alpha=0.35, lw=0)
        if kpis.drop.closed_at is not None:
            ax.axvline(series.live_until_s, color="tab:red", ls="--", lw=1)
        ax.set_xlim(0, right)
        ax.grid(alpha=0.3)
    marks: list[Artist] = []
    if shade_first_view:
        marks.append(Patch(color=_HIGHLIGHT, alpha=0.35, label=f"first {FIRST_VIEW_S} s"))
    if kpis.drop.closed_at is not None:
        label = f"closed at {series.live_until_s:.0f} s"
        marks.append(Line2D([], [], color="tab:red", ls="--", lw=1, label=label))
    if marks:
        # A legend above the top panel, not text pinned at data positions: labels placed at
        # x = 0 and x = the close collide whenever the drop is short.
        stock_ax.legend(
            handles=marks,
            loc="lower right",
            bbox_to_anchor=(1.0, 1.0),
            ncols=len(marks),
            fontsize=9,
            frameon=False,
            borderaxespad=0.2,
        )
    return figure


def x_end(series: Series) -> float:
    """The chart's right edge in seconds: the drop's own length (opening to close, or now),
    stretched to its last stock change or sales bucket, plus a small margin; a drop that
    never opened gets the first 120 s."""
    last = max(
        [
            series.live_until_s,
            *(p.t_s for p in series.stock_available),
            *(float(b.start_s + BUCKET_S) for b in series.sales_per_10s),
            *(p.t_s for p in series.viewers),
        ]
    )
    if last <= 0:
        return float(FIRST_VIEW_S)
    return last + max(1.0, 0.03 * last)


def _steps(ax: Axes, points: list[Point], end_s: float, color: str) -> None:
    """A step line holding each value until the next point, and the last one to the edge."""
    if not points:
        return
    xs = [p.t_s for p in points] + [max(end_s, points[-1].t_s)]
    ys = [p.value for p in points] + [points[-1].value]
    ax.step(xs, ys, where="post", color=color)
