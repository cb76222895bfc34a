"""Claim rate limits per IP and per customer; X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

from aiohttp.test_utils import make_mocked_request

from commerce.web.security import RateLimiter, client_ip, parse_networks
from tests.helpers import capsule_spec, live_drop


def test_a_token_bucket_allows_a_burst_then_says_how_long_to_wait():
    now = [0.0]
    limiter = RateLimiter(2.0, now=lambda: now[0])
    assert [limiter.hit("a") for _ in range(2)] == [0.0, 0.0]
    assert limiter.hit("a") == 0.5
    assert limiter.hit("b") == 0.0  # buckets are per key
    now[0] += 0.5
    assert limiter.hit("a") == 0.0


def test_a_rate_of_zero_turns_the_limit_off():
    limiter = RateLimiter(0)
    assert all(limiter.hit("a") == 0 for _ in range(1000))


def test_forwarded_for_is_believed_only_from_trusted_proxies():
    trusted = parse_networks(["10.0.0.0/8"])

    def ip(peer, xff=None):
        headers = {"X-Forwarded-For": xff} if xff else {}
        request = make_mocked_request("GET", "/", headers=headers)
        request._transport_peername = (peer, 1234)
        return client_ip(request.clone(remote=peer), trusted)

    assert ip("203.0.113.9", "1.2.3.4") == "203.0.113.9"  # not a proxy: header ignored
    assert ip("10.0.0.5", "1.2.3.4") == "1.2.3.4"
    assert ip("10.0.0.5", "6.6.6.6, 1.2.3.4, 10.0.0.7") == "1.2.3.4"  # spoofed prefix ignored
    assert ip("10.0.0.5") == "10.0.0.5"
    assert client_ip(make_mocked_request("GET", "/").clone(remote="1.1.1.1"), ()) == "1.1.1.1"


def frozen(site):
    """Stop the buckets refilling while a test runs: on a busy machine a request may take
    longer than a token's refill, and the test asserts behaviour, not speed."""
    for limiter in (site.ctx.ip_limiter, site.ctx.customer_limiter):
        limiter._now = lambda: 1000.0
    return site


async def test_per_ip_limit_answers_429_with_retry_after(make_web):
    site = frozen(await make_web(web={"claim_rate_per_ip": 2}))
    drop_id = await live_drop(site.commerce, capsule_spec(10))
    statuses = [
        (await site.client.get(f"/c/{site.token(drop_id, f'discord:{i}')}")).status
        for i in range(3)
    ]
    assert statuses == [200, 200, 429]
    response = await site.client.get(f"/c/{site.token(drop_id, 'discord:9')}")
    assert response.status == 429 and int(response.headers["Retry-After"]) >= 1
    assert response.headers["Cache-Control"] == "no-store"


async def test_per_customer_limit_applies_across_links(make_web):
    site = frozen(await make_web(web={"claim_rate_per_customer": 1}))
    drop_id = await live_drop(site.commerce, capsule_spec(10))
    first = await site.client.get(f"/c/{site.token(drop_id, 'discord:1')}")
    second = await site.client.get(f"/c/{site.token(drop_id, 'discord:1')}")
    other = await site.client.get(f"/c/{site.token(drop_id, 'discord:2')}")
    assert (first.status, second.status, other.status) == (200, 429, 200)


async def test_the_forwarded_address_is_limited_when_the_proxy_is_trusted(make_web):
    site = frozen(await make_web(web={"claim_rate_per_ip": 1, "trusted_proxies": ["127.0.0.0/8"]}))
    drop_id = await live_drop(site.commerce, capsule_spec(10))

    async def get(i, xff):
        url = f"/c/{site.token(drop_id, f'discord:{i}')}"
        return (await site.client.get(url, headers={"X-Forwarded-For": xff})).status

    assert [await get(1, "1.1.1.1"), await get(2, "2.2.2.2"), await get(3, "1.1.1.1")] == [
        200,
        200,
        429,
    ]
