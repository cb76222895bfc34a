"""``GET /api/openapi.json`` and ``GET /api/docs``: the API's description, built once per app
from the router and the operations (``commerce/web/openapi.py``), and a plain page that
renders it on the server (no script, so the strict CSP holds and nothing loads from a CDN)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from commerce.web.context import CONTEXT, WebContext
from commerce.web.openapi import JSON, Media, build_spec, operation
from commerce.web.pages import page

API_VERSION = "1.0"  # the API's own version: bump it when a change breaks a client
SPEC_CACHE = "public, max-age=60"


@dataclass(frozen=True, slots=True)
class BuiltSpec:
    document: dict[str, Any]
    body: bytes
    etag: str


def spec_of(request: web.Request) -> BuiltSpec:
    """The app's OpenAPI document, built at its first request and kept: the routes and
    models do not change while the app runs."""
    ctx = request.app[CONTEXT]
    if ctx.openapi is None:
        document = build_spec(request.app.router, title="dropcast", version=API_VERSION)
        body = json.dumps(document, separators=(",", ":")).encode()
        ctx.openapi = BuiltSpec(document, body, f'"{hashlib.sha256(body).hexdigest()[:16]}"')
    spec = ctx.openapi
    assert isinstance(spec, BuiltSpec)
    return spec


@operation(
    "This description (OpenAPI 3.1)",
    tag="meta",
    reply=Media(JSON, "The OpenAPI 3.1 document", {"type": "object"}),
)
async def openapi_json(request: web.Request) -> web.Response:
    """Every JSON route with its parameters, bodies, answers and who may call it."""
    spec = spec_of(request)
    headers = {"Cache-Control": SPEC_CACHE, "ETag": spec.etag}
    if request.headers.get("If-None-Match") == spec.etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=spec.body, content_type=JSON, headers=headers)


@operation(
    "This description as a page",
    tag="meta",
    reply=Media("text/html", "The operations, their parameters and the schemas"),
)
async def api_docs(request: web.Request) -> web.Response:
    """The OpenAPI document rendered as one HTML page."""
    ctx = request.app[CONTEXT]
    document = spec_of(request).document
    return page(ctx, "api_docs.html", cache=SPEC_CACHE, **docs_view(ctx, document))


# -- the page's view of the document ------------------------------------------------------------


def type_text(schema: dict[str, Any]) -> str:
    """A schema in a few words: ``string``, ``integer | null``, ``list of OrderReply``."""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(type_text(s) for s in schema["anyOf"])
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    kind = schema.get("type")
    if kind == "array":
        return f"list of {type_text(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map of {type_text(schema['additionalProperties'])}"
    text = str(kind or "any")
    if "pattern" in schema:
        text += f" matching {schema['pattern']}"
    return text


def _schema_rows(schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(schema.get("required", ()))
    return [
        {
            "name": name,
            "type": type_text(prop),
            "required": name in required,
            "description": prop.get("description", ""),
        }
        for name, prop in schema.get("properties", {}).items()
    ]


def docs_view(ctx: WebContext, document: dict[str, Any]) -> dict[str, Any]:
    operations = []
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            security = [" or ".join(s) for s in op["security"]]
            body = op.get("requestBody", {}).get("content", {})
            operations.append(
                {
                    "id": op["operationId"],
                    "method": method.upper(),
                    "path": path,
                    "summary": op["summary"],
                    "description": op.get("description", ""),
                    "tag": op["tags"][0],
                    "security": " or ".join(security) if security else "none (public)",
                    "parameters": [
                        {
                            "name": p["name"],
                            "in": p["in"],
                            "required": p["required"],
                            "type": type_text(p["schema"]),
                            "description": p.get("description", ""),
                        }
                        for p in op["parameters"]
                    ],
                    "body": [
                        {"media": media, "type": type_text(c.get("schema", {}))}
                        for media, c in body.items()
                    ],
                    "responses": [
                        {
                            "status": status,
                            "description": r["description"],
                            "types": [
                                f"{media}: {type_text(c.get('schema', {}))}"
                                for media, c in r.get("content", {}).items()
                            ],
                        }
                        for status, r in op["responses"].items()
                    ],
                }
            )
    schemas = [
        {
            "name": name,
            "description": schema.get("description", ""),
            "type": type_text(schema) if "properties" not in schema else "object",
            "fields": _schema_rows(schema),
        }
        for name, schema in sorted(document["components"]["schemas"].items())
    ]
    return {
        "title": document["info"]["title"],
        "version": document["info"]["version"],
        "intro": document["info"]["description"],
        "base_url": ctx.base_url,
        "operations": operations,
        "schemas": schemas,
    }
