"""Sign in with Twitch and with Discord (OAuth authorization code + PKCE + state) against
the local fakes of both platforms, and what a signed-in browser may then do."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from commerce.web.sessions import COOKIE as SESSION_COOKIE
from commerce.web.sessions import Session, Signed
from commerce.web.signin import pkce_challenge, remember
from tests.fakes.discord import FakeDiscord
from tests.fakes.twitch import FakeTwitch
from tests.helpers import capsule_spec, live_drop
from tests.web.conftest import Web, WebFactory
from tests.web.test_live import open_stream


@dataclass
class Platforms:
    twitch: FakeTwitch
    discord: FakeDiscord
    site: Web

    def fake(self, platform: str) -> Any:
        return self.twitch if platform == "twitch" else self.discord


def platform_settings(twitch: FakeTwitch, discord: FakeDiscord) -> dict[str, Any]:
    return {
        "twitch": {
            "client_id": twitch.client_id,
            "client_secret": twitch.client_secret,
            "id_base": twitch.id_base,
            "api_base": twitch.helix_base,
        },
        "discord": {
            "client_id": discord.oauth_client_id,
            "client_secret": discord.oauth_client_secret,
            "api_base": discord.api_base,
        },
    }


@pytest.fixture
async def platforms(make_web: WebFactory) -> AsyncIterator[Platforms]:
    async with FakeTwitch() as twitch, FakeDiscord() as discord:
        site = await make_web(**platform_settings(twitch, discord))
        base = site.ctx.base_url
        twitch.add_redirect_uri(f"{base}/signin/twitch/callback")
        discord.add_redirect_uri(f"{base}/signin/discord/callback")
        yield Platforms(twitch, discord, site)


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def start(site: Web, platform: str, next_path: str = "/") -> str:
    response = await site.client.get(
        f"/signin/{platform}", params={"next": next_path}, allow_redirects=False
    )
    assert response.status == 302, await response.text()
    return response.headers["Location"]


async def sign_in(p: Platforms, platform: str, user: Any, next_path: str = "/") -> Any:
    authorize = await start(p.site, platform, next_path)
    back = p.fake(platform).approve(authorize, user)
    return await p.site.client.get(path_of(back), allow_redirects=False)


async def test_sign_in_with_twitch_asks_no_scope_and_sends_pkce_and_state(platforms):
    authorize = await start(platforms.site, "twitch")
    query = parse_qs(urlsplit(authorize).query)
    assert query["client_id"] == [platforms.twitch.client_id]
    assert query.get("scope", [""]) == [""]
    assert query["code_challenge_method"] == ["S256"] and len(query["state"][0]) >= 32
    discord = parse_qs(urlsplit(await start(platforms.site, "discord")).query)
    assert discord["scope"] == ["identify"]
    # RFC 7636, appendix B
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


async def test_signing_in_with_twitch_then_discord_makes_one_customer(platforms):
    ann_twitch = platforms.twitch.add_user("ann_tv", display_name="AnnTV")
    ann_discord = platforms.discord.add_user("ann")
    done = await sign_in(platforms, "twitch", ann_twitch, "/d/7")
    assert done.status == 303 and done.headers["Location"] == "/d/7"
    cookie = done.cookies["dc_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    me = await (await platforms.site.client.get("/api/me")).json()
    assert me["signed_in"] and me["names"] == [{"platform": "twitch", "name": "AnnTV"}]

    assert (await sign_in(platforms, "discord", ann_discord)).status == 303
    customers = platforms.site.commerce.customers
    twitch_id = await customers.find(f"twitch:{ann_twitch.id}")
    assert twitch_id is not None
    assert twitch_id == await customers.find(f"discord:{ann_discord.id}")
    customer = await customers.get(twitch_id)
    assert set(customer.verified) == {f"twitch:{ann_twitch.id}", f"discord:{ann_discord.id}"}


async def test_a_callback_with_another_state_signs_no_one_in(platforms):
    ann = platforms.twitch.add_user("ann_tv")
    authorize = await start(platforms.site, "twitch")
    back = platforms.twitch.approve(authorize, ann)
    forged = path_of(back).replace("state=", "state=x")
    response = await platforms.site.client.get(forged, headers={"Accept": "application/json"})
    assert response.status == 400
    assert "does not match" in (await response.json())["message"]
    me = await (await platforms.site.client.get("/api/me")).json()
    assert not me["signed_in"]


async def test_a_callback_without_the_flow_cookie_is_refused(platforms, make_web):
    """A login CSRF: the attacker's own code, delivered to the victim's browser."""
    ann = platforms.twitch.add_user("ann_tv")
    back = platforms.twitch.approve(await start(platforms.site, "twitch"), ann)
    platforms.site.client.session.cookie_jar.clear()
    response = await platforms.site.client.get(path_of(back))
    assert response.status == 400
    assert "not started here" in await response.text()


async def test_cancel_on_the_consent_page_changes_nothing(platforms):
    ann = platforms.discord.add_user("ann")
    back = platforms.discord.deny(await start(platforms.site, "discord"), ann)
    response = await platforms.site.client.get(path_of(back))
    assert response.status == 400
    assert "did not allow Discord sign-in" in await response.text()


@pytest.mark.parametrize("platform", ["twitch", "discord"])
async def test_an_expired_code_is_refused_with_the_platforms_words(platforms, platform):
    fake = platforms.fake(platform)
    user = fake.add_user("late")
    back = fake.approve(await start(platforms.site, platform), user)
    fake.expire_codes()
    response = await platforms.site.client.get(
        path_of(back), headers={"Accept": "application/json"}
    )
    assert response.status == 400
    message = (await response.json())["message"]
    assert ("Invalid authorization code" if platform == "twitch" else 'Invalid "code"') in message
    assert not (await (await platforms.site.client.get("/api/me")).json())["signed_in"]


async def test_a_redirect_uri_the_platform_does_not_know_never_comes_back(make_web):
    async with FakeTwitch() as twitch, FakeDiscord() as discord:
        site = await make_web(**platform_settings(twitch, discord))  # nothing registered
        ann = twitch.add_user("ann_tv")
        authorize = await start(site, "twitch")
        async with site.client.session.get(authorize, allow_redirects=False) as page:
            assert page.status == 400  # Twitch shows its error page, no redirect
        with pytest.raises(Exception, match="redirect"):
            twitch.approve(authorize, ann)


async def test_next_is_kept_on_this_site(platforms):
    ann = platforms.twitch.add_user("ann_tv")
    for evil in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        done = await sign_in(platforms, "twitch", ann, evil)
        assert done.headers["Location"] == "/"


async def test_an_unknown_platform_is_named(platforms):
    response = await platforms.site.client.get(
        "/signin/myspace", headers={"Accept": "application/json"}
    )
    assert response.status == 422
    assert "myspace" in (await response.json())["message"]


async def test_the_signed_in_page_shows_the_viewers_hold_and_no_one_elses(platforms):
    site = platforms.site
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    ann = platforms.twitch.add_user("ann_tv")
    await sign_in(platforms, "twitch", ann)
    token = (await (await site.client.get("/api/csrf")).json())["token"]
    claim = await site.client.post(
        f"/d/{drop_id}/claim", data={"csrf": token}, allow_redirects=False
    )
    assert claim.status == 303
    assert (await site.client.get(claim.headers["Location"])).status == 200
    me = await (await site.client.get(f"/api/me?drop={drop_id}")).json()
    assert len(me["holds"]) == 1 and "/c/" in me["holds"][0]["link"]

    site.client.session.cookie_jar.clear()
    bob = platforms.twitch.add_user("bob_tv")
    await sign_in(platforms, "twitch", bob)
    other = await (await site.client.get(f"/api/me?drop={drop_id}")).json()
    assert other["signed_in"] and other["holds"] == []


async def test_signing_out_forgets_the_identity(platforms):
    site = platforms.site
    await sign_in(platforms, "twitch", platforms.twitch.add_user("ann_tv"))
    me = await (await site.client.get("/api/me")).json()
    bad = await site.client.post("/signout", data={"csrf": "nope"})
    assert bad.status == 422
    out = await site.client.post(
        "/signout", data={"csrf": me["signout_csrf"], "next": "/d/1"}, allow_redirects=False
    )
    assert out.status == 303 and out.headers["Location"] == "/d/1"
    assert not (await (await site.client.get("/api/me")).json())["signed_in"]


async def test_the_session_cookie_is_secure_when_the_site_is_served_over_https(make_web):
    async with FakeTwitch() as twitch, FakeDiscord() as discord:
        site = await make_web(
            web={"public_url": "https://shop.example"}, **platform_settings(twitch, discord)
        )
        twitch.add_redirect_uri("https://shop.example/signin/twitch/callback")
        ann = twitch.add_user("ann_tv")
        authorize = await start(site, "twitch")
        assert "redirect_uri=https%3A%2F%2Fshop.example%2Fsignin%2Ftwitch%2Fcallback" in authorize
        # The test client speaks plain http, so it would not send a Secure cookie back:
        # hand the flow cookie over as the browser would over https.
        flow = next(c for c in site.client.session.cookie_jar if c.key == "dc_oauth")
        assert flow["secure"] and flow["httponly"]
        back = twitch.approve(authorize, ann)
        done = await site.client.get(
            path_of(back), allow_redirects=False, headers={"Cookie": f"dc_oauth={flow.value}"}
        )
        assert done.status == 303
        session = done.cookies["dc_session"]
        assert session["secure"] and session["httponly"] and session["samesite"] == "Lax"


async def test_a_hold_placed_anywhere_is_pushed_to_the_holders_signed_in_page_only(site):
    """Ann's !buy in Twitch chat places the hold (in the bots process, maybe another one):
    the HoldPlaced event brings her signed-in page its pay link; Bob's page gets nothing."""
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    sessions = site.ctx.require_sessions()
    streams = {}
    for identity in ("twitch:11", "discord:22"):
        signed = Signed(identity, identity)
        await remember(site.ctx, signed, ())
        cookie = f"{SESSION_COOKIE}={sessions.value(Session(identity, (signed,)))}"
        streams[identity] = await open_stream(site, drop_id, Cookie=cookie)
        await streams[identity].until("stock")
    ann = await site.commerce.customers.find("twitch:11")
    assert ann is not None and site.ctx.inbox.pages(ann) == 1

    held = await site.commerce.claims.claim(drop_id, ann, source="twitch")

    private = await streams["twitch:11"].until("private")
    assert private["data"]["hold_id"] == held.hold.id
    link = private["data"]["link"].split("/c/", 1)[1]
    assert site.signer.verify(link).identity == "twitch:11"
    bob = streams["discord:22"]
    while (event := await bob.next())["event"] != "stock" or event["data"]["held"] != 1:
        assert event["event"] != "private"
