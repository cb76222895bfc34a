"""The recap chart is a real PNG of the documented size, with or without data."""

from __future__ import annotations

import struct
import zlib
from itertools import combinations

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text

from commerce.analytics.chart import HEIGHT_PX, WIDTH_PX, draw, render_png
from commerce.analytics.kpis import DropAnalytics
from commerce.analytics.results import DropKpis
from commerce.dropfile import validate_spec
from tests.analytics.scenario import claim_and_buy
from tests.helpers import capsule_spec, customers, live_drop

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, checking the signature and the chunk's CRC."""
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR")
    body = data[16 : 16 + length]
    (crc,) = struct.unpack(">I", data[16 + length : 20 + length])
    assert crc == zlib.crc32(kind + body)
    width, height = struct.unpack(">II", body[:8])
    assert data.endswith(b"IEND\xaeB`\x82")
    return width, height


def test_the_recap_chart_is_a_1200_by_800_png(seeded):
    assert (WIDTH_PX, HEIGHT_PX) == (1200, 800)
    assert png_size(render_png(seeded.kpis)) == (1200, 800)


async def test_a_drop_with_no_activity_still_draws(commerce):
    drop_id = await commerce.drops.create(validate_spec(capsule_spec(4)))
    kpis = await DropAnalytics(commerce.uow).kpis(drop_id)
    assert png_size(render_png(kpis)) == (1200, 800)


async def kpis_of_a_drop(commerce, clock, sales_at: list[float], closed_at: float) -> DropKpis:
    """A capsule of len(sales_at) units opened now, each unit paid at its offset (s); the
    last sale sells it out (which closes it), else it is closed at ``closed_at``."""
    start = clock.now()
    drop_id = await live_drop(commerce, capsule_spec(len(sales_at) + (closed_at > sales_at[-1])))
    for seconds, person in zip(sales_at, await customers(commerce, len(sales_at)), strict=True):
        clock.set(start)
        clock.advance(seconds)
        await claim_and_buy(commerce, drop_id, person)
    if closed_at > sales_at[-1]:
        clock.set(start)
        clock.advance(closed_at)
        await commerce.drops.close(drop_id)
    kpis = await DropAnalytics(commerce.uow).kpis(drop_id)
    assert kpis.series.live_until_s == closed_at
    return kpis


def overlapping_texts(kpis: DropKpis) -> list[tuple[str, str]]:
    """Every pair of drawn, non-empty texts in the chart whose boxes intersect."""
    figure = draw(kpis)
    canvas = figure.canvas
    assert isinstance(canvas, FigureCanvasAgg)  # ``draw`` gives every figure an Agg canvas
    renderer = canvas.get_renderer()
    figure.draw(renderer)
    off_axis = set()  # tick labels outside the view limits exist but are not drawn
    for ax in figure.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not low <= tick.get_loc() <= high:
                    off_axis |= {id(tick.label1), id(tick.label2)}
    boxes = [
        (t.get_text(), t.get_window_extent(renderer))
        for t in figure.findobj(Text)
        if t.get_visible() and t.get_text().strip() and id(t) not in off_axis
    ]
    return [(a, b) for (a, box_a), (b, box_b) in combinations(boxes, 2) if box_a.overlaps(box_b)]


def x_limits(kpis: DropKpis) -> set[tuple[float, float]]:
    return {ax.get_xlim() for ax in draw(kpis).axes}


async def test_a_nine_second_sell_out_fills_the_axis_and_its_labels_stay_apart(commerce, clock):
    kpis = await kpis_of_a_drop(commerce, clock, [3, 6, 9], closed_at=9)
    assert kpis.drop.close_reason == "sold_out"
    ((left, right),) = x_limits(kpis)  # one shared axis
    assert left == 0 and 9 < right <= 12  # the drop, not a 120 s window around it
    assert overlapping_texts(kpis) == []


@pytest.mark.parametrize("closed_at", [30.0, 125.0, 600.0])
async def test_labels_never_overlap_and_the_axis_ends_with_the_drop(commerce, clock, closed_at):
    kpis = await kpis_of_a_drop(commerce, clock, [2, 20], closed_at=closed_at)
    ((left, right),) = x_limits(kpis)
    assert left == 0 and closed_at < right <= closed_at * 1.1
    assert overlapping_texts(kpis) == []
