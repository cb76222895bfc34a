"""A Twitch viewer with no Discord buys from Twitch chat, in headless Chromium: sign in with
Twitch on the drop page (the fake's real consent page), type !buy in (fake) Twitch chat, the
pay link appears on the signed-in page only, pay. A second account never sees it."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from bot.commands import CommandHandler
from bot.hub import ChatHub
from bot.presenter import Presenter
from bot.twitch import SendPolicy, TwitchBot
from bot.webpage import PageOutlet
from commerce.dropfile import validate_spec
from commerce.links import LinkSigner
from commerce.payments import build_gateways
from commerce.web.app import create_app
from commerce.web.inbox import WebInbox
from tests.conftest import fill_ship_address, needs_chromium
from tests.fakes.discord import FakeDiscord
from tests.fakes.twitch import BOT_SCOPES, FakeTwitch
from tests.helpers import capsule_spec
from tests.web.conftest import SECRET, make_settings

pytestmark = [needs_chromium, pytest.mark.timeout(120)]
FAST = SendPolicy(reply_wait=2.0, retry_delay=0.05, gather=0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_twitch_viewer_signs_in_buys_in_twitch_chat_and_pays_on_the_page(
    commerce: Any, clock: Any, browser: Any
) -> None:
    from playwright.async_api import expect

    base = f"http://127.0.0.1:{free_port()}"
    async with FakeTwitch() as fake:
        shop = fake.add_user("dropshop", display_name="DropShop")
        bot_user = fake.add_user("dropcastbot")
        ann = fake.add_user("ann_tv", display_name="AnnTV")
        bob = fake.add_user("bob_tv", display_name="BobTV")
        token = fake.add_user_token(bot_user, BOT_SCOPES)
        fake.add_user_token(shop, ["channel:bot"])
        fake.add_redirect_uri(f"{base}/signin/twitch/callback")
        settings = make_settings(
            web={"public_url": base},
            twitch={
                "client_id": fake.client_id,
                "client_secret": fake.client_secret,
                "bot_id": bot_user.id,
                "bot_token": token.access_token,
                "bot_refresh_token": token.refresh_token,
                "channel": "dropshop",
                "api_base": fake.helix_base,
                "id_base": fake.id_base,
                "eventsub_url": fake.eventsub_url,
            },
        )
        signer = LinkSigner(SECRET, clock, settings.security.link_ttl_seconds)

        async def issue(drop_id: int, identity: str) -> str:
            return f"{base}/c/{signer.issue(drop_id, identity)[0]}"

        inbox = WebInbox(commerce.customers)
        app = create_app(
            commerce,
            settings,
            signer,
            build_gateways(settings.payments, commerce.clock),
            secret=SECRET,
            inbox=inbox,
        )
        server = TestServer(app, port=int(base.rsplit(":", 1)[1]))
        await server.start_server()
        hub = ChatHub(commerce, Presenter(commerce, base), issue, thresholds=[1], edit_interval=0.2)
        hub.add_outlet(PageOutlet(inbox))
        await hub.start()
        handler = CommandHandler(commerce, issue, public_url=base)
        bot = TwitchBot(settings.twitch, handler, hub, commerce, policy=FAST)
        handler.reachability["twitch"] = bot.reachable  # as the composition root does
        await bot.start()
        await fake.wait_for_subscription("channel.chat.message")
        drop_id = await commerce.drops.create(validate_spec(capsule_spec(3)))
        await commerce.drops.open(drop_id)
        try:
            # Ann signs in with Twitch on the drop page: the fake's consent page, Authorize.
            fake.browser_user = ann
            ann_page = await (await browser.new_context()).new_page()
            await ann_page.goto(f"{base}/d/{drop_id}")
            await ann_page.click("a[data-signin=twitch]")
            await ann_page.click("#authorize")
            await expect(ann_page.locator("[data-me-names]")).to_have_text("AnnTV (twitch)")
            await expect(ann_page.locator("[data-signin-choices]")).to_be_hidden()

            # Bob signs in too, in his own browser, and watches the same page.
            fake.browser_user = bob
            bob_page = await (await browser.new_context()).new_page()
            await bob_page.goto(f"{base}/d/{drop_id}")
            await bob_page.click("a[data-signin=twitch]")
            await bob_page.click("#authorize")
            await expect(bob_page.locator("[data-me-names]")).to_have_text("BobTV (twitch)")

            # Ann types !buy in Twitch chat: no Discord, no whisper; the page has her link.
            said = await fake.send_chat_message(shop, ann, "!buy")
            assert said.delivered == 1
            line = await fake.wait_for(
                lambda: [m for m in fake.sent_chat_messages if "@ann_tv" in m.text]
            )
            assert "on the drop page you signed in to" in line[0].text
            assert "/c/" not in line[0].text  # never a personal link in public chat
            pay = ann_page.locator("a[data-pay-link]")
            await expect(pay).to_have_count(1)
            await expect(bob_page.locator("[data-holds]")).to_be_hidden()
            assert await bob_page.locator("a[data-pay-link]").count() == 0

            await pay.click()
            await fill_ship_address(ann_page)
            await ann_page.click("button[name=provider]")
            await expect(ann_page.locator("h1")).to_have_text("It's yours!")
            # Back on the drop page she signed in to, her panel has the order.
            await ann_page.goto(f"{base}/d/{drop_id}")
            await expect(ann_page.locator("[data-order]")).to_contain_text(": paid, $12.00.")

            # A reload: Bob's page still shows no hold of his (or Ann's).
            await bob_page.reload()
            await expect(bob_page.locator("[data-me-names]")).to_have_text("BobTV (twitch)")
            assert await bob_page.locator("a[data-pay-link]").count() == 0
        finally:
            await bot.close()
            await hub.stop()
            await server.close()


async def test_a_discord_viewer_signs_in_on_the_drop_page_claims_and_pays(
    commerce: Any, clock: Any, browser: Any
) -> None:
    """Discord's consent page (PKCE checked by the fake), then a claim from the page as the
    signed-in viewer; Cancel on the consent page signs no one in."""
    from playwright.async_api import expect

    base = f"http://127.0.0.1:{free_port()}"
    async with FakeDiscord() as fake:
        ann = fake.add_user("ann")
        fake.add_redirect_uri(f"{base}/signin/discord/callback")
        settings = make_settings(
            web={"public_url": base},
            discord={
                "client_id": fake.oauth_client_id,
                "client_secret": fake.oauth_client_secret,
                "api_base": fake.api_base,
            },
        )
        signer = LinkSigner(SECRET, clock, settings.security.link_ttl_seconds)
        app = create_app(
            commerce,
            settings,
            signer,
            build_gateways(settings.payments, commerce.clock),
            secret=SECRET,
        )
        server = TestServer(app, port=int(base.rsplit(":", 1)[1]))
        await server.start_server()
        drop_id = await commerce.drops.create(validate_spec(capsule_spec(3)))
        await commerce.drops.open(drop_id)
        try:
            fake.browser_user = ann
            page = await (await browser.new_context()).new_page()
            await page.goto(f"{base}/d/{drop_id}")
            await page.click("a[data-signin=discord]")
            await page.click("#cancel")
            await expect(page.locator("h1")).to_have_text("Sign-in did not work")

            await page.goto(f"{base}/d/{drop_id}")
            await page.click("a[data-signin=discord]")
            await page.click("#authorize")
            await expect(page.locator("[data-me-names]")).to_have_text("ann (discord)")
            await page.click("form.claim button")
            await fill_ship_address(page)
            await page.click("button[name=provider]")
            await expect(page.locator("h1")).to_have_text("It's yours!")
            customer = await commerce.customers.find(f"discord:{ann.id}")
            assert customer is not None
            assert (await commerce.customers.get(customer)).verified == (f"discord:{ann.id}",)
        finally:
            await server.close()
