"""The creator's order desk from the command line, on both engines: the packing list has
every address, a refund goes through the provider and gives a live drop's unit to the first
waitlisted customer (once), a carrier's CSV ships each order once and a bad one changes
nothing, and `customer forget` leaves no trace in the tables, the exports or the logs."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from commerce.clock import SystemClock
from commerce.core import Commerce
from commerce.domain.model import Address, ClaimOutcome, Money, OrderStatus
from commerce.domain.payments import PaymentError
from commerce.storage.database import Database
from tests.helpers import capsule_spec, collab_spec, live_drop
from tests.integration.test_personal_data import traces

T = TypeVar("T")

ANN = Address("Ann Lee", "1 Main St", "Springfield", "62701", "US", "Apt 4", "IL")
BOB = Address("Bob Roe", "Hauptstr. 5", "Berlin", "10115", "DE")
FIVE = Money(500, "USD")


def seed(url: str, work: Callable[[Commerce], Awaitable[T]]) -> T:
    """Run ``work`` against the CLI's database, as another process would."""

    async def go() -> T:
        database = Database(url)
        try:
            return await work(Commerce.build(database, clock=SystemClock()))
        finally:
            await database.dispose()

    return asyncio.run(go())


async def buy(commerce: Commerce, drop_id: int, identity: str, ship_to: Address, **kw: Any) -> int:
    customer = await commerce.customers.resolve(identity, kw.pop("name", None))
    held = await commerce.claims.claim(drop_id, customer)
    assert held.outcome is ClaimOutcome.HELD, held
    assert held.hold is not None, held
    order = await commerce.orders.checkout(
        held.hold.id, customer, "test", ship_to=ship_to, shipping=FIVE
    )
    await commerce.orders.confirm_payment(order.id, f"pi_{order.id}")
    return order.id


def a_live_drop_with_a_waitlist(dropcast) -> dict[str, Any]:
    """Ann and Bob paid (ship), Cat holds the last unit, Dan then Eve wait for one."""

    async def work(commerce: Commerce) -> dict[str, Any]:
        drop_id = await live_drop(commerce, capsule_spec(3, hold_seconds=600))
        ann = await buy(commerce, drop_id, "discord:101", ANN, name="Ann")
        bob = await buy(commerce, drop_id, "discord:102", BOB)
        cat = await commerce.customers.resolve("discord:103")
        assert (await commerce.claims.claim(drop_id, cat)).outcome is ClaimOutcome.HELD
        waiting = []
        for identity in ("discord:104", "discord:105"):
            customer = await commerce.customers.resolve(identity)
            assert (await commerce.claims.join_waitlist(drop_id, customer)).waitlist_position
            waiting.append(customer)
        return {"drop": drop_id, "ann": ann, "bob": bob, "waiting": waiting}

    return seed(dropcast.url, work)


def listed(dropcast, *args: str) -> list[dict[str, Any]]:
    code, out, err = dropcast("orders", *args, "--json")
    assert code == 0, err
    rows: list[dict[str, Any]] = json.loads(out)
    return rows


def carrier_file(tmp_path: Path, body: str, name: str = "carrier.csv") -> str:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return str(path)


