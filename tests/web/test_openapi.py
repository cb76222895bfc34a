"""/api/openapi.json and /api/docs: every JSON route described from the handlers' own models,
and the defects the fuzz test (tests/web/test_openapi_fuzz.py) found, each pinned down."""

from __future__ import annotations

from aiohttp import web

from commerce.web.app import add_routes
from commerce.web.openapi import undocumented
from tests.helpers import capsule_spec, live_drop
from tests.web.test_order_desk_api import paid_order


async def spec_of(site) -> dict:
    response = await site.client.get("/api/openapi.json")
    assert response.status == 200
    return await response.json()


async def test_every_route_under_api_has_an_operation_in_the_spec(site):
    assert undocumented(site.app.router) == []
    paths = (await spec_of(site))["paths"]
    for resource in site.app.router.resources():
        if resource.canonical.startswith("/api/"):
            methods = {route.method.lower() for route in resource} - {"head"}
            assert methods <= paths[resource.canonical].keys(), resource.canonical


def test_a_new_route_without_an_operation_is_reported():
    router = web.UrlDispatcher()
    add_routes(router)

    async def list_webhooks(request: web.Request) -> web.Response:
        return web.json_response([])

    router.add_get("/api/webhooks", list_webhooks)
    router.add_get("/not-api/page", list_webhooks)  # outside /api/: not required
    assert undocumented(router) == ["GET /api/webhooks"]


async def test_the_spec_is_openapi_3_1_with_bearer_admin_and_the_routers_patterns(site):
    spec = await spec_of(site)
    assert spec["openapi"] == "3.1.0"
    assert spec["components"]["securitySchemes"]["adminToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "security.admin_token (DROPCAST_SECURITY__ADMIN_TOKEN)",
    }
    restock = spec["paths"]["/api/drops/{drop_id}/restock"]["post"]
    assert restock["security"] == [{"adminToken": []}]
    assert restock["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RestockBody"
    }
    assert restock["parameters"] == [
        {"name": "drop_id", "in": "path", "required": True,
         "schema": {"type": "string", "pattern": r"^\d{1,18}$"}}
    ]  # fmt: skip
    assert {"401", "404", "409", "422"} <= restock["responses"].keys()
    body = spec["components"]["schemas"]["RestockBody"]
    assert body["required"] == ["sku", "units"] and body["additionalProperties"] is False
    public = spec["paths"]["/api/drops/{drop_id}"]["get"]
    assert public["security"] == [] and "401" not in public["responses"]
    assert public["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/DropStateReply"
    }
    create = spec["paths"]["/api/drops"]["post"]["requestBody"]["content"]["application/json"]
    assert create["schema"] == {"$ref": "#/components/schemas/DropSpec"}
    stream = spec["paths"]["/api/drops/{drop_id}/stream"]["get"]
    assert "text/event-stream" in stream["responses"]["200"]["content"]
    assert stream["x-not-fuzzed"]


async def test_the_spec_is_built_once_and_revalidates_with_its_etag(site):
    first = await site.client.get("/api/openapi.json")
    built = site.ctx.openapi
    second = await site.client.get("/api/openapi.json")
    assert site.ctx.openapi is built and await first.read() == await second.read()
    etag = first.headers["ETag"]
    again = await site.client.get("/api/openapi.json", headers={"If-None-Match": etag})
    assert again.status == 304


async def test_the_docs_page_lists_operations_and_schemas_without_scripts(site):
    response = await site.client.get("/api/docs")
    assert response.status == 200 and response.content_type == "text/html"
    text = await response.text()
    assert 'data-operation="POST /api/drops/{drop_id}/restock"' in text
    assert 'id="schema-RestockBody"' in text and "<code>units</code>" in text
    assert "<script" not in text
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    css = [line for line in text.splitlines() if "stylesheet" in line]
    assert all('href="/static/' in line for line in css)  # nothing from elsewhere


# -- what the fuzz test found ----------------------------------------------------------------


async def test_a_body_that_is_not_json_names_the_body(site):
    response = await site.client.post(
        "/api/drops", data=b"\x00", headers={**site.admin, "Content-Type": "application/json"}
    )
    assert response.status == 400
    assert await response.json() == {
        "error": "BAD_JSON",
        "message": "the body is not valid JSON: Expecting value: line 1 column 1 (char 0)",
        "field": "body",
    }


