"""The aiohttp side of dropcast: one-click checkout, live drop page, OBS overlay, admin API."""
