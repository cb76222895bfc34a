"""After a demo drop, as the creator and the viewers live it: `dropcast run --demo` as a real
process, viewers buying in the studio chat and paying with an address, then the order desk
from the CLI beside it: the packing list has every address, a refund hands the unit to the
first waitlisted viewer (who pays for it), a carrier's CSV ships every paid order, and each
buyer reads a receipt and a tracking message privately in the studio."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections import defaultdict
from typing import Any

import aiohttp
import pytest

from dropcast.rehearse import pay_form
from tests.e2e.test_demo import cli, running_demo
from tests.helpers import eventually

pytestmark = pytest.mark.timeout(150)
BUYERS = [f"fan{i}" for i in range(8)]  # the demo drop has 8 units
LATE = "latecomer"


class Studio:
    """One browser's studio tab speaking as many names; frames kept per name."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.private: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.public: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                data = message.json()
                if data.get("op") == "post" and data.get("private"):
                    self.private[str(data["to"])].append(data)
                elif data.get("op") in ("post", "edit"):
                    self.public.append(str(data.get("text") or ""))

    async def say(self, name: str, text: str) -> None:
        await self.ws.send_json({"name": name, "text": text})

    def said(self, *parts: str) -> bool:
        """A public line has every one of ``parts``."""
        return any(all(p in text for p in parts) for text in self.public)

    def kinds(self, name: str) -> list[str]:
        return [str(f["kind"]) for f in self.private[name]]

    def link(self, name: str) -> str | None:
        return next((f["link"] for f in reversed(self.private[name]) if f.get("link")), None)

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()


async def pay(http: aiohttp.ClientSession, link: str, viewer: int) -> str:
    async with http.get(link) as response:
        page = await response.text()
        assert response.status == 200, page
    form = pay_form(page, viewer)
    assert form.get("country"), "a ship hold asks where it goes"
    async with http.post(link + "/pay", data=form) as paid:
        receipt = await paid.text()
        assert paid.status == 200, receipt
    return receipt


async def test_packing_list_refund_to_the_waitlist_bulk_shipping_and_messages(tmp_path):
    async with running_demo(tmp_path) as (base, env):
        assert (await cli(env, tmp_path, "drop", "open", "1"))[0] == 0
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            async with http.get(f"{base}/studio") as response:
                assert response.status == 200
            studio = Studio(await http.ws_connect(f"{base}/studio/ws", origin=base))
            try:
                for name in BUYERS:
                    await studio.say(name, "!buy")
                links = await eventually(
                    lambda: all(studio.link(n) for n in BUYERS) and studio,
                    what="every buyer's private pay link",
                )
                await studio.say(LATE, "!buy")  # sold out, holds still open
                await eventually(
                    lambda: studio.said(f"@{LATE}: sold out"), what="the sold-out answer"
                )
                await studio.say(LATE, "!waitlist")
                await eventually(
                    lambda: studio.said(LATE, "number 1 in line"), what="the waitlist answer"
                )
                for i, name in enumerate(BUYERS):
                    link = links.link(name)
                    assert link is not None
                    await pay(http, link, i)
                await eventually(
                    lambda: all("receipt" in studio.kinds(n) for n in BUYERS),
                    what="every buyer's receipt in the studio",
                )

                # The creator's packing list: every order with its address.
                code, out, err = await cli(env, tmp_path, "orders", "--drop", "1", "--csv")
                assert code == 0, err
                rows = list(csv.DictReader(io.StringIO(out)))
                assert len(rows) == len(BUYERS)
                assert all(r["line1"].endswith("Rehearsal Way") and r["country"] for r in rows)

                # A refund: the sold-out drop opens again and the first waitlisted viewer
                # is offered the unit privately, then pays for it.
                refunded = rows[0]["order"]
                code, out, err = await cli(
                    env, tmp_path, "order", "refund", refunded, "--reason", "damaged"
                )
                assert code == 0 and "refunded order" in out, (out, err)
                offer = await eventually(
                    lambda: studio.link(LATE), what="the waitlist offer's pay link"
                )
                await pay(http, offer, len(BUYERS))
                await eventually(lambda: "receipt" in studio.kinds(LATE), what="its receipt")

                # Every paid order ships from the carrier's export, once.
                code, out, err = await cli(
                    env, tmp_path, "orders", "--drop", "1", "--status", "paid", "--json"
                )
                assert code == 0, err
                paid = json.loads(out)
                assert len(paid) == len(BUYERS) and refunded not in {str(o["id"]) for o in paid}
                export = tmp_path / "carrier.csv"
                export.write_text(
                    "order,carrier,tracking\n"
                    + "".join(f"{o['id']},UPS,1Z999AA1{o['id']:08d}\n" for o in paid)
                )
                for _ in range(2):  # the same file twice ships nothing twice
                    code, out, err = await cli(
                        env, tmp_path, "orders", "ship", "--csv", str(export)
                    )
                    assert code == 0, (out, err)
                shipped_to = [n for n in BUYERS[1:]] + [LATE]
                await eventually(
                    lambda: all("shipped" in studio.kinds(n) for n in shipped_to),
                    what="every buyer's tracking message",
                )
                for name in shipped_to:
                    assert studio.kinds(name).count("shipped") == 1, studio.kinds(name)
                    [tracking] = [f for f in studio.private[name] if f["kind"] == "shipped"]
                    assert "https://www.ups.com/track?tracknum=1Z999AA1" in tracking["text"]
                assert "refunded" in studio.kinds(BUYERS[0])
            finally:
                await studio.close()
