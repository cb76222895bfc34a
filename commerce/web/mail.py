"""Mail for proving an email address: SMTP (aiosmtplib) in production, the console in the
demo (no mail server there: the link is printed where the demo runs)."""

from __future__ import annotations

import logging
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib
from itsdangerous import BadSignature, URLSafeSerializer

from commerce.clock import Clock
from commerce.domain.errors import InvalidInput
from config.settings import EmailSettings

log = logging.getLogger(__name__)
SMTP_TIMEOUT = 15.0


class Mailer(Protocol):
    async def send(self, to: str, subject: str, body: str) -> None:
        """Send or raise; the caller tells the viewer it did not go."""
        ...


class SmtpMailer:
    def __init__(self, settings: EmailSettings) -> None:
        assert settings.smtp_host, "email.smtp_host is required"
        self.settings = settings

    async def send(self, to: str, subject: str, body: str) -> None:
        s = self.settings
        message = EmailMessage()
        message["From"] = s.from_address
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        await aiosmtplib.send(
            message,
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            start_tls=s.smtp_security == "starttls",
            use_tls=s.smtp_security == "tls",
            timeout=SMTP_TIMEOUT,
        )


class ConsoleMailer:
    """The demo's mailbox: what would be sent is printed (and kept for tests)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    async def send(self, to: str, subject: str, body: str) -> None:
        self.sent.append((to, subject, body))
        print(f"demo mail to {to}: {subject}\n  {body.strip().splitlines()[-1]}", flush=True)


def mailer_for(settings: EmailSettings, *, demo: bool) -> Mailer | None:
    """The mailer email claims use, or None when email claims are off."""
    if not settings.claims:
        return None
    if settings.smtp_host:
        return SmtpMailer(settings)
    if demo:
        return ConsoleMailer()
    raise InvalidInput("email.smtp_host", "is required when email.claims = true")


class EmailProofs:
    """One-time links that prove an address: signed (drop, address, pool, expiry), with the
    expiry on the shop's clock."""

    def __init__(self, secret: str, ttl_seconds: int, clock: Clock) -> None:
        self._serializer = URLSafeSerializer(secret, salt="dropcast.email-proof")
        self.ttl = ttl_seconds
        self.clock = clock

    def token(self, drop_id: int, email: str, pool: str | None) -> str:
        expires = int(self.clock.now().timestamp()) + self.ttl
        return str(self._serializer.dumps([drop_id, email, pool or "", expires]))

    def check(self, token: str) -> tuple[int, str, str | None] | None:
        """(drop id, address, pool) of a valid, unexpired token; None otherwise."""
        try:
            data = self._serializer.loads(token)
        except BadSignature:
            return None
        if not (isinstance(data, list) and len(data) == 4 and isinstance(data[0], int)):
            return None
        if not isinstance(data[3], int) or data[3] <= self.clock.now().timestamp():
            return None
        return data[0], str(data[1]), str(data[2]) or None
