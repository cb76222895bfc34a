"""Admin hardening: failed admin sign-ins throttled per address, /metrics behind its own
bearer token, live streams capped per address, and bodies nested too deeply refused."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from commerce.web.admin_session import COOKIE
from commerce.web.errors import RateLimited
from commerce.web.security import AuthThrottle, StreamSlots
from tests.helpers import capsule_spec, eventually, live_drop
from tests.web.conftest import ADMIN

METRICS_TOKEN = "scrape-Token-for-tests-0123456789"
PROXIED = {"trusted_proxies": ["127.0.0.0/8"]}  # the test client stands in for a proxy
ATTACKER = {"X-Forwarded-For": "203.0.113.7"}
OWNER = {"X-Forwarded-For": "198.51.100.2"}


def bearer(token: str, who: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **who}


def frozen(site) -> list[float]:
    """The throttle's clock, moved by the test (no sleeping)."""
    now = [1000.0]
    site.ctx.auth_throttle._now = lambda: now[0]
    return now


# -- the throttle itself ---------------------------------------------------------------------


def admit(throttle: AuthThrottle, ip: str) -> str:
    return throttle.admit(make_mocked_request("GET", "/").clone(remote=ip))


def test_the_throttle_forgets_failures_older_than_its_window():
    now = [0.0]
    throttle = AuthThrottle((), limit=3, window=60.0, now=lambda: now[0])
    for step in range(3):
        now[0] = step * 10.0
        throttle.failed(admit(throttle, "10.0.0.1"))
    assert admit(throttle, "10.0.0.2") == "10.0.0.2"  # per address
    now[0] = 59.0
    with pytest.raises(RateLimited) as info:
        admit(throttle, "10.0.0.1")
    assert info.value.retry_after == pytest.approx(1.0)
    now[0] = 60.0  # the first failure has aged out: one more try
    assert admit(throttle, "10.0.0.1") == "10.0.0.1"


def test_the_throttle_keeps_a_bounded_number_of_addresses():
    throttle = AuthThrottle((), max_keys=3)
    for i in range(10):
        throttle.failed(f"10.0.0.{i}")
    assert list(throttle._failures) == ["10.0.0.7", "10.0.0.8", "10.0.0.9"]


# -- the admin API and the dashboard -----------------------------------------------------------


async def test_ten_wrong_admin_tokens_then_429_even_with_the_right_one(make_web):
    site = await make_web(web=PROXIED)
    now = frozen(site)
    spec = capsule_spec(3)
    for _ in range(10):
        wrong = await site.client.post("/api/drops", json=spec, headers=bearer("guess", ATTACKER))
        assert wrong.status == 401
    right = await site.client.post("/api/drops", json=spec, headers=bearer(ADMIN, ATTACKER))
    assert right.status == 429 and right.headers["Retry-After"] == "60"
    assert (await right.json())["error"] == "RATE_LIMITED"
    assert await site.commerce.drops.current() is None  # nothing was created
    # The owner, from another address, is not locked out by someone else's guessing.
    owner = await site.client.post("/api/drops", json=spec, headers=bearer(ADMIN, OWNER))
    assert owner.status == 201
    now[0] += 59
    still = await site.client.post("/api/drops", json=spec, headers=bearer(ADMIN, ATTACKER))
    assert still.status == 429 and still.headers["Retry-After"] == "1"
    now[0] += 1  # the window has passed
    later = await site.client.post("/api/drops", json=spec, headers=bearer(ADMIN, ATTACKER))
    assert later.status == 201


async def test_dashboard_logins_and_forged_cookies_count_as_failures(make_web):
    site = await make_web(web=PROXIED)
    frozen(site)
    for i in range(5):
        login = await site.client.get(f"/dashboard?token=guess{i}", headers=ATTACKER)
        assert login.status == 401
    for _ in range(5):
        forged = await site.client.get(
            "/api/drops/1/kpis", headers={**ATTACKER, "Cookie": f"{COOKIE}=9999999999.forged"}
        )
        assert forged.status == 401
    page = await site.client.get(f"/dashboard?token={ADMIN}", headers=ATTACKER)
    assert page.status == 429 and int(page.headers["Retry-After"]) >= 1
    assert page.headers["Content-Type"].startswith("text/html")
    assert COOKIE not in page.cookies  # no session for a refused address
    owner = await site.client.get(f"/dashboard?token={ADMIN}", headers=OWNER, allow_redirects=False)
    assert owner.status == 303 and COOKIE in owner.cookies


