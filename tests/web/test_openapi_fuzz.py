"""schemathesis against the running app, both engines: every operation of /api/openapi.json
with generated requests (valid and invalid, a bounded number each), the admin's bearer token,
and a seeded drop and order so ids in paths also hit real data.

Checked for every response: no 5xx; the status is one the operation documents; the body
matches the documented schema and media type; and a 400 or 422 names the field at fault,
a field the operation has (``field_named``). Operations marked ``x-not-fuzzed`` in the spec
(the event stream, the provider webhook) are left out; the spec says why.

The examples are the same every run. More, and others:
``DROPCAST_FUZZ_EXAMPLES=200 DROPCAST_FUZZ_SEED=7 pytest tests/web/test_openapi_fuzz.py``.
"""

from __future__ import annotations

import asyncio
import os
import re
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.helpers import capsule_spec, live_drop
from tests.web.conftest import ADMIN
from tests.web.test_order_desk_api import paid_order

EXAMPLES = int(os.environ.get("DROPCAST_FUZZ_EXAMPLES", "12"))
SEED = os.environ.get("DROPCAST_FUZZ_SEED")  # unset: the same examples every run
HEADERS = {"Authorization": f"Bearer {ADMIN}"}


def field_roots(spec: dict[str, Any]) -> dict[str, set[str]]:
    """For each operation ("POST /api/drops"), the names an error's ``field`` may start
    with: its parameters, its JSON body's fields, and ``body`` / ``query`` / ``csv`` for
    the whole body, query string or CSV file."""
    schemas = spec["components"]["schemas"]
    roots: dict[str, set[str]] = {}
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            names = {p["name"] for p in op["parameters"]} | {"body", "query"}
            content = op.get("requestBody", {}).get("content", {})
            if "text/csv" in content:
                names.add("csv")
            ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
            if ref:
                names |= set(schemas[ref.rsplit("/", 1)[-1]].get("properties", {}))
            roots[f"{method.upper()} {path}"] = names
    return roots


# Operations no generated request can bring to a 2xx against the seeded data, and why.
NO_2XX = {
    "POST /api/orders/{order_id}/picked-up": "the seeded order ships; it is never picked up",
}


def body_examples(spec: dict[str, Any], operation: Any) -> list[Any]:
    """The examples of an operation's body (valid bodies that reach its logic)."""
    examples: list[Any] = []
    for content in operation.definition.raw.get("requestBody", {}).get("content", {}).values():
        schema = content.get("schema", {})
        if "$ref" in schema:
            schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
        examples.extend(schema.get("examples", []))
    return examples


def last_if_final(operation: Any) -> bool:
    """Closing the drop, refunding the order and removing the webhook end what the other
    operations act on."""
    return operation.method.upper() == "DELETE" or operation.path.endswith(("/close", "/refund"))


# A field path whose keys need no quoting (a key with "." or "[" in it cannot be walked back).
PLAIN_PATH = re.compile(r"[\w:*-]+(\.[\w:*-]+|\[\d+\])*", re.ASCII)


def assert_in_body(field: str, body: Any, message: str) -> None:
    """``items[0].pools.ship`` names a value of ``body``, or the one key it lacks."""
    parts = re.findall(r"[^.\[\]]+|\[\d+\]", field)
    for i, part in enumerate(parts):
        if part.startswith("["):
            index = int(part[1:-1])
            assert isinstance(body, list) and index < len(body), f"{field!r}: no {part}"
            body = body[index]
        elif isinstance(body, dict) and part in body:
            body = body[part]
        else:
            missing = i == len(parts) - 1 and message.endswith("is required")
            assert missing, f"{field!r} is not in the body sent: no {part!r}"


def fuzz(base_url: str, ids: dict[str, str]) -> tuple[list[str], dict[str, set[int]]]:
    """Run every fuzzable operation: the problems found (a report and an example each) and
    the statuses each operation answered. Blocking (schemathesis sends with requests): run
    it in a thread beside the server."""
    schema = schemathesis.openapi.from_url(f"{base_url}/api/openapi.json")
    roots = field_roots(schema.raw_schema)

    def field_named(ctx: Any, response: Any, case: Any) -> bool | None:
        """A 400 or 422 is the client's fault: the body must say which field."""
        if response.status_code not in (400, 422):
            return None
        field = response.json().get("field")
        assert isinstance(field, str) and field, f"{response.status_code} names no field"
        root = re.split(r"[.\[]", field, maxsplit=1)[0]
        known = roots[case.operation.label]
        if isinstance(case.body, dict):  # "unknown field" names the client's own key
            known = known | set(case.body)
            if root in case.body and PLAIN_PATH.fullmatch(field):  # the path is what was sent
                assert_in_body(field, case.body, response.json()["message"])
        assert root in known, f"field {field!r} is not one of {sorted(known)}"
        return True

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        field_named,
    ]
    problems: list[str] = []
    statuses: dict[str, set[int]] = {}
    results = list(schema.get_all_operations())
    assert all(isinstance(r, Ok) for r in results), "the spec has an invalid operation"
    operations = sorted((r.ok() for r in results if isinstance(r, Ok)), key=last_if_final)
    for operation in operations:
        if operation.definition.raw.get("x-not-fuzzed"):
            continue
        statuses[operation.label] = set()
        strategies = [
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        ]
        real = {p.name: ids[p.name] for p in operation.path_parameters if p.name in ids}
        if real:
            strategies.append(operation.as_strategy(path_parameters=real))
        for body in body_examples(schema.raw_schema, operation):
            strategies.append(operation.as_strategy(path_parameters=real, body=body))

        @settings(
            max_examples=EXAMPLES * len(strategies),
            deadline=None,
            database=None,
            derandomize=SEED is None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
        )
        @given(case=st.one_of(strategies))
        def run(case: Any) -> None:
            # Negative cases also spoil the bearer header: that would test only the 401 (and
            # then the sign-in throttle's 429), never the operation behind it.
            case.headers = {**(case.headers or {}), **HEADERS}
            response = case.call(base_url=base_url)
            statuses[case.operation.label].add(response.status_code)
            case.validate_response(response, checks=checks, headers=HEADERS)

        if SEED is not None:
            run = seed(int(SEED))(run)
        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis's FailureGroup is a Base…
            problems.append(f"{operation.label}: {exc}")
    return problems, statuses


async def test_schemathesis_finds_no_5xx_and_every_response_matches_the_spec(site):
    drop_id = await live_drop(site.commerce, capsule_spec(5))
    order = await paid_order(site.commerce, drop_id, "discord:1")
    base_url = str(site.client.make_url("")).rstrip("/")
    hook = await site.commerce.webhooks.add("http://127.0.0.1:9/hooks", ["order.paid"])
    ids = {"drop_id": str(drop_id), "order_id": str(order.id), "endpoint_id": str(hook.endpoint.id)}
    problems, statuses = await asyncio.to_thread(fuzz, base_url, ids)
    assert not problems, "\n\n".join(problems)
    assert len(statuses) >= 15, f"only {sorted(statuses)} were fuzzed"
    for label, seen in statuses.items():  # the requests got past the checks to the logic
        if label not in NO_2XX:
            assert any(200 <= status < 300 for status in seen), f"{label}: only {sorted(seen)}"
