"""Each state of a drop has one headline and the right action, the same on the drop page
and the overlay, and both follow the drop live: scheduled → live → sold out → closed, and
live again after a restock. In Debian's Chromium; a screenshot of each state."""

from __future__ import annotations

import re

from commerce.dropfile import validate_spec
from commerce.views import drop_status
from tests.conftest import needs_chromium
from tests.helpers import capsule_spec

pytestmark = needs_chromium


async def test_the_page_and_overlay_show_one_headline_per_state(site, browser, tmp_path):
    from playwright.async_api import expect

    commerce = site.commerce
    drop_id = await commerce.drops.create(validate_spec(capsule_spec(2, opens_at="+10m")))
    base = str(site.client.make_url("")).rstrip("/")
    context = await browser.new_context()
    errors: list[str] = []
    page = await context.new_page()
    overlay = await context.new_page()
    for tab in (page, overlay):
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.on(
            "response",
            lambda r: (
                errors.append(f"{r.status} {r.url}")
                if r.status >= 400 and not r.url.endswith("/favicon.ico")
                else None
            ),
        )
    await page.goto(f"{base}/d/{drop_id}")
    await overlay.goto(f"{base}/overlay/{drop_id}")
    headline = page.locator('[data-live="headline"]')
    button = page.locator("form.claim button")
    on_air = overlay.locator('[data-live="headline"]')

    async def shows(state: str, words: str) -> None:
        view = await commerce.drops.view(drop_id)
        assert drop_status(view).headline == words  # the server's one wording
        await expect(headline).to_have_text(words)
        await expect(on_air).to_have_text(words)
        await page.screenshot(path=tmp_path / f"page-{state}.png")
        await overlay.screenshot(path=tmp_path / f"overlay-{state}.png")

    await shows("scheduled", "Starting soon")
    await expect(button).to_be_disabled()
    await expect(overlay.locator('[data-live="countdown"]')).to_have_text(re.compile("Starts in"))

    await commerce.drops.open(drop_id)
    await shows("live", "Live now")
    await expect(button).to_have_text("Claim one")
    await expect(button).to_be_enabled()
    await expect(page.locator('[data-live="detail"]')).to_have_text("2 of 2 left")
    await expect(overlay.locator('[data-live="left"]')).to_have_text("2 of 2 left")

    first, first_page = await site.held_page(drop_id, "discord:1")
    second, second_page = await site.held_page(drop_id, "discord:2")
    await shows("sold-out", "Sold out")
    await expect(button).to_have_text("Join the waitlist")
    await expect(overlay.locator('[data-live="stock"]')).to_be_hidden()

    await site.pay(first, first_page)
    await site.pay(second, second_page)  # every unit sold: the drop closes
    await shows("closed", "Sold out · closed")
    await expect(page.locator("form.claim")).to_be_hidden()

    await site.client.post(
        f"/api/drops/{drop_id}/restock", json={"sku": "CHIPS-SPICY", "units": 3}, headers=site.admin
    )
    await shows("restocked", "Live now")
    await expect(page.locator('[data-live="detail"]')).to_have_text("3 of 5 left")
    await expect(button).to_be_enabled()

    await commerce.drops.close(drop_id)
    await shows("closed-by-creator", "Closed")
    await expect(page.locator("form.claim")).to_be_hidden()
    assert not errors, errors
    await context.close()


async def test_a_bundle_drop_counts_bundles_on_the_page(site, browser):
    from playwright.async_api import expect

    from tests.helpers import bundle_spec, live_drop

    drop_id = await live_drop(site.commerce, bundle_spec(chips=8, salsa=3))
    base = str(site.client.make_url("")).rstrip("/")
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{base}/d/{drop_id}")
    await expect(page.locator('[data-live="detail"]')).to_have_text("3 of 3 bundles left")
    await expect(page.locator(".muted")).to_contain_text("One bundle per person.")
    await context.close()
