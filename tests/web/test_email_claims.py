"""Email claims on the drop page: off by default (sign in instead); when on, an address is
proven by a one-time link sent over real SMTP (a local aiosmtpd) before anything is held."""

from __future__ import annotations

import email
import re
import socket
from collections.abc import Iterator
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from commerce.storage.tables import holds
from tests.helpers import capsule_spec, eventually, live_drop

LINK = re.compile(r"(http://\S+/d/\d+/verify\?t=\S+)")


class Inbox:
    """aiosmtpd handler: every message the SMTP server accepts."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def link_to(self, address: str) -> str:
        for message in self.messages:
            if message["To"] == address:
                body = message.get_payload(decode=True)
                assert isinstance(body, bytes), message.get_payload()  # a single-part mail
                found = LINK.search(body.decode())
                assert found, message.get_payload()
                return found[1]
        raise AssertionError(f"no mail to {address}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


async def held(site: Any) -> int:
    async with site.commerce.db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(holds))).scalar_one())


async def csrf(site: Any) -> str:
    return str((await (await site.client.get("/api/csrf")).json())["token"])


async def test_one_ip_typing_many_emails_holds_nothing_when_email_claims_are_off(site):
    """The hoard that took a whole drop with made-up emails: now every claim needs a proven
    identity, and nothing is held."""
    drop_id = await live_drop(site.commerce, capsule_spec(10))
    token = await csrf(site)
    for i in range(30):
        form = {"email": f"fan{i}@example.com", "csrf": token}
        response = await site.client.post(f"/d/{drop_id}/claim", data=form)
        assert response.status == 401
        assert "Sign in to claim" in await response.text()
    assert await held(site) == 0


async def test_an_email_claim_holds_nothing_until_the_mailed_link_is_opened(make_web, smtp):
    inbox, port = smtp
    site = await make_web(
        email={"claims": True, "smtp_host": "127.0.0.1", "smtp_port": port, "smtp_security": "none"}
    )
    drop_id = await live_drop(site.commerce, capsule_spec(10))
    page = await (await site.client.get(f"/d/{drop_id}")).text()
    assert 'name="email"' in page
    token = await csrf(site)
    for i in range(5):  # the hoard: many addresses, none proven
        form = {"email": f"Fan{i}@Example.com", "csrf": token}
        response = await site.client.post(f"/d/{drop_id}/claim", data=form)
        assert response.status == 200, await response.text()
        assert "Check your inbox" in await response.text()
    await eventually(lambda: len(inbox.messages) == 5)
    assert await held(site) == 0

    link = inbox.link_to("fan3@example.com")
    opened = await site.client.get(_path(link), allow_redirects=False)
    assert opened.status == 303 and opened.headers["Location"].startswith("/c/")
    assert (await site.client.get(opened.headers["Location"])).status == 200
    assert await held(site) == 1
    # The browser is now signed in with the proven address: no second mail to claim again.
    again = await site.client.post(f"/d/{drop_id}/claim", data={"csrf": token})
    assert again.status == 200 and "/c/" in str(again.url)  # their hold, not a new one
    assert await held(site) == 1
    assert len(inbox.messages) == 5
    me = await (await site.client.get(f"/api/me?drop={drop_id}")).json()
    assert me["signed_in"] and me["names"][0]["name"] == "fan3@example.com"
    assert len(me["holds"]) == 1


async def test_a_forged_or_expired_proof_link_claims_nothing(make_web, smtp):
    inbox, port = smtp
    site = await make_web(
        email={"claims": True, "smtp_host": "127.0.0.1", "smtp_port": port, "smtp_security": "none"}
    )
    drop_id = await live_drop(site.commerce, capsule_spec(10))
    response = await site.client.post(
        f"/d/{drop_id}/claim", data={"email": "a@b.co", "csrf": await csrf(site)}
    )
    assert response.status == 200
    await eventually(lambda: len(inbox.messages) == 1)
    link = _path(inbox.link_to("a@b.co"))
    forged = await site.client.get(link[:-3] + "xyz", allow_redirects=False)
    assert forged.status == 410
    site.clock.advance(site.settings.email.verify_ttl_seconds + 1)
    expired = await site.client.get(link, allow_redirects=False)
    assert expired.status == 410
    assert await held(site) == 0


async def test_proof_mails_are_rate_limited_per_address(make_web, smtp):
    inbox, port = smtp
    site = await make_web(
        email={
            "claims": True,
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_security": "none",
            "sends_per_ip_per_hour": 1,
        }
    )
    drop_id = await live_drop(site.commerce, capsule_spec(10))
    token = await csrf(site)
    first = await site.client.post(f"/d/{drop_id}/claim", data={"email": "a@b.co", "csrf": token})
    assert first.status == 200
    second = await site.client.post(f"/d/{drop_id}/claim", data={"email": "c@d.co", "csrf": token})
    assert second.status == 429 and int(second.headers["Retry-After"]) > 0
    await eventually(lambda: len(inbox.messages) == 1)


def _path(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]