async def test_an_sku_the_drop_does_not_sell_names_the_sku(site):
    drop_id = await live_drop(site.commerce, capsule_spec(2))
    response = await site.client.post(
        f"/api/drops/{drop_id}/restock", json={"sku": "NOPE", "units": 1}, headers=site.admin
    )
    assert response.status == 422
    body = await response.json()
    assert (body["error"], body["field"]) == ("UNKNOWN_ITEM", "sku")


async def test_a_price_too_large_to_store_is_422_not_500(site):
    drop_id = await live_drop(site.commerce, capsule_spec(2))
    for price in ("1e30", "99999999999999999999"):
        response = await site.client.post(
            f"/api/drops/{drop_id}/price", json={"price": price}, headers=site.admin
        )
        assert response.status == 422, price
        assert (await response.json())["field"] == "price"
    spec = capsule_spec(2)
    spec["products"][0]["price"] = "1e30"
    created = await site.client.post("/api/drops", json=spec, headers=site.admin)
    assert created.status == 422 and (await created.json())["field"] == "products[0].price"
    view = await site.commerce.drops.view(drop_id)
    assert view.products["CHIPS-SPICY"].price.amount_minor == 1200  # unchanged


async def test_text_no_database_can_hold_is_422_naming_the_field(site):
    """A NUL character made PostgreSQL fail (500); a lone surrogate broke both engines."""
    drop_id = await live_drop(site.commerce, capsule_spec(2))
    order = await paid_order(site.commerce, drop_id, "discord:1")
    spec = capsule_spec(2)
    spec["products"][0]["title"] = "chips\x00"
    created = await site.client.post("/api/drops", json=spec, headers=site.admin)
    assert created.status == 422
    assert await created.json() == {
        "error": "INVALID_INPUT",
        "message": "products[0].title: must not contain a NUL character",
        "field": "products[0].title",
    }
    surrogate = b'{"drop": {"title": "a\\ud800"}, "items": []}'
    response = await site.client.post(
        "/api/drops", data=surrogate, headers={**site.admin, "Content-Type": "application/json"}
    )
    assert response.status == 422 and (await response.json())["field"] == "drop.title"
    refund = await site.client.post(
        f"/api/orders/{order.id}/refund", json={"reason": "bad\x00"}, headers=site.admin
    )
    assert refund.status == 422 and (await refund.json())["field"] == "reason"
    assert (await site.commerce.orders.get(order.id)).refund_reason is None


async def test_an_unknown_field_in_an_admin_body_is_422_naming_it(site):
    drop_id = await live_drop(site.commerce, capsule_spec(2))
    response = await site.client.post(
        f"/api/drops/{drop_id}/restock",
        json={"sku": "CHIPS-SPICY", "units": 1, "pol": "ship"},
        headers=site.admin,
    )
    assert response.status == 422
    assert await response.json() == {
        "error": "INVALID_INPUT",
        "message": "pol: unknown field",
        "field": "pol",
    }
    assert (await site.commerce.drops.view(drop_id)).stock[0].total == 2


async def test_a_carriers_csv_the_csv_module_cannot_read_is_400_naming_the_line(site):
    """A lone carriage return in a field made the csv module raise (500)."""
    drop_id = await live_drop(site.commerce, capsule_spec(2))
    order = await paid_order(site.commerce, drop_id, "discord:1")
    headers = {**site.admin, "Content-Type": "text/csv"}
    lone_cr = f"order,carrier,tracking\n{order.id},DHL,JD01\rX\n"
    shipped = await site.client.post("/api/orders/ship", data=lone_cr, headers=headers)
    assert shipped.status == 400, await shipped.text()  # the \r ends the line: X is no order
    assert (await shipped.json())["field"] == "csv"
    huge = f'order,carrier,tracking\n{order.id},DHL,"{"x" * 200_000}"\n'
    response = await site.client.post("/api/orders/ship", data=huge, headers=headers)
    assert response.status == 400
    body = await response.json()
    assert body["field"] == "csv" and "line 2: field larger than field limit" in body["message"]
    assert (await site.commerce.orders.get(order.id)).tracking is None


async def test_a_wrong_type_in_a_field_that_takes_several_names_the_field_alone(site):
    """The field of an error in a union-typed value carried pydantic's tag for the member
    (``products[0].price.constrained-str``)."""
    spec = capsule_spec(2)
    spec["products"][0]["price"] = [12]
    response = await site.client.post("/api/drops", json=spec, headers=site.admin)
    assert response.status == 422
    assert (await response.json())["field"] == "products[0].price"
    listed = await site.client.get("/api/orders", params={"status": "nope"}, headers=site.admin)
    assert listed.status == 422 and (await listed.json())["field"] == "status"
