"""`drop restock` adds to pools the item has (a typo never opens a pickup point) and names
bad units plainly; `drop price` changes a price only with no hold open; `link` is in the
funnel before the process exits. Both engines."""

from __future__ import annotations

import json

from commerce.storage.tables import activity
from tests.cli.test_cli import GOOD_DROP, row_count, write


def created(dropcast, tmp_path) -> str:
    code, out, _ = dropcast("drop", "create", write(tmp_path, GOOD_DROP), "--json")
    assert code == 0
    return str(json.loads(out)["id"])


def pools(dropcast, drop_id: str) -> list[tuple[str, int]]:
    state = json.loads(dropcast("drop", "show", drop_id, "--json")[1])
    return [(p["pool"], p["total"]) for item in state["items"] for p in item["pools"]]


def test_a_restock_to_a_pool_the_item_lacks_is_refused_and_changes_nothing(dropcast, tmp_path):
    drop_id = created(dropcast, tmp_path)
    code, _, err = dropcast(
        "drop", "restock", drop_id, "CHIPS-SPICY", "2", "--pool", "pickup:nowhere"
    )
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "no pool 'pickup:nowhere'" in err and "--new-pool" in err
    assert pools(dropcast, drop_id) == [("ship", 8)]


def test_a_new_pool_opens_only_when_asked_for(dropcast, tmp_path):
    drop_id = created(dropcast, tmp_path)
    code, out, _ = dropcast(
        "drop", "restock", drop_id, "CHIPS-SPICY", "2", "--pool", "pickup:deli", "--new-pool"
    )
    assert code == 0 and "restocked 2" in out
    assert pools(dropcast, drop_id) == [("ship", 8), ("pickup:deli", 2)]


def test_negative_units_get_a_range_message_not_an_option_error(dropcast, tmp_path):
    drop_id = created(dropcast, tmp_path)
    code, _, err = dropcast("drop", "restock", drop_id, "CHIPS-SPICY", "-3")
    assert code == 2 and "No such option" not in err
    assert "UNITS" in err and "-3" in err and "1<=x<=1000000" in err
    assert pools(dropcast, drop_id) == [("ship", 8)]


def test_price_changes_from_the_command_line(dropcast, tmp_path):
    drop_id = created(dropcast, tmp_path)
    code, out, err = dropcast("drop", "price", drop_id, "14.00")
    assert (code, err) == (0, "") and "14.00" in out
    state = json.loads(dropcast("drop", "show", drop_id, "--json")[1])
    assert state["items"][0]["price_minor"] == 1400
    code, _, err = dropcast("drop", "price", drop_id, "-1")
    assert code == 2 and "price" in err and len(err.strip().splitlines()) == 1


def test_a_link_from_the_command_line_is_recorded_before_the_process_exits(dropcast, tmp_path):
    drop_id = created(dropcast, tmp_path)
    code, out, _ = dropcast("link", drop_id, "--customer", "discord:123")
    assert code == 0 and "/c/" in out
    assert row_count(dropcast.url, activity) == 1
