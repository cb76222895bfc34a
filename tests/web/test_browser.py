"""Headless Chromium (Debian's, driven by Playwright) against the real app: a one-click link
with its countdown, payment and confirmation; the OBS overlay ticking on a sale; the cached
drop page's countdown on the server's clock."""

from __future__ import annotations

import re

from tests.conftest import fill_ship_address, needs_chromium
from tests.helpers import capsule_spec, live_drop

pytestmark = needs_chromium


async def test_buy_through_a_link_and_watch_the_overlay_tick(site, browser, tmp_path):
    from playwright.async_api import expect

    drop_id = await live_drop(site.commerce, capsule_spec(3, hold_seconds=60))
    base = str(site.client.make_url("")).rstrip("/")
    errors: list[str] = []
    context = await browser.new_context()
    page = await context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    await page.goto(f"{base}/c/{site.token(drop_id, 'web:buyer@example.com')}")
    countdown = page.locator(".countdown")
    await expect(countdown).to_have_text(re.compile(r"^[01]:\d\d$"))
    await page.screenshot(path=tmp_path / "held.png")
    await fill_ship_address(page)
    await page.get_by_role("button", name=re.compile("Pay now")).click()
    await expect(page.get_by_role("heading", name="It's yours!")).to_be_visible()
    await page.screenshot(path=tmp_path / "paid.png")

    overlay = await context.new_page()
    overlay.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await overlay.goto(f"{base}/overlay/{drop_id}")
    left = overlay.locator('[data-live="left"]')
    await expect(left).to_have_text("2 of 3 left")
    await expect(overlay.locator(".ov-qr svg")).to_be_visible()
    await expect(overlay.locator('[data-live="headline"]')).to_have_text("Live now")

    token, held = await site.held_page(drop_id, "discord:42")  # a sale over HTTP
    await site.pay(token, held)
    await expect(left).to_have_text("1 of 3 left")  # the open overlay updates itself
    await overlay.screenshot(path=tmp_path / "overlay.png")
    assert (tmp_path / "overlay.png").stat().st_size > 0
    assert not [e for e in errors if "Content Security Policy" in e], errors
    await context.close()


async def test_the_drop_pages_countdown_keeps_the_servers_clock_from_the_stream(site, browser):
    """The page is cached, so it carries no time: the stream's snapshot sets the clock, and
    its heartbeat keeps it (the test's server clock is months from the browser's)."""
    from playwright.async_api import expect

    spec = capsule_spec(3, closes_at="2026-01-01T12:10:00Z")  # the server's now + 10 min
    drop_id = await live_drop(site.commerce, spec)
    site.ctx.heartbeat_seconds = 0.05
    base = str(site.client.make_url("")).rstrip("/")
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{base}/d/{drop_id}")
    countdown = page.locator(".countdown")
    await expect(countdown).to_have_text(re.compile(r"^(10:00|9:\d\d)$"))
    site.clock.advance(300)  # no stock moves: only the heartbeat tells the page
    await expect(countdown).to_have_text(re.compile(r"^(5:00|4:\d\d)$"))
    await context.close()