def test_the_packing_list_has_every_address(dropcast):
    world = a_live_drop_with_a_waitlist(dropcast)
    code, out, err = dropcast("orders", "--drop", str(world["drop"]), "--csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    by_order = {int(r["order"]): r for r in rows}
    assert by_order.keys() == {world["ann"], world["bob"]}
    for order_id, address in ((world["ann"], ANN), (world["bob"], BOB)):
        row = by_order[order_id]
        assert {k: row[k] for k in address.as_dict()} == address.as_dict()
        assert (row["sku"], row["qty"], row["pool"], row["status"]) == (
            "CHIPS-SPICY",
            "1",
            "ship",
            "paid",
        )


def test_the_table_and_the_json_name_each_order(dropcast):
    world = a_live_drop_with_a_waitlist(dropcast)
    code, out, _ = dropcast("orders")
    assert code == 0
    ann_row = next(line for line in out.splitlines() if line.strip().startswith(str(world["ann"])))
    for text in ("paid", "Ann", "1 x CHIPS-SPICY", "17.00 USD", "US"):
        assert text in ann_row, ann_row
    assert "1 Main St" not in out  # the table says where to, not the address
    (ann,) = [r for r in listed(dropcast) if r["id"] == world["ann"]]
    assert ann["ship_to"] == ANN.as_dict()
    assert (ann["amount_minor"], ann["shipping_minor"], ann["items"]) == (
        1700,
        500,
        [{"sku": "CHIPS-SPICY", "qty": 1}],
    )


def test_a_refund_gives_the_unit_to_the_first_waitlisted_and_is_done_once(dropcast):
    world = a_live_drop_with_a_waitlist(dropcast)
    ann = str(world["ann"])

    code, out, err = dropcast("order", "refund", ann, "--reason", "damaged in transit")
    assert code == 0, err
    assert out.strip() == f"refunded order {ann} (17.00 USD) through test"

    async def offers(commerce: Commerce) -> list[bool]:
        return [
            await commerce.claims.holding(world["drop"], customer) is not None
            for customer in world["waiting"]
        ]

    assert seed(dropcast.url, offers) == [True, False]  # Dan first; Eve still waits

    code, out, _ = dropcast("order", "refund", ann)
    assert (code, out.strip()) == (0, f"order {ann} was already refunded")
    assert seed(dropcast.url, offers) == [True, False]
    code, out, _ = dropcast("order", "show", ann, "--json")
    shown = json.loads(out)
    assert (shown["status"], shown["refund_reason"]) == ("refunded", "damaged in transit")


def test_a_refund_the_provider_refuses_exits_1_and_changes_nothing(dropcast, monkeypatch):
    world = a_live_drop_with_a_waitlist(dropcast)

    async def refuse(self: Any, order: Any, provider_ref: str, reason: str) -> None:
        raise PaymentError("the card network is down")

    monkeypatch.setattr("commerce.payments.simple.TestGateway.refund", refuse)
    code, out, err = dropcast("order", "refund", str(world["ann"]))
    assert (code, out) == (1, "")
    assert len(err.strip().splitlines()) == 1 and "the card network is down" in err
    (ann,) = [r for r in listed(dropcast) if r["id"] == world["ann"]]
    assert ann["status"] == "paid"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["order", "refund", "999"], "order 999 does not exist"),
        (["order", "show", "999"], "order 999 does not exist"),
        (["order", "refund", "1", "--reason", " "], "reason: say why"),
        (["orders", "--status", "lost"], "'lost' is not one of"),
        (["orders", "--json", "--csv"], "--json or --csv"),
        (["orders", "--drop", "1", "ship", "--csv", "x.csv"], "go after `ship`"),
        (["orders", "ship", "--csv", "nowhere.csv"], "nowhere.csv"),
        (["order", "ship", "1", "--carrier", "UPS"], "--tracking"),
        (["customer", "forget", "annabelle"], "is not an identity"),
        (["customer", "forget", "discord:5555"], "discord:5555 is not known"),
    ],
)
def test_bad_desk_input_exits_2_with_one_line(dropcast, args, expected):
    code, out, err = dropcast(*args)
    assert code == 2, (out, err)
    assert len(err.strip().splitlines()) == 1, err
    assert expected in err


def test_a_carriers_csv_ships_each_order_once(dropcast, tmp_path):
    world = a_live_drop_with_a_waitlist(dropcast)
    ann, bob = world["ann"], world["bob"]
    body = f"Order ID,Carrier,Tracking,Weight\n{ann},UPS,1Z999AA1,2kg\n#{bob},DHL,JD0142,1kg\n"
    path = carrier_file(tmp_path, body)

    code, out, err = dropcast("orders", "ship", "--csv", path)
    assert code == 0, err
    assert out.strip() == "shipped 2, unchanged 0, refused 0"
    code, out, _ = dropcast("orders", "ship", "--csv", path)
    assert (code, out.strip()) == (0, "shipped 0, unchanged 2, refused 0")

    shipped = {
        r["id"]: (r["carrier"], r["tracking"]) for r in listed(dropcast, "--status", "shipped")
    }
    assert shipped == {ann: ("UPS", "1Z999AA1"), bob: ("DHL", "JD0142")}
    assert listed(dropcast, "--status", "paid") == []
    code, out, _ = dropcast("order", "show", str(ann))
    assert "shipped" in out and "UPS 1Z999AA1" in out


