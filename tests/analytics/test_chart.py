"""The recap chart is a real PNG of the documented size, with or without data."""

from __future__ import annotations

import struct
import zlib

from commerce.analytics import DropAnalytics
from commerce.analytics.chart import HEIGHT_PX, WIDTH_PX, render_png
from commerce.dropfile import validate_spec
from tests.helpers import capsule_spec

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
