"""A ship hold in headless Chromium: pick a country and watch shipping and the total follow
it, fill the address, pay, and read the receipt with the address on it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from commerce.dropfile import validate_spec
from commerce.links import LinkSigner
from commerce.payments import build_gateways
from commerce.web.app import create_app
from tests.conftest import fill_ship_address, needs_chromium
from tests.helpers import capsule_spec
from tests.web.conftest import SECRET, make_settings

pytestmark = [needs_chromium, pytest.mark.timeout(90)]


async def test_a_buyer_picks_a_country_sees_the_total_fills_the_address_and_pays(
    commerce: Any, clock: Any, browser: Any, tmp_path: Any
) -> None:
    from playwright.async_api import expect

    settings = make_settings()
    signer = LinkSigner(SECRET, clock, settings.security.link_ttl_seconds)
    app = create_app(
        commerce, settings, signer, build_gateways(settings.payments, commerce.clock), secret=SECRET
    )
    client = TestClient(TestServer(app))
    await client.start_server()
    spec = capsule_spec(3, hold_seconds=120, shipping={"US": "5.00", "*": "14.00"})
    drop_id = await commerce.drops.create(validate_spec(spec))
    await commerce.drops.open(drop_id)
    base = str(client.make_url("")).rstrip("/")
    errors: list[str] = []
    context = await browser.new_context(locale="en-GB")
    try:
        page = await context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        token, _ = signer.issue(drop_id, "web:buyer@example.com")
        await page.goto(f"{base}/c/{token}")
        await expect(page.locator(".countdown")).to_have_text(re.compile(r"^[0-2]:\d\d$"))
        shipping, total = page.locator("[data-ship-amount]"), page.locator("[data-ship-total]")
        # The reader's country (en-GB) comes chosen, priced by the drop's "*" rate.
        await expect(page.locator("select[name=country]")).to_have_value("GB")
        await expect(shipping).to_have_text(re.compile(r"\$14\.00$"))
        await expect(total).to_have_text(re.compile(r"\$26\.00$"))

        country = page.locator("select[name=country]")
        await country.select_option("US")
        await expect(shipping).to_have_text(re.compile(r"\$5\.00$"))
        await expect(total).to_have_text(re.compile(r"\$17\.00$"))
        await country.select_option("DE")
        await expect(shipping).to_have_text(re.compile(r"\$14\.00$"))
        await expect(total).to_have_text(re.compile(r"\$26\.00$"))
        await page.screenshot(path=tmp_path / "address.png")

        await fill_ship_address(
            page,
            line1="221B Baker Street",
            city="London",
            postal_code="NW1 6XE",
            region="",
            country="GB",
        )
        await page.get_by_role("button", name=re.compile("Pay now")).click()
        await expect(page.get_by_role("heading", name="It's yours!")).to_be_visible()
        receipt = page.locator("[data-ship-to]")
        await expect(receipt).to_contain_text("221B Baker Street")
        await expect(receipt).to_contain_text("United Kingdom")
        await expect(page.locator(".receipt .total")).to_contain_text("26.00")
        await page.screenshot(path=tmp_path / "receipt.png")
        assert not [e for e in errors if "Content Security Policy" in e], errors
    finally:
        await context.close()
        await client.close()
