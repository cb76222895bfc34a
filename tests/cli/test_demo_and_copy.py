"""A newcomer never dead-ends: the demo reuses its drop while it is open and seeds a fresh one
once it has closed; a closed drop is run again through `drop copy` or `rehearse --fresh`,
and the refusals say so. In-process, both engines."""

from __future__ import annotations

import json

import pytest

from commerce.domain.model import DropState
from config.settings import Settings
from dropcast.app import App
from tests.cli.test_cli import GOOD_DROP, write

BUNDLE_DROP = """
[drop]
title = "Chips + salsa bundle"
format = "bundle"
price = "8.50"
hold_seconds = 90
per_customer_limit = 2
objective = { metric = "sell_through_pct", target = 80 }

[[products]]
sku = "CHIPS"
title = "Chips"
price = "5.00"
currency = "EUR"

[[products]]
sku = "SALSA"
title = "Salsa"
price = "4.50"
currency = "EUR"

[[items]]
sku = "CHIPS"
pools = { ship = 4 }
per_bundle = 2

[[items]]
sku = "SALSA"
pools = { ship = 3 }
"""


async def test_the_demo_reuses_its_open_drop_and_seeds_a_fresh_one_once_it_closed(database_url):
    app = await App.open(Settings(database={"url": database_url}))
    try:
        first = await app.seed_demo()
        assert await app.seed_demo() == first  # a restart: same id, same links
        await app.commerce.drops.open(first)
        assert await app.seed_demo() == first  # live is still open
        await app.commerce.drops.close(first)
        fresh = await app.seed_demo()
        assert fresh != first
        drop = await app.commerce.drops.get(fresh)
        assert drop.state is DropState.SCHEDULED and drop.closes_at is None
        assert await app.seed_demo() == fresh
    finally:
        await app.close()


def show(dropcast, drop_id: int) -> dict:
    code, out, err = dropcast("drop", "show", str(drop_id), "--json")
    assert code == 0, err
    return json.loads(out)


def what_is_sold(data: dict) -> dict:
    """A drop's settings, catalogue and pool totals: what a copy must repeat."""
    keys = ("title", "format", "hold_seconds", "per_customer_limit", "price", "objective", "total")
    items = [
        {
            **{k: v for k, v in item.items() if k != "pools"},
            "pools": {p["pool"]: p["total"] for p in item["pools"]},
        }
        for item in data["items"]
    ]
    return {**{k: data[k] for k in keys}, "items": items}


@pytest.mark.parametrize("body", [GOOD_DROP, BUNDLE_DROP], ids=["capsule", "bundle"])
def test_drop_copy_makes_a_new_drop_from_a_closed_one(dropcast, tmp_path, body):
    code, out, _ = dropcast("drop", "create", write(tmp_path, body), "--json")
    original = json.loads(out)["id"]
    assert dropcast("drop", "open", str(original))[0] == 0
    assert dropcast("drop", "close", str(original))[0] == 0

    code, out, err = dropcast("drop", "copy", str(original), "--json")
    assert code == 0, err
    copy = json.loads(out)
    assert copy["copy_of"] == original and copy["id"] != original
    before, after = show(dropcast, original), show(dropcast, copy["id"])
    assert after["state"] == "draft" and after["opens_at"] is None
    assert what_is_sold(after) == what_is_sold(before)
    code, out, err = dropcast("drop", "open", str(copy["id"]))
    assert (code, out.strip()) == (0, f"drop {copy['id']} is live"), err


def test_copy_with_a_bad_opening_time_names_the_option(dropcast, tmp_path):
    code, out, _ = dropcast("drop", "create", write(tmp_path, GOOD_DROP), "--json")
    code, _, err = dropcast("drop", "copy", str(json.loads(out)["id"]), "--opens", "soon")
    assert code == 2 and err.startswith("dropcast: error: --opens: "), err
    assert dropcast("drop", "copy", "999")[0] == 2  # no such drop


def test_a_closed_drop_points_to_copy_and_fresh_instead_of_dead_ending(dropcast, tmp_path):
    code, out, _ = dropcast("drop", "create", write(tmp_path, GOOD_DROP), "--json")
    drop_id = json.loads(out)["id"]
    code, _, err = dropcast("rehearse", str(drop_id), "--viewers", "5")
    assert code == 2 and f"dropcast drop open {drop_id}" in err and "--fresh" in err, err
    assert dropcast("drop", "close", str(drop_id))[0] == 0
    code, _, err = dropcast("drop", "open", str(drop_id))
    assert code == 2 and f"dropcast drop copy {drop_id}" in err, err
    code, _, err = dropcast("rehearse", str(drop_id), "--viewers", "5")
    assert code == 2 and f"dropcast rehearse {drop_id} --fresh" in err, err
    assert len(err.strip().splitlines()) == 1
