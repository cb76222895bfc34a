"""The embeddable widget: ``/embed.js`` and ``<dropcast-drop>`` on another website.

Over HTTP: the script (a module, hashed ETag, 304, small), and CORS on what it reads, open
to every website by default and to the listed origins only when ``web.embed_origins`` says.
In Debian's Chromium: a page served from another origin under a strict CSP (no inline
script or style) shows the drop counting down, going live, ticking as units sell, sold out
and closed, and its Claim button buys in a popup on the shop's origin; a screenshot of each
state. A website not listed gets no widget."""

from __future__ import annotations

import gzip
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestServer

from commerce.dropfile import validate_spec
from commerce.web.sessions import COOKIE as SESSION_COOKIE
from config.settings import Settings
from tests.conftest import fill_ship_address, needs_chromium
from tests.helpers import capsule_spec, live_drop
from tests.web.conftest import Web, WebFactory

ALLOW = "Access-Control-Allow-Origin"


def origin_of(server: BaseTestServer) -> str:
    return str(server.make_url("")).rstrip("/")


HostPage = Callable[[str, int], Awaitable[str]]


@pytest.fixture
async def host_page() -> AsyncIterator[HostPage]:
    """Another website (its own port: another origin) whose page embeds a drop the way the
    README says, under a CSP that allows no inline script or style; returns its URL."""
    servers: list[TestServer] = []

    async def serve(shop: str, drop_id: int) -> str:
        html = (
            "<!doctype html><html><head><title>A creator's shop</title>"
            f'<script type="module" src="{shop}/embed.js"></script></head><body>'
            "<h1>Our own site</h1>"
            f'<dropcast-drop drop="{drop_id}" theme="dark"></dropcast-drop>'
            "</body></html>"
        )
        csp = (
            f"default-src 'none'; script-src {shop}; connect-src {shop}; "
            "style-src 'none'; img-src 'none'"
        )

        async def page(request: web.Request) -> web.Response:
            return web.Response(
                text=html, content_type="text/html", headers={"Content-Security-Policy": csp}
            )

        app = web.Application()
        app.router.add_get("/", page)
        server = TestServer(app)
        await server.start_server()
        servers.append(server)
        return f"{origin_of(server)}/"

    yield serve
    for server in servers:
        await server.close()


async def test_the_script_is_a_small_cacheable_module_any_website_may_load(site: Web) -> None:
    response = await site.client.get("/embed.js", headers={"Origin": "https://fan.example"})
    body = await response.read()
    assert response.status == 200
    assert response.headers["Content-Type"].split(";")[0] in (
        "application/javascript",
        "text/javascript",
    )
    assert response.headers[ALLOW] == "*"
    assert "public" in response.headers["Cache-Control"]
    assert b'customElements.define("dropcast-drop"' in body
    assert len(gzip.compress(body)) < 15 * 1024
    etag = response.headers["ETag"]
    again = await site.client.get("/embed.js", headers={"If-None-Match": etag})
    assert again.status == 304
    assert again.headers[ALLOW] == "*"
    # The same bytes at their hashed name, cached for good.
    hashed = site.ctx.assets.url("embed.js")
    copy = await site.client.get(hashed)
    assert await copy.read() == body
    assert "immutable" in copy.headers["Cache-Control"]


async def test_what_the_widget_reads_is_open_to_other_websites(site: Web) -> None:
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    other = {"Origin": "https://fan.example"}
    state = await site.client.get(f"/api/drops/{drop_id}", headers=other)
    data = await state.json()
    assert state.headers[ALLOW] == "*"
    # The price as data, for the widget to write in the visitor's locale.
    assert (data["price_minor"], data["currency"]) == (1200, "USD")
    unchanged = await site.client.get(
        f"/api/drops/{drop_id}", headers={**other, "If-None-Match": state.headers["ETag"]}
    )
    assert unchanged.status == 304
    assert unchanged.headers[ALLOW] == "*"
    async with site.client.get(f"/api/drops/{drop_id}/stream", headers=other) as stream:
        assert stream.headers[ALLOW] == "*"
        assert stream.headers["Content-Type"].startswith("text/event-stream")
    # The drop page itself is not for other websites' scripts.
    page = await site.client.get(f"/d/{drop_id}", headers=other)
    assert ALLOW not in page.headers


async def test_listed_origins_alone_may_embed(make_web: WebFactory) -> None:
    shop = await make_web(web={"embed_origins": ["https://shop.example", "http://127.0.0.1:8500"]})
    drop_id = await live_drop(shop.commerce, capsule_spec(3))
    for path in ("/embed.js", f"/api/drops/{drop_id}"):
        listed = await shop.client.get(path, headers={"Origin": "https://shop.example"})
        assert listed.headers[ALLOW] == "https://shop.example"
        assert "Origin" in listed.headers["Vary"]
        stranger = await shop.client.get(path, headers={"Origin": "https://evil.example"})
        assert stranger.status == 200  # readable by the shop's own pages, not by evil's
        assert ALLOW not in stranger.headers
        assert "Origin" in stranger.headers["Vary"]  # a shared cache keeps them apart


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("shop.example", "is not an origin such as https://shop.example"),
        ("https://shop.example/store", "only scheme, host and port"),
        ("ftp://shop.example", "is not an origin"),
        ("https://shop.example:99999", "invalid port"),
    ],
)
def test_a_bad_embed_origin_is_named(entry: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)) as raised:
        Settings(web={"embed_origins": [entry]})
    assert entry in str(raised.value)


