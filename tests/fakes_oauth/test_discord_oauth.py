"""FakeDiscord's OAuth2 authorization code grant ("Sign in with Discord") over real HTTP."""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
import pytest_asyncio

from tests.fakes.discord import AuthorizeRefused, FakeDiscord, FakeUser, s256_challenge
from tests.fakes_oauth import parse_page, split_redirect

pytestmark = pytest.mark.timeout(30)

REDIRECT = "http://localhost:8000/auth/discord/callback"
INVALID_CODE = {"error": "invalid_grant", "error_description": 'Invalid "code" in request.'}
UNAUTHORIZED = {"message": "401: Unauthorized", "code": 0}


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        server.add_redirect_uri(REDIRECT)
        yield server


@pytest.fixture
def alice(fake: FakeDiscord) -> FakeUser:
    return fake.add_user("alice", global_name="Alice")


def authorize_url(fake: FakeDiscord, base: str | None = None, **params: str) -> str:
    query = {
        "client_id": fake.oauth_client_id,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "identify",
        "state": "st-1",
        **params,
    }
    return f"{base or fake.oauth_authorize_url}?{urlencode(query)}"


def basic(fake: FakeDiscord, secret: str | None = None) -> dict[str, str]:
    pair = f"{fake.oauth_client_id}:{secret or fake.oauth_client_secret}"
    return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


async def exchange(
    fake: FakeDiscord,
    http: aiohttp.ClientSession,
    code: str,
    *,
    headers: dict[str, str] | None = None,
    url: str | None = None,
    **fields: str,
) -> tuple[int, Any]:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, **fields}
    async with http.post(
        url or fake.oauth_token_url,
        data=form,
        headers=basic(fake) if headers is None else headers,
    ) as resp:
        return resp.status, await resp.json()


def code_of(location: str) -> str:
    base, query = split_redirect(location)
    assert base == REDIRECT
    return query["code"]


async def me(http: aiohttp.ClientSession, fake: FakeDiscord, authorization: str) -> tuple[int, Any]:
    async with http.get(
        f"{fake.api_base}/users/@me", headers={"Authorization": authorization}
    ) as resp:
        return resp.status, await resp.json()


async def test_browser_sign_in_round_trip(
    fake: FakeDiscord, http: aiohttp.ClientSession, alice: FakeUser
) -> None:
    fake.browser_user = alice
    url = authorize_url(fake)
    assert url.startswith(fake.api_base.removesuffix("/api/v10") + "/oauth2/authorize?")
    async with http.get(url, allow_redirects=False) as resp:
        assert (resp.status, resp.content_type) == (200, "text/html")
        text = await resp.text()
    page = parse_page(text)
    assert fake.bot.username in text and "Alice" in text and "identify" in text
    assert page.scripts == 0 and page.external == []  # plain HTML, nothing to fetch
    assert page.method == "post" and {"authorize", "cancel"} <= set(page.buttons)

    post_url, data = page.submit(url, "authorize")
    async with http.post(post_url, data=data, allow_redirects=False) as resp:
        assert resp.status == 302
        location = resp.headers["Location"]
    base, query = split_redirect(location)
    assert base == REDIRECT and query == {"code": query["code"], "state": "st-1"}

    async with http.post(
        fake.oauth_token_url,
        data={"grant_type": "authorization_code", "code": query["code"], "redirect_uri": REDIRECT},
        headers=basic(fake),
    ) as resp:
        assert resp.status == 200
        assert resp.headers["Cache-Control"] == "no-store"
        body = await resp.json()
    assert body == {
        "access_token": body["access_token"],
        "token_type": "Bearer",
        "expires_in": 604800,
        "refresh_token": body["refresh_token"],
        "scope": "identify",
    }

    status, user = await me(http, fake, f"Bearer {body['access_token']}")
    assert status == 200
    assert (user["id"], user["username"], user["global_name"]) == (str(alice.id), "alice", "Alice")
    assert (user["discriminator"], user["avatar"]) == ("0", None)
    assert "bot" not in user and "email" not in user  # email needs the email scope

    # Recorded like every other request, form bodies included.
    (get,) = fake.requests_to("GET", "/oauth2/authorize")
    (post,) = fake.requests_to("POST", "/oauth2/authorize")
    (token,) = fake.requests_to("POST", "/oauth2/token")
    assert (get.status, post.status, token.status) == (200, 302, 200)
    assert post.response == location and post.form is not None
    assert token.form is not None and token.form["code"] == query["code"]
    assert fake.requests_to("GET", "/users/@me")[0].status == 200