def test_a_bad_carrier_csv_names_the_line_and_ships_nothing(dropcast, tmp_path):
    world = a_live_drop_with_a_waitlist(dropcast)
    ann, bob = world["ann"], world["bob"]
    files = {
        "no tracking column": (f"order,carrier\n{ann},UPS\n", "line 1", "tracking"),
        "an order that is no number": (
            f"order,carrier,tracking\n{ann},UPS,1Z1\nabc,UPS,1Z2\n",
            "line 3",
            "'abc'",
        ),
        "an empty tracking": (f"order,carrier,tracking\n{ann},UPS,1Z1\n{bob},DHL,\n", "line 3", ""),
    }
    for name, (body, line, detail) in files.items():
        code, out, err = dropcast("orders", "ship", "--csv", carrier_file(tmp_path, body))
        assert code == 2, (name, out, err)
        assert len(err.strip().splitlines()) == 1 and line in err and detail in err, (name, err)
    assert listed(dropcast, "--status", "shipped") == []


def test_rows_that_cannot_ship_are_refused_by_line_and_the_rest_ship(dropcast, tmp_path):
    world = a_live_drop_with_a_waitlist(dropcast)
    ann, bob = world["ann"], world["bob"]
    assert dropcast("order", "refund", str(bob))[0] == 0
    body = f"order,carrier,tracking\n{ann},UPS,1Z1\n{bob},UPS,1Z2\n999,UPS,1Z3\n"

    code, out, _ = dropcast("orders", "ship", "--csv", carrier_file(tmp_path, body))

    assert code == 1
    lines = out.strip().splitlines()
    assert lines[0] == "shipped 1, unchanged 0, refused 2"
    assert lines[1].startswith(f"  line 3, order {bob}: ") and "refunded" in lines[1]
    assert lines[2] == "  line 4, order 999: order 999 does not exist"
    assert [r["id"] for r in listed(dropcast, "--status", "shipped")] == [ann]


def test_one_order_ships_and_a_pickup_is_handed_over_with_its_code(dropcast):
    async def work(commerce: Commerce) -> tuple[int, int, str]:
        drop_id = await live_drop(commerce, collab_spec(ship=2, pickup=2))
        ship = await buy(commerce, drop_id, "discord:201", ANN)
        customer = await commerce.customers.resolve("discord:202")
        held = await commerce.claims.claim(drop_id, customer, pool="pickup:corner-deli")
        assert held.hold is not None, held
        order = await commerce.orders.checkout(held.hold.id, customer, "manual")
        reserved = (await commerce.orders.reserve(order.id)).order
        assert reserved.pickup_code
        return ship, order.id, reserved.pickup_code

    ship, pickup, code_word = seed(dropcast.url, work)

    code, out, _ = dropcast("order", "ship", str(ship), "--carrier", "UPS", "--tracking", "1Z9")
    assert (code, out.strip()) == (0, f"order {ship} shipped: UPS 1Z9")
    code, out, _ = dropcast("order", "ship", str(ship), "--carrier", "UPS", "--tracking", "1Z9")
    assert (code, out.strip()) == (0, f"order {ship} was already shipped: UPS 1Z9")

    code, out, err = dropcast("order", "show", str(pickup))
    assert code == 0, err
    assert f"pickup      corner-deli, code {code_word}" in out and "reserved" in out
    code, _, err = dropcast("order", "picked-up", str(pickup), "--code", "WRONG1")
    assert code == 2 and "does not match" in err
    code, out, _ = dropcast("order", "picked-up", str(pickup), "--code", code_word.lower())
    assert (code, out.strip()) == (0, f"order {pickup} picked up")
    code, out, _ = dropcast("order", "picked-up", str(pickup))
    assert (code, out.strip()) == (0, f"order {pickup} was already picked up")
    assert [r["id"] for r in listed(dropcast, "--status", "picked_up")] == [pickup]

    code, out, _ = dropcast("order", "show", str(ship))
    for text in (
        "25.00 USD = items 20.00 USD + shipping 5.00 USD",
        "ship to     Ann Lee",
        "1 Main St",
        "Apt 4",
        "62701 Springfield, IL",
        "UPS 1Z9",
    ):
        assert text in out, out