async def test_a_browser_without_credentials_is_asked_to_sign_in_not_counted(make_web):
    site = await make_web(web=PROXIED)
    frozen(site)
    for _ in range(15):
        assert (await site.client.get("/dashboard", headers=ATTACKER)).status == 401
    login = await site.client.get(
        f"/dashboard?token={ADMIN}", headers=ATTACKER, allow_redirects=False
    )
    assert login.status == 303


# -- /metrics --------------------------------------------------------------------------------


async def test_metrics_are_open_when_no_metrics_token_is_set(site):
    response = await site.client.get("/metrics")
    assert response.status == 200 and "dropcast_claims_total" in await response.text()


async def test_metrics_need_the_metrics_token_when_one_is_set(make_web):
    site = await make_web(web={**PROXIED, "metrics_token": METRICS_TOKEN})
    frozen(site)
    assert (await site.client.get("/metrics")).status == 401
    admin = await site.client.get("/metrics", headers=site.admin)  # not the admin token
    assert admin.status == 401
    scrape = await site.client.get("/metrics", headers=bearer(METRICS_TOKEN, OWNER))
    assert scrape.status == 200 and "dropcast_claims_total" in await scrape.text()
    for _ in range(10):
        guess = await site.client.get("/metrics", headers=bearer("guess", ATTACKER))
        assert guess.status == 401
    blocked = await site.client.get("/metrics", headers=bearer(METRICS_TOKEN, ATTACKER))
    assert blocked.status == 429 and "Retry-After" in blocked.headers


# -- live streams per address ------------------------------------------------------------------


def test_stream_slots_free_when_released_and_keep_no_empty_entries():
    slots = StreamSlots(2)
    slots.take("a", 15)
    slots.take("a", 15)
    with pytest.raises(RateLimited) as info:
        slots.take("a", 15)
    assert info.value.retry_after == 15
    slots.take("b", 15)
    slots.release("a")
    slots.take("a", 15)
    for _ in range(2):
        slots.release("a")
    slots.release("b")
    assert slots._open == {}


async def test_the_21st_stream_from_one_address_gets_429_until_one_ends(make_web):
    site = await make_web(web=PROXIED)
    site.ctx.heartbeat_seconds = 0.05  # a closed client is noticed at the next heartbeat
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    url = f"/api/drops/{drop_id}/stream"
    streams = [await site.client.get(url, headers=ATTACKER) for _ in range(20)]
    assert {s.status for s in streams} == {200}
    extra = await site.client.get(url, headers=ATTACKER)
    assert extra.status == 429 and int(extra.headers["Retry-After"]) >= 1
    assert (await extra.json())["error"] == "RATE_LIMITED"
    other = await site.client.get(url, headers=OWNER)
    assert other.status == 200
    other.close()
    streams.pop().close()

    async def reopened() -> bool:
        response = await site.client.get(url, headers=ATTACKER)
        if response.status == 200:
            streams.append(response)
            return True
        return False

    await eventually(reopened, what="a freed slot", interval=0.05)
    for stream in streams:
        stream.close()
    await eventually(lambda: site.ctx.streams.open("203.0.113.7") == 0, what="all slots free")


# -- bodies nested too deeply --------------------------------------------------------------------


@pytest.mark.parametrize("body", ["[" * 100_000, '{"a":' * 50_000])
async def test_a_body_nested_too_deeply_is_a_400_and_changes_nothing(site, body):
    response = await site.client.post(
        "/api/drops", data=body, headers={**site.admin, "Content-Type": "application/json"}
    )
    assert response.status == 400
    assert await response.json() == {
        "error": "BAD_JSON",
        "message": "the body is nested too deeply",
        "field": "body",
    }
    assert await site.commerce.drops.current() is None