async def test_other_entry_points_and_client_secret_post(
    fake: FakeDiscord, http: aiohttp.ClientSession, alice: FakeUser
) -> None:
    fake.browser_user = alice
    url = authorize_url(fake, base=f"{fake.api_base}/oauth2/authorize")
    async with http.get(url) as resp:
        assert resp.status == 200
        page = parse_page(await resp.text())
    post_url, data = page.submit(url, "authorize")
    assert post_url == url  # the form posts back to the page it came from
    async with http.post(post_url, data=data, allow_redirects=False) as resp:
        code = code_of(resp.headers["Location"])
    status, body = await exchange(
        fake,
        http,
        code,
        headers={},
        url=f"{fake.http_base}/api/oauth2/token",
        client_id=fake.oauth_client_id,
        client_secret=fake.oauth_client_secret,
    )
    assert status == 200 and body["token_type"] == "Bearer"


async def test_cancel_redirects_with_access_denied(
    fake: FakeDiscord, http: aiohttp.ClientSession, alice: FakeUser
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
        f"{REDIRECT}?error=access_denied&error_description="
        "The+resource+owner+or+authorization+server+denied+the+request&state=st-1"
    )
    assert fake.deny(url) == location


async def test_unknown_client_or_unregistered_redirect_is_an_error_page(
    fake: FakeDiscord, http: aiohttp.ClientSession, alice: FakeUser
) -> None:
    fake.browser_user = alice
    bad = {
        "Unknown Application": authorize_url(fake, client_id="123"),
        "Invalid OAuth2 redirect_uri": authorize_url(fake, redirect_uri="https://evil.example/"),
    }
    for message, url in bad.items():
        for method in ("GET", "POST"):
            async with http.request(
                method, url, data={"action": "authorize"}, allow_redirects=False
            ) as resp:
                assert (resp.status, resp.content_type) == (400, "text/html")
                assert "Location" not in resp.headers
                assert message in await resp.text()
        with pytest.raises(AuthorizeRefused) as refused:
            fake.approve(url)
        assert (refused.value.status, refused.value.message) == (400, message)


async def test_invalid_scope_redirects(
    fake: FakeDiscord, http: aiohttp.ClientSession, alice: FakeUser
) -> None:
    for scope in ("identify bogus", ""):
        async with http.get(authorize_url(fake, scope=scope), allow_redirects=False) as resp:
            assert resp.status == 302
            base, query = split_redirect(resp.headers["Location"])
        assert base == REDIRECT
        assert (query["error"], query["state"]) == ("invalid_scope", "st-1")
        assert "code" not in query


async def test_token_errors(
    fake: FakeDiscord, http: aiohttp.ClientSession, alice: FakeUser
) -> None:
    code = code_of(fake.approve(authorize_url(fake), user=alice))
    invalid_client = (401, {"error": "invalid_client"})
    assert await exchange(fake, http, code, headers=basic(fake, "wrong")) == invalid_client
    assert await exchange(fake, http, code, headers={}) == invalid_client
    assert (
        await exchange(
            fake, http, code, headers={}, client_id="42", client_secret=fake.oauth_client_secret
        )
        == invalid_client
    )
    assert await exchange(fake, http, "nope") == (400, INVALID_CODE)
    assert await exchange(fake, http, code, grant_type="password") == (
        400,
        {"error": "unsupported_grant_type"},
    )
    # redirect_uri must be the authorize one; a refused exchange does not burn the code.
    fake.add_redirect_uri("http://localhost:8000/other")
    assert await exchange(fake, http, code, redirect_uri="http://localhost:8000/other") == (
        400,
        {"error": "invalid_grant", "error_description": 'Invalid "redirect_uri" in request.'},
    )
    assert (await exchange(fake, http, code))[0] == 200
    assert await exchange(fake, http, code) == (400, INVALID_CODE)  # single use
    async with http.get(fake.oauth_token_url) as resp:
        assert resp.status == 405


async def test_expired_code(
    fake: FakeDiscord, http: aiohttp.ClientSession, alice: FakeUser
) -> None:
    code = code_of(fake.approve(authorize_url(fake), user=alice))
    fake.expire_codes()
    assert await exchange(fake, http, code) == (400, INVALID_CODE)
    fake.code_ttl = 0
    code = code_of(fake.approve(authorize_url(fake), user=alice))
    assert await exchange(fake, http, code) == (400, INVALID_CODE)


