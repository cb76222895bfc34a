"""FakeTwitch's authorization code grant flow ("Sign in with Twitch") over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
import pytest_asyncio

from tests.fakes.twitch import AuthorizeRefused, FakeTwitch, FakeUser
from tests.fakes_oauth import parse_page, split_redirect

pytestmark = pytest.mark.timeout(30)

REDIRECT = "http://localhost:8000/auth/twitch/callback"


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeTwitch]:
    async with FakeTwitch() as server:
        server.add_redirect_uri(REDIRECT)
        yield server


@pytest.fixture
def alice(fake: FakeTwitch) -> FakeUser:
    return fake.add_user("alice", display_name="Alice")


def authorize_url(fake: FakeTwitch, **params: str) -> str:
    query = {
        "client_id": fake.client_id,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "user:read:email",
        "state": "st-1",
        **params,
    }
    return f"{fake.id_base}oauth2/authorize?{urlencode(query)}"


async def exchange(
    fake: FakeTwitch, http: aiohttp.ClientSession, code: str, **overrides: str
) -> tuple[int, Any]:
    form = {
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "code": code,
        "grant_type": "authorization_code",
        "redirect_uri": REDIRECT,
        **overrides,
    }
    async with http.post(f"{fake.id_base}oauth2/token", data=form) as resp:
        return resp.status, await resp.json()


def code_of(location: str) -> str:
    base, query = split_redirect(location)
    assert base == REDIRECT
    return query["code"]


async def test_browser_sign_in_round_trip(
    fake: FakeTwitch, http: aiohttp.ClientSession, alice: FakeUser
) -> None:
    fake.browser_user = alice
    url = authorize_url(fake)
    async with http.get(url, allow_redirects=False) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        text = await resp.text()
    page = parse_page(text)
    assert "Dropcast" in text and "Alice" in text and "user:read:email" in text
    assert page.scripts == 0 and page.external == []  # plain HTML, nothing to fetch
    assert page.method == "post" and {"authorize", "cancel"} <= set(page.buttons)
    assert page.hidden["redirect_uri"] == REDIRECT and page.hidden["state"] == "st-1"

    post_url, data = page.submit(url, "authorize")
    assert post_url == f"{fake.id_base}oauth2/authorize"
    async with http.post(post_url, data=data, allow_redirects=False) as resp:
        assert resp.status == 302
        location = resp.headers["Location"]
    base, query = split_redirect(location)
    assert base == REDIRECT
    assert query == {"code": query["code"], "scope": "user:read:email", "state": "st-1"}
    assert "scope=user%3Aread%3Aemail" in location  # space-separated, form-encoded

    status, body = await exchange(fake, http, query["code"])
    assert status == 200
    assert set(body) == {"access_token", "refresh_token", "expires_in", "scope", "token_type"}
    assert body["scope"] == ["user:read:email"] and body["token_type"] == "bearer"
    assert body["expires_in"] > 3600

    headers = {"Authorization": f"Bearer {body['access_token']}", "Client-Id": fake.client_id}
    async with http.get(f"{fake.helix_base}users", headers=headers) as resp:
        assert resp.status == 200
        assert [u["login"] for u in (await resp.json())["data"]] == ["alice"]
    async with http.get(
        f"{fake.id_base}oauth2/validate", headers={"Authorization": f"OAuth {body['access_token']}"}
    ) as resp:
        info = await resp.json()
    assert (info["user_id"], info["login"], info["scopes"]) == (
        alice.id,
        "alice",
        ["user:read:email"],
    )

    # Every step is recorded like other requests (the form bodies too).
    steps = [(r.method, r.route, r.status) for r in fake.requests if r.api == "oauth"]
    assert steps[:3] == [
        ("GET", "oauth2/authorize", 200),
        ("POST", "oauth2/authorize", 302),
        ("POST", "oauth2/token", 200),
    ]
    posted = [r for r in fake.requests if r.route == "oauth2/authorize" and r.method == "POST"]
    assert posted[0].form is not None and posted[0].form["action"] == "authorize"
    assert posted[0].response == location


async def test_token_without_scopes_reads_its_own_user(
    fake: FakeTwitch, http: aiohttp.ClientSession, alice: FakeUser
) -> None:
    code = code_of(fake.approve(authorize_url(fake, scope=""), user=alice))
    status, body = await exchange(fake, http, code)
    assert (status, body["scope"]) == (200, [])
    headers = {"Authorization": f"Bearer {body['access_token']}", "Client-Id": fake.client_id}
    async with http.get(f"{fake.helix_base}users", headers=headers) as resp:
        assert resp.status == 200
        (user,) = (await resp.json())["data"]
    assert (user["id"], user["login"], user["display_name"]) == (alice.id, "alice", "Alice")
    assert "email" not in user  # needs user:read:email


async def test_cancel_redirects_with_access_denied(
    fake: FakeTwitch, http: aiohttp.ClientSession, alice: FakeUser
) -> None:
    fake.browser_user = alice
    url = authorize_url(fake)
    async with http.get(url) as resp:
        page = parse_page(await resp.text())
    post_url, data = page.submit(url, "cancel")
    async with http.post(post_url, data=data, allow_redirects=False) as resp:
        assert resp.status == 302
        location = resp.headers["Location"]
    assert location == (
        f"{REDIRECT}?error=access_denied&error_description=The+user+denied+you+access&state=st-1"
    )
    assert fake.deny(url) == location


async def test_unknown_client_or_unregistered_redirect_is_an_error_page(
    fake: FakeTwitch, http: aiohttp.ClientSession, alice: FakeUser
) -> None:
    fake.browser_user = alice
    bad = {
        "unknown client": authorize_url(fake, client_id="nosuchclient"),
        "other host": authorize_url(fake, redirect_uri="https://evil.example/cb"),
        "trailing slash": authorize_url(fake, redirect_uri=REDIRECT + "/"),  # exact match only
    }
    for case, url in bad.items():
        for method in ("GET", "POST"):
            async with http.request(
                method, url, data={"action": "authorize"}, allow_redirects=False
            ) as resp:
                assert (resp.status, resp.content_type) == (400, "text/html"), case
                assert "Location" not in resp.headers, case
                text = await resp.text()
            if case != "unknown client":
                assert "Parameter redirect_uri does not match registered URI" in text
        with pytest.raises(AuthorizeRefused) as refused:
            fake.approve(url)
        assert refused.value.status == 400, case


async def test_unsupported_response_type(
    fake: FakeTwitch, http: aiohttp.ClientSession, alice: FakeUser
) -> None:
    async with http.get(authorize_url(fake, response_type="magic"), allow_redirects=False) as r:
        assert r.status == 302
        assert r.headers["Location"] == f"{REDIRECT}?error=unsupported_response_type&state=st-1"
    # The implicit flow exists on Twitch but not in the fake: an error page says so.
    async with http.get(authorize_url(fake, response_type="token"), allow_redirects=False) as r:
        assert r.status == 400 and "FakeTwitch does not implement" in await r.text()


async def test_login_select_when_nobody_is_logged_in(
    fake: FakeTwitch, http: aiohttp.ClientSession, alice: FakeUser
) -> None:
    bob = fake.add_user("bob")
    url = authorize_url(fake)
    async with http.get(url) as resp:
        assert resp.status == 200
        page = parse_page(await resp.text())
    assert "user" in page.ids and page.selects["user"] == [alice.id, bob.id]
    post_url, data = page.submit(url, "authorize", user=bob.id)
    async with http.post(post_url, data=data, allow_redirects=False) as resp:
        code = code_of(resp.headers["Location"])
    status, body = await exchange(fake, http, code)
    assert status == 200 and fake.tokens[body["access_token"]].user_id == bob.id

    # Without a user field nobody is logged in: an error page, no code.
    del data["user"]
    async with http.post(post_url, data=data, allow_redirects=False) as resp:
        assert resp.status == 400 and "log in first" in await resp.text()
    with pytest.raises(AuthorizeRefused):
        fake.approve(url)


async def test_token_redirect_uri_must_match_the_authorize_one(
    fake: FakeTwitch, http: aiohttp.ClientSession, alice: FakeUser
) -> None:
    other = "http://localhost:8000/other"
    fake.add_redirect_uri(other)  # registered, but not the one the code was issued for
    code = code_of(fake.approve(authorize_url(fake), user=alice))
    for wrong in (other, ""):
        assert await exchange(fake, http, code, redirect_uri=wrong) == (
            400,
            {"status": 400, "message": "Parameter redirect_uri does not match registered URI"},
        )
    status, _ = await exchange(fake, http, code)  # a refused exchange does not burn the code
    assert status == 200


async def test_code_is_single_use(
    fake: FakeTwitch, http: aiohttp.ClientSession, alice: FakeUser
) -> None:
    code = code_of(fake.approve(authorize_url(fake), user=alice))
    assert (await exchange(fake, http, code))[0] == 200
    invalid = (400, {"status": 400, "message": "Invalid authorization code"})
    assert await exchange(fake, http, code) == invalid
    assert await exchange(fake, http, "notacode") == invalid


async def test_expired_code(fake: FakeTwitch, http: aiohttp.ClientSession, alice: FakeUser) -> None:
    invalid = (400, {"status": 400, "message": "Invalid authorization code"})
    code = code_of(fake.approve(authorize_url(fake), user=alice))
    fake.expire_codes()
    assert await exchange(fake, http, code) == invalid
    fake.code_ttl = 0  # codes from now on are dead on arrival
    assert await exchange(fake, http, code_of(fake.approve(authorize_url(fake), alice))) == invalid


async def test_code_is_bound_to_its_client(
    fake: FakeTwitch, http: aiohttp.ClientSession, alice: FakeUser
) -> None:
    fake.add_app("otherclient", "othersecret", name="Other")
    fake.add_redirect_uri(REDIRECT, client_id="otherclient")
    code = code_of(fake.approve(authorize_url(fake), user=alice))
    assert await exchange(
        fake, http, code, client_id="otherclient", client_secret="othersecret"
    ) == (400, {"status": 400, "message": "Invalid authorization code"})
    # The existing client checks still come first.
    assert await exchange(fake, http, code, client_secret="wrong") == (
        403,
        {"status": 403, "message": "invalid client secret"},
    )
    assert await exchange(fake, http, code, client_id="nosuch") == (
        400,
        {"status": 400, "message": "invalid client"},
    )
    # The other app's own consent page names it.
    fake.browser_user = alice
    async with http.get(authorize_url(fake, client_id="otherclient")) as resp:
        assert "Authorize Other" in await resp.text()


async def test_pkce_parameters_are_ignored(
    fake: FakeTwitch, http: aiohttp.ClientSession, alice: FakeUser
) -> None:
    url = authorize_url(fake, code_challenge="x" * 43, code_challenge_method="S256")
    code = code_of(fake.approve(url, user=alice))
    status, _ = await exchange(fake, http, code, code_verifier="not-the-verifier")
    assert status == 200


async def test_params_in_the_query_string_as_twitchio_sends_them(
    fake: FakeTwitch, http: aiohttp.ClientSession, alice: FakeUser
) -> None:
    code = code_of(fake.approve(authorize_url(fake), user=alice))
    query = {
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "code": code,
        "grant_type": "authorization_code",
        "redirect_uri": REDIRECT,
    }
    async with http.post(f"{fake.id_base}oauth2/token", params=query) as resp:
        assert resp.status == 200
    # authorization_code() mints a code without the browser; redirect_uri binds it if given.
    bound = fake.authorization_code(alice, ["user:read:chat"], redirect_uri=REDIRECT)
    assert (await exchange(fake, http, bound, redirect_uri="http://x/"))[0] == 400
    assert (await exchange(fake, http, bound))[0] == 200
    unbound = fake.authorization_code(alice, ["user:read:chat"])
    assert (await exchange(fake, http, unbound, redirect_uri="http://anything/"))[0] == 200


async def test_consent_is_skipped_once_granted_unless_force_verify(
    fake: FakeTwitch, http: aiohttp.ClientSession, alice: FakeUser
) -> None:
    fake.browser_user = alice
    code = code_of(fake.approve(authorize_url(fake)))
    assert (await exchange(fake, http, code))[0] == 200
    # Twitch redirects straight back when the user already granted these scopes to the app...
    async with http.get(authorize_url(fake), allow_redirects=False) as resp:
        assert resp.status == 302
        code = code_of(resp.headers["Location"])
    assert (await exchange(fake, http, code))[0] == 200
    # ...unless force_verify=true, or a new scope is asked for.
    for params in ({"force_verify": "true"}, {"scope": "user:read:email user:read:chat"}):
        async with http.get(authorize_url(fake, **params), allow_redirects=False) as resp:
            assert resp.status == 200, params
