"""One request id follows a purchase from HTTP (or chat) into the logs, as JSON lines."""

from __future__ import annotations

import json
import logging

from dropcast.logs import JsonFormatter, install_request_ids
from tests.helpers import capsule_spec, live_drop


async def test_a_claim_over_http_logs_with_the_callers_request_id(site, caplog):
    drop_id = await live_drop(site.commerce, capsule_spec(2))
    install_request_ids()
    caplog.set_level(logging.INFO, logger="commerce.services.claims")
    token = site.token(drop_id, "discord:5")
    response = await site.client.get(f"/c/{token}", headers={"X-Request-Id": "req-abc.123"})
    assert response.status == 200
    assert response.headers["X-Request-Id"] == "req-abc.123"
    (record,) = [r for r in caplog.records if r.name == "commerce.services.claims"]
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "req-abc.123"
    assert (line["outcome"], line["drop_id"]) == ("held", drop_id)
    assert isinstance(line["hold_id"], int)


async def test_an_unsafe_request_id_is_replaced(site):
    response = await site.client.get("/healthz", headers={"X-Request-Id": "<script>"})
    assert response.headers["X-Request-Id"] != "<script>"
    assert len(response.headers["X-Request-Id"]) == 16