async def test_pkce(fake: FakeDiscord, http: aiohttp.ClientSession, alice: FakeUser) -> None:
    verifier = secrets.token_urlsafe(48)  # 64 characters
    url = authorize_url(fake, code_challenge=s256_challenge(verifier), code_challenge_method="S256")
    code = code_of(fake.approve(url, user=alice))
    assert await exchange(fake, http, code) == (
        400,
        {"error": "invalid_request", "error_description": 'Missing "code_verifier"'},
    )
    assert await exchange(fake, http, code, code_verifier="short") == (
        400,
        {"error": "invalid_request", "error_description": 'Invalid "code_verifier"'},
    )
    assert await exchange(fake, http, code, code_verifier=secrets.token_urlsafe(48)) == (
        400,
        {"error": "invalid_grant", "error_description": "Code challenge failed."},
    )
    status, body = await exchange(fake, http, code, code_verifier=verifier)
    assert (status, body["scope"]) == (200, "identify")

    # Only S256 is supported; the error goes back to the (registered) redirect.
    for method in ({"code_challenge_method": "plain"}, {}):
        async with http.get(
            authorize_url(fake, code_challenge="x" * 43, **method), allow_redirects=False
        ) as resp:
            _, query = split_redirect(resp.headers["Location"])
        assert query["error"] == "invalid_request"
        assert query["error_description"] == 'Unsupported "code_challenge_method"'


async def test_users_me_with_bearer_tokens(
    fake: FakeDiscord, http: aiohttp.ClientSession, alice: FakeUser
) -> None:
    guilds_only = fake.add_oauth_token(alice, ("guilds",))
    assert await me(http, fake, f"Bearer {guilds_only.access_token}") == (401, UNAUTHORIZED)
    assert await me(http, fake, "Bearer not-a-token") == (401, UNAUTHORIZED)
    with_email = fake.add_oauth_token(alice, ("identify", "email"))
    status, user = await me(http, fake, f"Bearer {with_email.access_token}")
    assert status == 200 and user["verified"] is True and "email" in user
    with_email.revoked = True
    assert await me(http, fake, f"Bearer {with_email.access_token}") == (401, UNAUTHORIZED)
    # The bot token is unchanged; bearer tokens only reach the routes that accept them.
    status, bot = await me(http, fake, f"Bot {fake.token}")
    assert (status, bot["id"], bot["bot"]) == (200, str(fake.bot.id), True)
    identify = fake.add_oauth_token(alice)
    async with http.get(
        f"{fake.api_base}/users/{alice.id}",
        headers={"Authorization": f"Bearer {identify.access_token}"},
    ) as resp:
        assert resp.status == 401


async def test_prompt_none_skips_consent_once_authorized(
    fake: FakeDiscord, http: aiohttp.ClientSession, alice: FakeUser
) -> None:
    fake.browser_user = alice
    async with http.get(authorize_url(fake, prompt="none"), allow_redirects=False) as resp:
        assert resp.status == 200  # never authorized: the page is shown
    assert (await exchange(fake, http, code_of(fake.approve(authorize_url(fake)))))[0] == 200
    async with http.get(authorize_url(fake, prompt="none"), allow_redirects=False) as resp:
        assert resp.status == 302
        code = code_of(resp.headers["Location"])
    assert (await exchange(fake, http, code))[0] == 200
    async with http.get(authorize_url(fake), allow_redirects=False) as resp:
        assert resp.status == 200  # prompt=consent (the default) asks again


async def test_login_select_and_refresh(
    fake: FakeDiscord, http: aiohttp.ClientSession, alice: FakeUser
) -> None:
    url = authorize_url(fake)
    async with http.get(url) as resp:
        page = parse_page(await resp.text())
    assert str(alice.id) in page.selects["user"]
    assert str(fake.bot.id) not in page.selects["user"]  # bots cannot sign in
    post_url, data = page.submit(url, "authorize", user=str(alice.id))
    async with http.post(post_url, data=data, allow_redirects=False) as resp:
        code = code_of(resp.headers["Location"])
    status, first = await exchange(fake, http, code)
    assert status == 200

    async with http.post(
        fake.oauth_token_url,
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        headers=basic(fake),
    ) as resp:
        assert resp.status == 200
        second = await resp.json()
    assert second["access_token"] != first["access_token"]
    assert (await me(http, fake, f"Bearer {first['access_token']}"))[0] == 401
    assert (await me(http, fake, f"Bearer {second['access_token']}"))[0] == 200
    async with http.post(
        fake.oauth_token_url,
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        headers=basic(fake),
    ) as resp:
        assert (resp.status, await resp.json()) == (
            400,
            {"error": "invalid_grant", "error_description": 'Invalid "refresh_token" in request.'},
        )
    # The application object lists the registered redirects.
    async with http.get(
        f"{fake.api_base}/oauth2/applications/@me", headers={"Authorization": f"Bot {fake.token}"}
    ) as resp:
        assert (await resp.json())["redirect_uris"] == [REDIRECT]
