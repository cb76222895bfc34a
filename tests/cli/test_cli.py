"""The dropcast CLI: the documented commands work; bad input exits 2 with one line and
writes nothing. Runs in-process against both engines."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from commerce.storage.database import Database
from commerce.storage.tables import drop_stock, drops, products
from tests.helpers import capsule_spec

GOOD_DROP = """
[drop]
title = "Spicy chips capsule"
format = "capsule"          # capsule | bundle | collab
opens_at = "+2m"
hold_seconds = 60
per_customer_limit = 1

[[products]]
sku = "CHIPS-SPICY"
title = "Spicy chips, 6-pack"
price = "12.00"
currency = "USD"

[[items]]
sku = "CHIPS-SPICY"
pools = { ship = 8 }
"""


def row_count(url: str, table) -> int:
    async def count() -> int:
        database = Database(url)
        try:
            async with database.read() as conn:
                result = await conn.execute(select(func.count()).select_from(table))
                return int(result.scalar_one())
        finally:
            await database.dispose()

    return asyncio.run(count())


def write(tmp_path: Path, body: str, name: str = "drop.toml") -> str:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return str(path)


def test_create_show_open_restock_and_link(dropcast, tmp_path):
    code, out, err = dropcast("drop", "create", write(tmp_path, GOOD_DROP), "--json")
    assert (code, err) == (0, "")
    drop_id = json.loads(out)["id"]

    code, out, _ = dropcast("drop", "show", str(drop_id), "--json")
    state = json.loads(out)
    assert state["state"] == "scheduled"
    pool = state["items"][0]["pools"][0]
    assert pool == {"pool": "ship", "total": 8, "available": 8, "held": 0, "sold": 0}

    assert dropcast("drop", "open", str(drop_id))[1].strip() == f"drop {drop_id} is live"
    code, out, _ = dropcast("drop", "restock", str(drop_id), "CHIPS-SPICY", "2")
    assert code == 0 and "restocked 2" in out
    code, out, _ = dropcast("drop", "show", str(drop_id))
    assert "CHIPS-SPICY" in out and "10" in out

    code, out, _ = dropcast("link", str(drop_id), "--customer", "discord:123", "--json")
    link = json.loads(out)
    assert link["url"].startswith("https://drops.example.com/c/")
    code, out, _ = dropcast("drop", "list")
    assert "Spicy chips capsule" in out and "live" in out


BAD_FILES = {
    "syntax": ("[drop\ntitle = 'x'", "line 1"),
    "missing title": (GOOD_DROP.replace('title = "Spicy chips capsule"', ""), "drop.title"),
    "bad format": (GOOD_DROP.replace('"capsule"  ', '"raffle"  '), "drop.format"),
    "negative units": (GOOD_DROP.replace("ship = 8", "ship = -1"), "items[0].pools"),
    "bad price": (GOOD_DROP.replace('"12.00"', '"12.001"'), "products[0].price"),
    "unknown sku": (
        GOOD_DROP.replace('sku = "CHIPS-SPICY"\npools', 'sku = "NOPE"\npools'),
        "items[0].sku",
    ),
    "bad time": (GOOD_DROP.replace('"+2m"', '"tomorrow"'), "drop.opens_at"),
    "unknown key": (GOOD_DROP.replace("hold_seconds = 60", "hold_secs = 60"), "drop.hold_secs"),
    "pickup in capsule": (GOOD_DROP.replace("ship = 8", 'ship = 4, "pickup:deli" = 4'), "collab"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_drop_file_names_the_field_exits_2_and_writes_nothing(dropcast, tmp_path, case):
    body, expected = BAD_FILES[case]
    code, out, err = dropcast("drop", "create", write(tmp_path, body))
    assert code == 2, (out, err)
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("dropcast: error: drop file") and expected in err
    for table in (drops, products, drop_stock):
        assert row_count(dropcast.url, table) == 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["drop", "show", "999"], "drop 999 does not exist"),
        (["drop", "show", "abc"], "'abc' is not a valid integer"),
        (["drop", "show"], "Missing argument"),
        (["drop", "create", "/nonexistent.toml"], "file not found"),
        (["drop", "restock", "1", "X", "0"], "UNITS"),
        (["link", "1", "--customer", "nobody"], "not an identity"),
        (["drop", "frobnicate"], "No such command"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(dropcast, args, expected):
    code, _, err = dropcast(*args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert expected in err


def test_a_bad_setting_names_the_key_and_exits_2(dropcast, monkeypatch):
    monkeypatch.setenv("DROPCAST_WEB__PORT", "99999")
    code, _, err = dropcast("drop", "list")
    assert code == 2 and "web.port" in err and len(err.strip().splitlines()) == 1


def test_restock_of_an_unknown_sku_changes_nothing(dropcast, tmp_path):
    code, out, _ = dropcast("drop", "create", write(tmp_path, GOOD_DROP), "--json")
    drop_id = json.loads(out)["id"]
    code, _, err = dropcast("drop", "restock", str(drop_id), "NOPE", "3")
    assert code == 2 and "'NOPE' is not sold" in err
    code, out, _ = dropcast("drop", "show", str(drop_id), "--json")
    assert json.loads(out)["total"] == 8


def test_capsule_spec_helper_matches_the_file_format():
    # The tests' spec helper and the documented file format describe the same structure.
    import tomllib

    assert tomllib.loads(GOOD_DROP).keys() == capsule_spec().keys()


def test_template_add_checks_the_schedule_and_writes_nothing_when_bad(dropcast, tmp_path):
    from commerce.storage.tables import drop_templates

    body = GOOD_DROP.replace('opens_at = "+2m"\n', "")
    path = write(tmp_path, body)
    for args, expected in [
        (["--cron", "99 * * * *"], "--cron"),
        (["--cron", "0 18 * * fri", "--tz", "Mars/Base"], "time zone"),
        (["--cron", "0 18 * * fri", "--lead", "soon"], "--lead"),
    ]:
        code, _, err = dropcast("template", "add", "friday", path, *args)
        assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, err
    assert row_count(dropcast.url, drop_templates) == 0
    code, out, err = dropcast(
        "template", "add", "friday", path, "--cron", "0 18 * * fri", "--tz", "Europe/Berlin"
    )
    assert code == 0, err
    assert "friday" in out and row_count(dropcast.url, drop_templates) == 1


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--cron", "* * * * *", "--tz", "Europe/Berlinn", "--lead", "90s"], "--tz"),
        (["--cron", "0 18 * * fri", "--tz", "Mars/Base"], "--tz"),
        (["--cron", "61 * * * *", "--tz", "Europe/Berlin"], "--cron"),
    ],
)
def test_template_add_names_the_option_that_is_wrong(dropcast, tmp_path, args, option):
    from commerce.storage.tables import drop_templates

    path = write(tmp_path, GOOD_DROP.replace('opens_at = "+2m"\n', ""))
    code, _, err = dropcast("template", "add", "weekly", path, *args)
    assert code == 2 and err.startswith(f"dropcast: error: {option}: "), err
    other = {"--tz", "--cron"} - {option}
    assert not any(name in err for name in other) and len(err.strip().splitlines()) == 1, err
    assert row_count(dropcast.url, drop_templates) == 0
