"""`dropcast webhook …`: add prints the secret once, list never does, remove and enable; bad
input exits 2 with one line naming the problem and adds nothing. Both engines."""

from __future__ import annotations

import json

import pytest

from commerce.storage.tables import webhook_deliveries, webhook_endpoints
from tests.cli.test_cli import row_count

URL = "https://hooks.example.com/dropcast"


def test_add_prints_the_secret_once_and_list_shows_the_webhook_without_it(dropcast):
    code, out, err = dropcast("webhook", "add", URL, "--events", "order.paid, drop.sold_out")
    assert code == 0, err
    assert "added webhook 1: " + URL in out
    secret = next(line.split()[-1] for line in out.splitlines() if "secret" in line.split()[:1])
    assert secret.startswith("whsec_") and len(secret) > 40
    code, out, _ = dropcast("webhook", "list")
    assert code == 0 and URL in out and "order.paid, drop.sold_out" in out
    assert "active" in out and secret not in out
    code, out, _ = dropcast("webhook", "list", "--json")
    (listed,) = json.loads(out)
    assert listed["events"] == ["order.paid", "drop.sold_out"] and "secret" not in listed


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["ftp://x.example/h", "--events", "order.paid"], "url: 'ftp://x.example/h' is not an"),
        (["https://", "--events", "order.paid"], "url:"),
        ([URL, "--events", "order.paid,order.shipped"], "unknown event order.shipped; known: "),
        ([URL, "--events", " , "], "events: name at least one of: drop.opened"),
        ([URL], "Missing option '--events'"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_adds_nothing(dropcast, args, expected):
    code, out, err = dropcast("webhook", "add", *args)
    assert code == 2, (out, err)
    assert expected in err and len(err.strip().splitlines()) == 1, err
    assert row_count(dropcast.url, webhook_endpoints) == 0


def test_remove_deletes_the_webhook_and_its_queued_deliveries(dropcast):
    assert dropcast("webhook", "add", URL, "--events", "order.paid")[0] == 0
    code, _, err = dropcast("webhook", "test", "1", "--wait", "0")
    assert code == 1 and "queued, not delivered within 0 s" in err  # no server runs here
    assert row_count(dropcast.url, webhook_deliveries) == 1
    assert dropcast("webhook", "remove", "1")[:2] == (0, "removed webhook 1\n")
    assert row_count(dropcast.url, webhook_deliveries) == 0
    assert dropcast("webhook", "list")[1] == "no webhooks yet\n"
    for command in ("remove", "test", "enable"):
        code, _, err = dropcast("webhook", command, "1")
        assert (code, err) == (2, "dropcast: error: webhook 1 does not exist\n")
    code, _, err = dropcast("webhook", "remove", "one")
    assert code == 2 and "'one' is not a valid integer" in err
