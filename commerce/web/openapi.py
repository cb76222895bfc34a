"""The OpenAPI 3.1 description of the JSON API, built from the routes themselves.

Each JSON handler carries an ``@operation(...)`` (summary, who may call it, its body, query
and reply models from ``commerce/web/schemas.py``); the handler reads its body through the
same model (``commerce.web.api.read_body`` checks it is the one documented here). Paths and
path parameters, with their patterns, come from the aiohttp router, so a route and its
operation cannot disagree. ``undocumented(router)`` lists the routes under ``/api/`` that
have no operation: a test keeps that list empty.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from commerce.web.schemas import ErrorBody, validated

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)
M = TypeVar("M", bound=BaseModel)
JSON = "application/json"
DOCUMENTED_PREFIXES = ("/api/",)  # every route under these needs an operation


class Access(StrEnum):
    PUBLIC = "public"
    ADMIN = "admin"  # the bearer token
    ADMIN_READER = "admin_reader"  # the bearer token, or the dashboard's session cookie
    PROVIDER = "provider"  # a payment provider, verified by its gateway's signature


@dataclass(frozen=True, slots=True)
class Media:
    """A body that is not one of our models: a CSV file, an event stream, a page."""

    media_type: str
    description: str = ""
    schema: dict[str, Any] | None = None


Content = type[BaseModel] | Media


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    summary: str
    description: str
    tag: str
    access: Access
    body: Content | None
    query: type[BaseModel] | None
    replies: tuple[Content, ...]
    status: int
    errors: tuple[int, ...]
    not_fuzzed: str | None  # why the fuzz test leaves this operation out

    @property
    def body_model(self) -> type[BaseModel] | None:
        return None if self.body is None or isinstance(self.body, Media) else self.body


OPERATIONS: dict[Handler, Operation] = {}

# What each error status means here; the body is always ErrorBody.
ERROR_STATUSES = {
    400: "Malformed request: the body is not what the operation reads (``field`` says where)",
    401: "The bearer token is missing or wrong",
    403: "Not allowed (the admin API is off, or this is not yours)",
    404: "No such drop, order or route",
    409: "Not possible in the current state",
    410: "Gone: the hold or link has ended",
    422: "A field is invalid: ``field`` names it",
    429: "Too many attempts: wait for Retry-After seconds",
    502: "The payment provider or mail server did not answer as it should",
    503: "The database cannot be reached: try again after Retry-After seconds",
}


def operation(
    summary: str,
    *,
    tag: str,
    access: Access = Access.PUBLIC,
    body: Content | None = None,
    query: type[BaseModel] | None = None,
    reply: Content | tuple[Content, ...],
    status: int = 200,
    errors: tuple[int, ...] = (),
    not_fuzzed: str | None = None,
) -> Callable[[H], H]:
    """Document a handler as one operation of the API. Errors the operation can always
    answer (bad body, unknown id, wrong token, database down) are added from its shape;
    ``errors`` adds the others (409 for a state conflict, 502 for a gateway)."""

    def register(handler: H) -> H:
        OPERATIONS[handler] = Operation(
            name=handler.__name__,
            summary=summary,
            description=inspect.cleandoc(handler.__doc__ or ""),
            tag=tag,
            access=access,
            body=body,
            query=query,
            replies=reply if isinstance(reply, tuple) else (reply,),
            status=status,
            errors=errors,
            not_fuzzed=not_fuzzed,
        )
        return handler

    return register


def operation_of(handler: Handler) -> Operation | None:
    """The operation ``handler`` documents, also when it is wrapped (the app's edge)."""
    return OPERATIONS.get(inspect.unwrap(handler))


def read_query(request: web.Request, model: type[M]) -> M:
    """The query string validated by ``model``, which must be the query the handler's
    ``@operation`` documents."""
    documented = operation_of(request.match_info.route.handler)
    assert documented is not None and documented.query is model, "read the documented query"
    return validated(model, dict(request.query), "query")


# -- from the router ---------------------------------------------------------------------------


def _groups(pattern: str) -> dict[str, str]:
    """The named groups of a route's regex and their own patterns, in order."""
    groups: dict[str, str] = {}
    for match in re.finditer(r"\(\?P<(\w+)>", pattern):
        depth, i = 1, match.end()
        while depth:
            char = pattern[i]
            if char == "\\":
                i += 2
                continue
            depth += {"(": 1, ")": -1}.get(char, 0)
            i += 1
        groups[match[1]] = pattern[match.end() : i - 1]
    return groups


def path_parameters(resource: web.AbstractResource) -> dict[str, str]:
    """Each parameter of a route's path and the pattern the router matches it with."""
    compiled = resource.get_info().get("pattern")
    return _groups(compiled.pattern) if isinstance(compiled, re.Pattern) else {}


def documented_routes(
    router: web.UrlDispatcher,
) -> Iterator[tuple[web.AbstractResource, str, Handler]]:
    """Every (resource, method, handler) of the router but the HEAD twin of a GET; the
    handler as written, not as wrapped (the app's edge)."""
    for resource in router.resources():
        for route in resource:
            if route.method != "HEAD":
                yield resource, route.method, inspect.unwrap(route.handler)


def undocumented(router: web.UrlDispatcher) -> list[str]:
    """The routes under DOCUMENTED_PREFIXES that no operation describes, as "GET /path"."""
    return [
        f"{method} {resource.canonical}"
        for resource, method, handler in documented_routes(router)
        if resource.canonical.startswith(DOCUMENTED_PREFIXES) and handler not in OPERATIONS
    ]


# -- the document ------------------------------------------------------------------------------

SECURITY_SCHEMES = {
    "adminToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "security.admin_token (DROPCAST_SECURITY__ADMIN_TOKEN)",
    },
    "dashboardSession": {
        "type": "apiKey",
        "in": "cookie",
        "name": "dc_admin",
        "description": "the dashboard's session, set by /dashboard?token=…",
    },
}
SECURITY: dict[Access, list[dict[str, list[str]]]] = {
    Access.PUBLIC: [],
    Access.PROVIDER: [],
    Access.ADMIN: [{"adminToken": []}],
    Access.ADMIN_READER: [{"adminToken": []}, {"dashboardSession": []}],
}


