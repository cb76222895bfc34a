"""The recap chart: stock over time, sales per 10 s and the viewer curve, the first 120 s
shaded. PNG bytes, so the CLI can write a file and a bot can attach it to a recap post.

matplotlib is imported only when a chart is drawn (it is slow to import and most processes
never draw), and through its Agg canvas directly: no pyplot, no global backend state.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from commerce.analytics.kpis import BUCKET_S, FIRST_VIEW_S
from commerce.analytics.results import DropKpis, Point, headline

if TYPE_CHECKING:
    from matplotlib.axes import Axes

WIDTH_PX, HEIGHT_PX, DPI = 1200, 800, 100
_HIGHLIGHT = "#ffd54f"


def render_png(kpis: DropKpis) -> bytes:
    """Draw the recap chart as a PNG of WIDTH_PX × HEIGHT_PX."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    stock_ax, sales_ax, viewers_ax = figure.subplots(3, 1, sharex=True)
    series = kpis.series
    figure.suptitle(f"Drop {kpis.drop.id}: {kpis.drop.title}\n{headline(kpis)}", fontsize=13)

    _steps(stock_ax, series.stock_available, series.end_s, "tab:blue")
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
    viewers_ax.set_xlabel("seconds since the drop opened")

    for ax in (stock_ax, sales_ax, viewers_ax):
        ax.axvspan(0, FIRST_VIEW_S, color=_HIGHLIGHT, alpha=0.35, lw=0)
        if kpis.drop.closed_at is not None:
            ax.axvline(series.live_until_s, color="tab:red", ls="--", lw=1)
        ax.set_xlim(0, series.end_s)
        ax.grid(alpha=0.3)
    stock_ax.text(2, 1.02, "first 120 s", transform=stock_ax.get_xaxis_transform(), fontsize=9)
    if kpis.drop.closed_at is not None:
        stock_ax.text(
            series.live_until_s,
            1.02,
            " closed",
            transform=stock_ax.get_xaxis_transform(),
            fontsize=9,
            color="tab:red",
        )

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)  # no bbox_inches: keep the exact size
    return buffer.getvalue()


def _steps(ax: Axes, points: list[Point], end_s: float, color: str) -> None:
    """A step line holding each value until the next point, and the last one to the edge."""
    if not points:
        return
    xs = [p.t_s for p in points] + [max(end_s, points[-1].t_s)]
    ys = [p.value for p in points] + [points[-1].value]
    ax.step(xs, ys, where="post", color=color)
