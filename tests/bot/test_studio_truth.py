"""The studio over a real WebSocket (issue 9, chat side): its status bar gets the drop's one
headline and action, a paid hold's pay message turns into "paid", money follows the
browser's language, and unknown commands get help (both engines)."""

from __future__ import annotations

from sqlalchemy import select

from commerce.storage.tables import holds
from commerce.views import drop_status
from tests.bot.test_studio import receive_until, studio_client
from tests.helpers import capsule_spec, live_drop


async def studio_with_ticks(commerce):
    return await studio_client(commerce, thresholds=(1,), edit_interval=0.01)


async def test_the_status_bar_gets_the_headline_and_action_of_the_drop_page(commerce):
    studio = await studio_with_ticks(commerce)
    try:
        drop_id = await live_drop(commerce, capsule_spec(1))
        ws = await studio.tab()
        live, _ = await receive_until(ws, lambda d: d.get("kind") == "live")
        assert live["status"]["headline"] == "Live now" and live["status"]["action"] == "claim"
        assert live["drop_id"] == drop_id

        await ws.send_json({"name": "ann", "text": "!buy"})
        sold, _ = await receive_until(
            ws, lambda d: d.get("op") == "edit" and d["status"]["phase"] == "sold_out"
        )
        view = await commerce.drops.view(drop_id)
        assert sold["status"] == drop_status(view).as_dict() and sold["id"] == live["id"]

        await commerce.drops.close(drop_id)
        closed, _ = await receive_until(ws, lambda d: d.get("kind") == "closed")
        view = await commerce.drops.view(drop_id)
        assert closed["status"] == drop_status(view).as_dict()
        assert closed["status"]["action"] == "none" and closed["buttons"] == []
        await ws.close()
    finally:
        await studio.close()


async def test_paying_edits_the_private_pay_message_into_paid(commerce):
    studio = await studio_with_ticks(commerce)
    try:
        drop_id = await live_drop(commerce, capsule_spec(2))
        ws = await studio.tab()
        await ws.send_json({"name": "ann", "text": "!buy"})
        held, _ = await receive_until(ws, lambda d: d.get("kind") == "held")
        assert held["private"] and held["link"]
        async with commerce.db.read() as conn:
            hold = (await conn.execute(select(holds).where(holds.c.drop_id == drop_id))).one()
        order = await commerce.orders.checkout(hold.id, hold.customer_id, "test")
        await commerce.orders.confirm_payment(order.id, "pi_studio")

        paid, _ = await receive_until(ws, lambda d: d.get("kind") == "paid")
        assert paid["op"] == "edit" and paid["id"] == held["id"]
        assert paid["private"] and paid["link"] is None and paid["text"].startswith("Paid")
        await ws.close()
    finally:
        await studio.close()


async def test_money_follows_the_browsers_language_and_unknown_commands_get_help(commerce):
    studio = await studio_with_ticks(commerce)
    try:
        spec = capsule_spec(2)
        spec["products"][0]["currency"] = "EUR"
        await live_drop(commerce, spec)
        ws = await studio.tab()
        await ws.send_json({"name": "lena", "text": "!drop", "locale": "de-DE"})
        status, _ = await receive_until(ws, lambda d: d.get("kind") == "status")
        assert "12,00\xa0€" in status["text"]

        await ws.send_json({"name": "lena", "text": "!foo"})
        helped, _ = await receive_until(ws, lambda d: d.get("kind") == "help")
        assert "!foo" in helped["text"] and "!buy" in helped["text"]
        await ws.close()
    finally:
        await studio.close()


async def test_a_tab_opened_later_sees_the_live_post_as_it_is_now(commerce):
    studio = await studio_with_ticks(commerce)
    try:
        drop_id = await live_drop(commerce, capsule_spec(1))
        ann = await studio.tab()
        await ann.send_json({"name": "ann", "text": "!buy"})
        await receive_until(ann, lambda d: d.get("op") == "edit" and d.get("kind") == "tick")
        await studio.hub.drain()

        late = await studio.tab()
        live, _ = await receive_until(late, lambda d: d.get("kind") in ("live", "tick"))
        view = await commerce.drops.view(drop_id)
        assert live["status"] == drop_status(view).as_dict()
        assert live["status"]["phase"] == "sold_out" and live["text"].startswith("SOLD OUT")
        await ann.close()
        await late.close()
    finally:
        await studio.close()