def test_embed_origins_are_written_as_browsers_send_them() -> None:
    settings = Settings(
        web={"embed_origins": ["https://Shop.Example/", "https://a.example:443", "http://b:8080"]}
    )
    assert settings.web.embed_origins == [
        "https://shop.example",
        "https://a.example",
        "http://b:8080",
    ]


@needs_chromium
@pytest.mark.timeout(120)
async def test_the_widget_on_another_website_follows_the_drop_and_sells_in_a_popup(
    site: Web, browser: Any, host_page: HostPage, tmp_path: Any
) -> None:
    from playwright.async_api import expect

    commerce = site.commerce
    shop = origin_of(site.client.server)
    drop_id = await commerce.drops.create(validate_spec(capsule_spec(2, opens_at="+10m")))
    context = await browser.new_context(locale="de-DE")
    await context.add_cookies(
        [{"name": SESSION_COOKIE, "value": await site.session_cookie("twitch:77"), "url": shop}]
    )
    problems: list[str] = []
    page = await context.new_page()
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    await page.goto(await host_page(shop, drop_id))
    widget = page.locator("dropcast-drop")
    headline = widget.locator(".headline")
    countdown = widget.locator(".countdown")
    claim = widget.locator("a.claim")
    bar = widget.locator("progress")

    async def shows(state: str, words: str) -> None:
        await expect(headline).to_have_text(words)
        await widget.screenshot(path=tmp_path / f"widget-{state}.png")

    await shows("scheduled", "Starting soon")
    await expect(widget.locator(".title")).to_have_text("Spicy chips capsule")
    await expect(widget.locator(".price")).to_have_text(re.compile(r"^12,00\s\$$"))  # de-DE
    await expect(countdown).to_have_text(re.compile(r"^Starts in (10:00|9:\d\d)$"))
    first = await countdown.text_content()
    await expect(countdown).not_to_have_text(first or "")  # it counts down
    await expect(claim).to_have_attribute("aria-disabled", "true")
    await expect(bar).to_be_hidden()

    await site.client.post(f"/api/drops/{drop_id}/open", headers=site.admin)
    await shows("live", "Live now")
    await expect(widget.locator(".detail")).to_have_text("2 of 2 left")
    await expect(claim).to_have_text("Claim")
    await expect(bar).to_have_js_property("value", 2)

    held_token, held_page = await site.held_page(drop_id, "discord:1")  # a sale elsewhere
    await expect(widget.locator(".detail")).to_have_text("1 of 2 left")
    await expect(bar).to_have_js_property("value", 1)
    await widget.screenshot(path=tmp_path / "widget-ticked.png")

    async with context.expect_page() as opened:
        await claim.click()
    popup = await opened.value
    await popup.wait_for_load_state()
    assert popup.url.startswith(f"{shop}/d/{drop_id}")  # first-party: the shop's own page
    await popup.locator("form.claim button").click()
    await shows("sold-out", "Sold out")
    await expect(claim).to_have_text("Join the waitlist")
    await fill_ship_address(popup)
    await popup.click("button[name=provider]")
    await expect(popup.locator("h1")).to_have_text("It's yours!")
    await popup.screenshot(path=tmp_path / "popup-paid.png")

    await site.pay(held_token, held_page)  # every unit sold: the drop closes
    await shows("closed", "Sold out · closed")
    await expect(claim).to_be_hidden()
    await expect(countdown).to_have_text("")
    buyer = await commerce.customers.resolve("twitch:77")
    assert [o.status.value for o in await commerce.orders.settled_of(drop_id, buyer)] == ["paid"]
    assert not problems, problems
    await context.close()


@needs_chromium
async def test_a_website_not_listed_gets_no_widget(
    make_web: WebFactory, browser: Any, host_page: HostPage
) -> None:
    shop = await make_web(web={"embed_origins": ["https://shop.example"]})
    drop_id = await live_drop(shop.commerce, capsule_spec(2))
    context = await browser.new_context()
    page = await context.new_page()
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if m.type == "error" else None)
    await page.goto(await host_page(origin_of(shop.client.server), drop_id))
    await page.wait_for_function("() => document.readyState === 'complete'")
    assert await page.evaluate("() => customElements.get('dropcast-drop') === undefined")
    assert any("CORS" in line or "Access-Control-Allow-Origin" in line for line in refused)
    await context.close()
