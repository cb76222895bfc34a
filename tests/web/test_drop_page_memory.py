"""The public drop page and its JSON from memory: rendered once per view of the drop (a new
view after each of its events), 304 for a matching If-None-Match (lists, ``*``, weak
comparison), and the JSON's time of each response in a header."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from commerce.domain.model import DropView
from commerce.views import drop_state
from commerce.web.live import ViewCache
from commerce.web.rendered import Rendered, RenderMemo, none_match
from tests.helpers import capsule_spec, eventually, live_drop

PAGE_CACHE = "public, max-age=5, stale-while-revalidate=30"
JSON_CACHE = "public, max-age=1, stale-while-revalidate=5"


def steady_views(site) -> list[DropView]:
    """Give the site a view cache that only an event of the drop empties (its TTL is longer
    than any test), and return the list of the views it loads from the database."""
    loads: list[DropView] = []

    async def load(drop_id: int) -> DropView:
        view = await site.commerce.drops.view(drop_id)
        loads.append(view)
        return view

    site.ctx.states = ViewCache(load, site.clock, ttl=3600)
    return loads


def count_page_renders(site, monkeypatch) -> list[str]:
    """The drop pages the templates render (every other template passes through)."""
    rendered: list[str] = []
    real = site.ctx.templates.render

    def spy(name: str, **context: Any) -> str:
        if name == "drop.html":
            rendered.append(context["drop_status"].detail)
        return real(name, **context)

    monkeypatch.setattr(site.ctx.templates, "render", spy)
    return rendered


def count_state_renders(monkeypatch) -> list[int]:
    """The drop states serialized for the JSON (the ``available`` of each)."""
    serialized: list[int] = []

    def spy(view: DropView) -> dict[str, Any]:
        data = drop_state(view)
        serialized.append(data["available"])
        return data

    monkeypatch.setattr("commerce.web.api.drop_state", spy)
    return serialized


async def test_the_drop_page_is_rendered_once_for_many_requests_and_again_after_a_claim(
    site, monkeypatch
):
    drop_id = await live_drop(site.commerce, capsule_spec(4))
    loads = steady_views(site)
    renders = count_page_renders(site, monkeypatch)
    first = await site.client.get(f"/d/{drop_id}")
    body = await first.read()
    responses = await asyncio.gather(*(site.client.get(f"/d/{drop_id}") for _ in range(30)))
    for response in responses:
        assert response.status == 200 and await response.read() == body
        assert response.headers["ETag"] == first.headers["ETag"]
    assert renders == ["4 of 4 left"] and len(loads) == 1

    await site.held_page(drop_id)  # a hold: an event of the drop, so a new view

    async def new_page() -> bytes | None:
        page = await (await site.client.get(f"/d/{drop_id}")).read()
        return page if b"3 of 4 left" in page else None

    changed = await eventually(new_page, what="the page to show the claim")
    for _ in range(10):
        assert await (await site.client.get(f"/d/{drop_id}")).read() == changed
    assert renders == ["4 of 4 left", "3 of 4 left"] and len(loads) == 2


async def test_the_drop_json_is_serialized_once_for_many_requests_and_again_after_a_restock(
    site, monkeypatch
):
    drop_id = await live_drop(site.commerce, capsule_spec(4))
    loads = steady_views(site)
    serialized = count_state_renders(monkeypatch)
    first = await site.client.get(f"/api/drops/{drop_id}")
    body = await first.read()
    assert first.headers["Content-Type"] == "application/json; charset=utf-8"
    assert first.headers["Cache-Control"] == JSON_CACHE and "Vary" not in first.headers
    responses = await asyncio.gather(*(site.client.get(f"/api/drops/{drop_id}") for _ in range(30)))
    for response in responses:
        assert response.status == 200 and await response.read() == body
    assert serialized == [4] and len(loads) == 1

    restocked = await site.client.post(
        f"/api/drops/{drop_id}/restock", json={"sku": "CHIPS-SPICY", "units": 2}, headers=site.admin
    )
    assert restocked.status == 200

    async def new_state() -> dict[str, Any] | None:
        state = await (await site.client.get(f"/api/drops/{drop_id}")).json()
        return state if state["available"] == 6 else None

    await eventually(new_state, what="the JSON to show the restock")
    for _ in range(10):
        assert (await (await site.client.get(f"/api/drops/{drop_id}")).json())["total"] == 6
    assert serialized[0] == 4 and serialized[-1] == 6
    assert len(serialized) == len(loads)  # one serialization per view, however many reads


async def test_each_locale_is_rendered_once_and_varies_the_page(site, monkeypatch):
    drop_id = await live_drop(site.commerce, capsule_spec(4))
    steady_views(site)
    renders = count_page_renders(site, monkeypatch)
    pages: dict[str, tuple[str, str]] = {}
    for language in ("en-US", "de-DE,de;q=0.9", "de-DE", "xx-nonsense", "en-US,en;q=0.8"):
        for _ in range(3):
            response = await site.client.get(f"/d/{drop_id}", headers={"Accept-Language": language})
            assert response.headers["Vary"] == "Accept-Language"
            pages[language] = (await response.text(), response.headers["ETag"])
    assert len(renders) == 2  # en_US (an unknown locale reads as the default) and de_DE
    assert "$12.00" in pages["en-US"][0] and "12,00\xa0$" in pages["de-DE"][0]
    assert pages["de-DE"] == pages["de-DE,de;q=0.9"]
    assert pages["en-US"] == pages["xx-nonsense"] == pages["en-US,en;q=0.8"]
    assert pages["en-US"][1] != pages["de-DE"][1]


@pytest.mark.parametrize(
    ("path", "cache", "vary"),
    [("/d/{}", PAGE_CACHE, "Accept-Language"), ("/api/drops/{}", JSON_CACHE, None)],
)
async def test_a_matching_if_none_match_is_304_and_a_change_is_200(site, path, cache, vary):
    drop_id = await live_drop(site.commerce, capsule_spec(4))
    url = path.format(drop_id)
    first = await site.client.get(url)
    etag = first.headers["ETag"]
    assert etag.startswith('W/"') and etag.endswith('"')
    opaque = etag.removeprefix("W/")
    for sent in (
        etag,
        opaque,  # weak comparison: the same opaque tag, strong or weak
        f'"elsewhere", {etag}',
        f'W/"a",{opaque} , "b"',
        "*",
        " * ",
    ):
        again = await site.client.get(url, headers={"If-None-Match": sent})
        assert again.status == 304, sent
        assert await again.read() == b""
        assert again.headers["ETag"] == etag and again.headers["Cache-Control"] == cache
        assert again.headers.get("Vary") == vary
    # Several If-None-Match fields are one list.
    fields = [("If-None-Match", '"elsewhere"'), ("If-None-Match", etag)]
    assert (await site.client.get(url, headers=fields)).status == 304
    for sent in ('"elsewhere"', 'W/"elsewhere", "other"', "", etag.replace('"', ""), f"{etag}x"):
        other = await site.client.get(url, headers={"If-None-Match": sent})
        assert other.status == 200 and other.headers["ETag"] == etag, sent

    await site.held_page(drop_id)  # the stock changed: a new validator, the new body

    async def changed() -> Any:
        response = await site.client.get(url, headers={"If-None-Match": etag})
        return response if response.status == 200 else None

    response = await eventually(changed, what="the old ETag to stop matching")
    assert response.headers["ETag"] != etag
    body = await response.text()
    assert "3 of 4 left" in body if vary else '"available":3' in body
    revalidated = await site.client.get(url, headers={"If-None-Match": response.headers["ETag"]})
    assert revalidated.status == 304


async def test_the_json_carries_the_time_of_each_response_in_a_header(site):
    drop_id = await live_drop(site.commerce, capsule_spec(4))
    steady_views(site)
    url = f"/api/drops/{drop_id}"
    first = await site.client.get(url)
    assert first.headers["Server-Time"] == "2026-01-01T12:00:00Z"
    assert (await first.json())["server_time"] == "2026-01-01T12:00:00Z"
    site.clock.advance(0.25)  # the view is still cached: the same body
    later = await site.client.get(url)
    assert later.headers["Server-Time"] == "2026-01-01T12:00:00.250000Z"
    assert await later.read() == await first.read()  # its time is when the state was read
    assert later.headers["ETag"] == first.headers["ETag"]
    site.clock.advance(0.25)
    unchanged = await site.client.get(url, headers={"If-None-Match": first.headers["ETag"]})
    assert unchanged.status == 304
    assert unchanged.headers["Server-Time"] == "2026-01-01T12:00:00.500000Z"


async def test_a_state_read_again_unchanged_keeps_its_json_validator(site):
    drop_id = await live_drop(site.commerce, capsule_spec(4))
    steady_views(site)
    url = f"/api/drops/{drop_id}"
    first = await site.client.get(url)
    site.clock.advance(5)
    site.ctx.states.forget(drop_id)  # read again (as at the TTL): nothing changed but time
    again = await site.client.get(url, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status == 304
    fresh = await (await site.client.get(url)).json()
    assert fresh["server_time"] == "2026-01-01T12:00:05Z"


def test_if_none_match_follows_rfc_9110():
    assert none_match(["*"], "abc") and none_match([' W/"x", "abc"'], "abc")
    assert none_match(['"x"', 'W/"abc"'], "abc")  # several fields are one list
    assert none_match([', ,"x",,\tW/"abc" ,'], "abc")  # empty elements, optional spaces
    assert not none_match(['"abcd"', '"ab"', "abc", 'W/"ABC"', 'w/"abc"'], "abc")
    assert not none_match(["", ",", '*, "abc"'], "abc")
    # Anything malformed ends the list: what follows it is not read.
    assert not none_match(['W/"abc"x', '"x" "abc"', '"x"; "abc"', '"a bc"'], "abc")


async def test_the_memo_keeps_the_latest_view_of_a_bounded_number_of_drops(site):
    memo: RenderMemo[Rendered] = RenderMemo(drops=2, variants=2)
    drops = [await live_drop(site.commerce, capsule_spec(1)) for _ in range(3)]
    views = [await site.commerce.drops.view(d) for d in drops]

    def rendered(text: str) -> Rendered:
        return Rendered.of(text.encode(), "text/plain", "no-store")

    for view in views:
        memo.put(view, rendered(f"drop {view.drop.id}"))
    assert len(memo) == 2 and memo.get(views[0]) is None and memo.get(views[2]) is not None
    newer = await site.commerce.drops.view(drops[2])
    assert memo.get(newer) is None  # an equal view is still another view: rendered anew
    memo.put(newer, rendered("newer"))
    assert memo.get(views[2]) is None and len(memo) == 2
    for locale in ("en_US", "de_DE", "fr_FR"):
        memo.put(newer, rendered(locale), locale)
    assert memo.get(newer, "en_US") is None and memo.get(newer, "fr_FR") is not None
