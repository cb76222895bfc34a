"""The creator's Orders page in headless Chromium: sign in at the dashboard, open a drop's
orders, filter by status, download the packing list, refund one order with its button and
mark another shipped; the statuses on the page follow."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from commerce.domain.model import Address, ClaimOutcome, DeskStatus, Money, OrderStatus
from commerce.links import LinkSigner
from commerce.payments import build_gateways
from commerce.web.app import create_app
from tests.conftest import needs_chromium
from tests.e2e.processes import free_port
from tests.helpers import capsule_spec, live_drop
from tests.web.conftest import ADMIN, SECRET, make_settings

pytestmark = [needs_chromium, pytest.mark.timeout(120)]
ANN = Address("Ann Lee", "1 Main St", "Springfield", "12345", "US")


async def paid_order(commerce: Any, drop_id: int, identity: str) -> Any:
    customer = await commerce.customers.resolve(identity)
    held = await commerce.claims.claim(drop_id, customer)
    assert held.outcome is ClaimOutcome.HELD, held
    order = await commerce.orders.checkout(
        held.hold.id, customer, "test", ship_to=ANN, shipping=Money(500, "USD")
    )
    return (await commerce.orders.confirm_payment(order.id, f"pi_{order.id}")).order


async def test_the_admin_filters_downloads_refunds_and_ships_on_the_orders_page(
    commerce: Any, clock: Any, browser: Any, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    base = f"http://127.0.0.1:{free_port()}"
    settings = make_settings(web={"public_url": base})
    signer = LinkSigner(SECRET, clock, settings.security.link_ttl_seconds)
    app = create_app(
        commerce, settings, signer, build_gateways(settings.payments, commerce.clock), secret=SECRET
    )
    server = TestServer(app, port=int(base.rsplit(":", 1)[1]))
    await server.start_server()
    try:
        drop_id = await live_drop(commerce, capsule_spec(5))
        ann, bob, cy = [await paid_order(commerce, drop_id, f"discord:{i}") for i in (1, 2, 3)]
        await commerce.orders.ship(cy.id, "DHL", "JD0001")

        context = await browser.new_context(accept_downloads=True)
        page = await context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        await page.goto(f"{base}/dashboard?drop={drop_id}&token={ADMIN}")
        await page.locator("[data-orders]").click()
        await expect(page).to_have_url(f"{base}/dashboard/drops/{drop_id}/orders")
        rows = page.locator("table[data-orders] tbody tr[data-order]")
        await expect(rows).to_have_count(3)

        await page.locator('[data-filter="paid"]').click()
        await expect(rows).to_have_count(2)
        await expect(page.locator(f'tr[data-order="{cy.id}"]')).to_have_count(0)
        await page.locator('[data-filter="all"]').click()
        await expect(rows).to_have_count(3)

        async with page.expect_download() as info:
            await page.locator("[data-csv]").click()
        download = await info.value
        saved = tmp_path / "packing.csv"
        await download.save_as(saved)
        packed = list(csv.DictReader(io.StringIO(saved.read_text())))
        assert sorted(int(r["order"]) for r in packed) == [ann.id, bob.id, cy.id]
        assert {r["name"] for r in packed} == {"Ann Lee"}

        row = page.locator(f'tr[data-order="{ann.id}"]')
        await row.locator('[data-refund] input[name="reason"]').fill("out of stock")
        await row.locator("[data-refund] button").click()
        await expect(page.locator("[data-notice]")).to_contain_text(f"Order #{ann.id} refunded")
        await expect(row.locator("[data-status]")).to_have_text("refunded")
        await expect(row.locator("[data-refund]")).to_have_count(0)

        row = page.locator(f'tr[data-order="{bob.id}"]')
        await row.locator('[data-ship] input[name="carrier"]').fill("UPS")
        await row.locator('[data-ship] input[name="tracking"]').fill("1Z42")
        await row.locator("[data-ship] button").click()
        await expect(page.locator("[data-notice]")).to_contain_text(f"Order #{bob.id} marked")
        await expect(row.locator("[data-status]")).to_have_text("shipped")
        await expect(row.locator("[data-tracking]")).to_have_text("UPS 1Z42")
        await page.screenshot(path=tmp_path / "orders.png", full_page=True)

        assert (await commerce.orders.get(ann.id)).status is OrderStatus.REFUNDED
        assert (await commerce.orders.get(bob.id)).desk_status is DeskStatus.SHIPPED
        assert not [e for e in errors if "Content Security Policy" in e], errors
        await context.close()
    finally:
        await server.close()