# -- forgetting ---------------------------------------------------------------------------

NAME = "Annabelle Quux"
EMAIL = "annabelle.quux@example.com"
HOME = Address(NAME, "77 Quincunx Lane", "Zyzzyva City", "QX-4417", "NZ", "Flat 9Z", "Otago")
WHO = ["discord:987654321012345678", "987654321012345678", EMAIL, NAME]
TRACES = [*WHO, *(v for k, v in HOME.as_dict().items() if k != "country" and v)]


@pytest.fixture
def logged(caplog) -> Iterator[pytest.LogCaptureFixture]:
    """Every record our packages log while the CLI runs (the CLI's own set-up replaces the
    root logger's handlers, so the capture hangs on the packages' loggers)."""
    names = ("commerce", "dropcast", "scheduler", "config", "sqlalchemy", "alembic")
    for name in names:
        logging.getLogger(name).addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        for name in names:
            logging.getLogger(name).removeHandler(caplog.handler)


def test_forget_leaves_no_trace_in_tables_exports_or_logs(dropcast, monkeypatch, logged):
    async def work(commerce: Commerce) -> tuple[int, int]:
        drop_id = await live_drop(commerce, capsule_spec(5))
        web = f"web:{EMAIL}"
        first = await buy(commerce, drop_id, WHO[0], HOME, name=NAME)
        await commerce.customers.resolve(web)
        await commerce.customers.link(WHO[0], web)
        bob = await buy(commerce, drop_id, "discord:102", BOB)
        await commerce.orders.ship(first, "UPS", "1Z1")
        return first, bob

    ann, bob = seed(dropcast.url, work)
    monkeypatch.setenv("DROPCAST_LOG__LEVEL", "DEBUG")
    code, out, _ = dropcast("orders", "--csv")
    assert all(text in out for text in TRACES[3:])  # the packing list had her, until now

    code, out, err = dropcast("customer", "forget", f"web:{EMAIL.upper()}")

    assert code == 0, err
    assert out.strip() == (
        "forgotten (2 customer records): erased 2 identities, 1 display name, 1 shipping "
        "address, 0 subscriptions, 2 message addresses, 2 unsent messages skipped, "
        "0 waitlist places; their orders keep amounts and SKUs"
    )
    exports = [dropcast("orders", "--csv")[1], dropcast("orders", "--json")[1]]
    exports += [dropcast("order", "show", str(ann))[1], dropcast("orders")[1]]
    assert "Hauptstr. 5" in exports[0] and "Bob Roe" in exports[1]  # Bob is untouched
    (kept,) = [r for r in json.loads(exports[1]) if r["id"] == ann]
    assert (kept["amount_minor"], kept["items"], kept["status"], kept["ship_to"]) == (
        1700,
        [{"sku": "CHIPS-SPICY", "qty": 1}],
        "shipped",
        None,
    )
    assert any("forgot customer" in r.getMessage() for r in logged.records)
    said = [out, err, logged.text, *exports]
    assert [t for t in TRACES for text in said if t.lower() in text.lower()] == []
    assert seed(dropcast.url, lambda commerce: traces(commerce.db, TRACES)) == set()
    assert seed(dropcast.url, lambda c: c.orders.get(bob)).status is OrderStatus.PAID
