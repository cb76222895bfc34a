"""The senders the retention dispatcher delivers through: a chat platform's private
messages (its outlet) and a subscriber's webhook. Each says how a send went as a
``Delivery``, which the dispatcher records."""

from __future__ import annotations

import aiohttp

from bot.hub import Outlet
from bot.messages import Message
from commerce.services.notifications import Delivery, DeliveryStatus


class OutletSender:
    """Private messages through a chat platform's outlet (a DM, a whisper, a studio tab)."""

    def __init__(self, outlet: Outlet) -> None:
        self.outlet = outlet

    async def send(self, address: str, message: Message, key: str) -> Delivery:
        try:
            reached = await self.outlet.send_private(address, message, key)
        except Exception as exc:  # network trouble: the dispatcher backs off and retries
            return Delivery(DeliveryStatus.RETRY, error=f"{type(exc).__name__}: {exc}")
        if reached:
            return Delivery(DeliveryStatus.SENT)
        reason = f"{self.outlet.platform} will not deliver privately (e.g. DMs closed, 50007)"
        return Delivery(DeliveryStatus.UNREACHABLE, error=reason)


class WebhookSender:
    """POSTs JSON to the subscriber's URL with an Idempotency-Key, so a resend after a crash
    is recognisable as the same notification."""

    def __init__(self, timeout: float = 10.0) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def send(self, address: str, message: Message, key: str) -> Delivery:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        body = {
            "kind": message.kind,
            "drop_id": message.drop_id,
            "text": message.text,
            "at": message.at.isoformat() if message.at else None,
            "link": message.personal_link or message.public_link,
        }
        try:
            async with self._session.post(
                address, json=body, headers={"Idempotency-Key": key}
            ) as response:
                if response.status < 300:
                    return Delivery(DeliveryStatus.SENT)
                if response.status in (404, 410):
                    return Delivery(DeliveryStatus.UNREACHABLE, error=f"HTTP {response.status}")
                if response.status == 429 or response.status >= 500:
                    retry = float(response.headers.get("Retry-After", "0") or 0) or None
                    return Delivery(DeliveryStatus.RETRY, retry, f"HTTP {response.status}")
                return Delivery(DeliveryStatus.FAILED, error=f"HTTP {response.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Delivery(DeliveryStatus.RETRY, error=f"{type(exc).__name__}: {exc}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