def _models(operations: list[Operation]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    seen: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(ErrorBody, "serialization"): None}
    for op in operations:
        if op.body_model is not None:
            seen[(op.body_model, "validation")] = None
        if op.query is not None:
            seen[(op.query, "validation")] = None
        for reply in op.replies:
            if not isinstance(reply, Media):
                seen[(reply, "serialization")] = None
    return list(seen)


def _content(content: Content, refs: dict[Any, dict[str, Any]], mode: str) -> dict[str, Any]:
    if isinstance(content, Media):
        return {content.media_type: {"schema": content.schema} if content.schema else {}}
    return {JSON: {"schema": refs[(content, mode)]}}


def _parameters(
    op: Operation, path: dict[str, str], components: dict[str, Any]
) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": f"^{regex}$"},
        }
        for name, regex in path.items()
    ]
    if op.query is not None:
        schema = components[op.query.__name__]
        required = set(schema.get("required", ()))
        for name, prop in schema["properties"].items():
            param = {"name": name, "in": "query", "required": name in required}
            if "description" in prop:
                param["description"] = prop["description"]
            param["schema"] = _query_schema(prop)
            params.append(param)
    return params


def _query_schema(prop: dict[str, Any]) -> dict[str, Any]:
    """A query field's schema without what a query string cannot say: a value left out is
    not sent, so there is no ``null`` (nor a ``default: null``)."""
    schema = {k: v for k, v in prop.items() if k not in ("description", "title", "default")}
    branches = [b for b in schema.pop("anyOf", []) if b != {"type": "null"}]
    if len(branches) == 1:
        schema.update(branches[0])
    elif branches:
        schema["anyOf"] = branches
    return schema


def _error_statuses(op: Operation, has_path: bool) -> list[int]:
    statuses = {503, *op.errors}
    if op.body is not None:
        statuses |= {400, 422}  # 400: not the JSON object or CSV file it reads
    if op.query is not None:
        statuses.add(422)
    if has_path:
        statuses.add(404)
    if op.access in (Access.ADMIN, Access.ADMIN_READER):
        statuses |= {401, 403, 429}
    return sorted(statuses)


def _operation(
    op: Operation,
    path: dict[str, str],
    refs: dict[Any, dict[str, Any]],
    components: dict[str, Any],
) -> dict[str, Any]:
    replies: dict[str, Any] = {}
    for reply in op.replies:
        entry = replies.setdefault(str(op.status), {"description": "", "content": {}})
        entry["content"].update(_content(reply, refs, "serialization"))
        described = reply.description if isinstance(reply, Media) else reply.__doc__
        if not entry["description"] and described:
            entry["description"] = inspect.cleandoc(described).splitlines()[0]
    for entry in replies.values():
        entry["description"] = entry["description"] or "OK"
    error_ref = {JSON: {"schema": refs[(ErrorBody, "serialization")]}}
    if 304 in op.errors:
        replies["304"] = {"description": "Not modified: the ETag in If-None-Match still holds"}
    for status in _error_statuses(op, bool(path)):
        if status < 400:
            continue
        entry = {"description": ERROR_STATUSES.get(status, "Error"), "content": error_ref}
        if status in (429, 503):
            entry["headers"] = {"Retry-After": {"schema": {"type": "string"}}}
        replies[str(status)] = entry
    doc: dict[str, Any] = {
        "operationId": op.name,
        "summary": op.summary,
        "tags": [op.tag],
        "security": SECURITY[op.access],
        "parameters": _parameters(op, path, components),
        "responses": replies,
    }
    if op.description:
        doc["description"] = op.description
    if op.body is not None:
        doc["requestBody"] = {"required": True, "content": _content(op.body, refs, "validation")}
    if op.not_fuzzed:
        doc["x-not-fuzzed"] = op.not_fuzzed
    return doc


def build_spec(router: web.UrlDispatcher, *, title: str, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every documented route of ``router``."""
    found = [
        (resource, method, OPERATIONS[handler])
        for resource, method, handler in documented_routes(router)
        if handler in OPERATIONS
    ]
    refs, schemas = models_json_schema(
        _models([op for _, _, op in found]), ref_template="#/components/schemas/{model}"
    )
    components: dict[str, Any] = schemas.get("$defs", {})
    names = [op.name for _, _, op in found]
    if len(set(names)) != len(names):
        raise ValueError(f"two operations share a handler name: {sorted(names)}")
    paths: dict[str, dict[str, Any]] = {}
    for resource, method, op in found:
        entry = _operation(op, path_parameters(resource), refs, components)
        paths.setdefault(resource.canonical, {})[method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": (
                "Live-commerce drops from chat: the public drop state and the creator's "
                "admin API. Admin operations need `Authorization: Bearer <admin token>`. "
                "Every error is JSON: `error` (a stable code), `message` and, when a field "
                "is at fault, `field`."
            ),
        },
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": SECURITY_SCHEMES},
    }
