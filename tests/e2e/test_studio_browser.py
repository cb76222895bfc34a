"""The studio chat in headless Chromium: type !buy, get a private link, pay, see the tick."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import AnyHttpUrl

from bot.commands import CommandHandler
from bot.hub import ChatHub
from bot.presenter import Presenter
from bot.studio.outlet import StudioOutlet
from commerce.links import LinkSigner
from tests.conftest import fill_ship_address, needs_chromium
from tests.helpers import capsule_spec
from tests.web.conftest import ADMIN, SECRET, make_settings, web_app

pytestmark = [needs_chromium, pytest.mark.timeout(90)]


async def test_a_viewer_buys_in_the_studio_pays_and_sees_the_tick(
    commerce, clock, browser, tmp_path
):
    from playwright.async_api import expect

    from commerce.dropfile import validate_spec

    settings = make_settings()
    signer = LinkSigner(SECRET, clock, settings.security.link_ttl_seconds)
    base: list[str] = []

    async def issue(drop_id: int, identity: str) -> str:
        return f"{base[0]}/c/{signer.issue(drop_id, identity)[0]}"

    handler = CommandHandler(commerce, issue, public_url="http://studio.test")
    hub = ChatHub(
        commerce,
        Presenter(commerce, "http://studio.test"),
        issue,
        thresholds=[1],
        edit_interval=0.2,
    )
    studio = StudioOutlet(handler, per_ip=0, per_session=0)
    hub.add_outlet(studio)
    app, gateways = web_app(commerce, settings, signer, studio.routes())
    client = TestClient(TestServer(app))
    await client.start_server()
    base.append(str(client.make_url("")).rstrip("/"))
    settings.web.public_url = AnyHttpUrl(base[0])  # the studio takes tabs from here only
    await hub.start()
    drop_id = await commerce.drops.create(validate_spec(capsule_spec(3)))
    errors: list[str] = []
    context = await browser.new_context()
    try:
        page = await context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        await page.goto(f"{base[0]}/studio")
        # Not signed in at the dashboard: no "creator" box, and a word on how to get one.
        await expect(page.locator("#signin")).to_be_visible()
        await expect(page.locator("#creator")).to_be_hidden()
        await page.fill("#name", "ann")
        await commerce.drops.open(drop_id)  # the hub announces it in the studio
        live = page.locator(".bot", has_text="LIVE").first  # edited in place as stock ticks
        await expect(live).to_contain_text("LIVE NOW")
        # The status bar shows the drop's one headline, as the drop page does.
        await expect(page.locator("#status .headline")).to_have_text("Live now")
        await expect(page.locator("#status .detail")).to_have_text("3 of 3 left")

        await page.fill("#text", "!buy")
        await page.press("#text", "Enter")
        pay_link = page.get_by_role("link", name=re.compile("Pay now"))
        await expect(pay_link).to_be_visible()
        await expect(live).to_contain_text("2 of 3 left")  # the live message was edited
        await expect(page.locator("#status .detail")).to_have_text("2 of 3 left")
        await page.screenshot(path=tmp_path / "studio.png")

        async with context.expect_page() as opened:
            await pay_link.click()
        checkout = await opened.value
        await fill_ship_address(checkout)
        await checkout.get_by_role("button", name=re.compile("Pay now")).click()
        await expect(checkout.get_by_role("heading", name="It's yours!")).to_be_visible()
        # The private pay message in the studio now says it is paid; no pay link left.
        paid = page.locator(".bot.private.paid")
        await expect(paid).to_contain_text("Paid, thank you!")
        await expect(page.get_by_role("link", name=re.compile("Pay now"))).to_have_count(0)
        await page.screenshot(path=tmp_path / "studio-paid.png")

        # Signed in at the dashboard, the same browser's studio tab is the creator's.
        await page.goto(f"{base[0]}/dashboard?token={ADMIN}")
        await page.goto(f"{base[0]}/studio")
        await expect(page.locator("#creator")).to_be_checked()
        await expect(page.locator("#signin")).to_be_hidden()
        await page.fill("#name", "host")
        await page.fill("#text", f"!drop close {drop_id}")
        await page.press("#text", "Enter")
        await expect(page.locator(".chat", has_text="host (creator)")).to_be_visible()
        await expect(page.locator(".bot", has_text=f"Drop {drop_id} is closed.")).to_be_visible()
    finally:
        await context.close()  # its open tabs would hold the server's shutdown up
        await hub.stop()
        await client.close()
        await gateways.close()
    view = await commerce.drops.view(drop_id)
    assert (view.stock[0].sold, view.stock[0].available) == (1, 2)
    assert (await commerce.drops.get(drop_id)).state == "closed"
    assert errors == []
