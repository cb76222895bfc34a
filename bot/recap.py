"""The closing recap's chart: the drop's KPIs drawn as a PNG, for the platforms that attach
an image to the recap post. Kept out of the presenter, which only words the recap."""

from __future__ import annotations

import asyncio

from commerce.analytics.chart import render_png
from commerce.analytics.kpis import DropAnalytics


class RecapChart:
    def __init__(self, analytics: DropAnalytics) -> None:
        self.analytics = analytics

    async def __call__(self, drop_id: int) -> bytes:
        kpis = await self.analytics.kpis(drop_id)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, render_png, kpis)  # matplotlib: off the loop
