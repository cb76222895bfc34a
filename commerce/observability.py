"""Request ids: one id follows a request from chat or HTTP through the claim to the order,
so the logs of one purchase can be read together. Framework-free: entrypoints bind it."""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar

request_id: ContextVar[str | None] = ContextVar("dropcast_request_id", default=None)
_SAFE = re.compile(r"^[A-Za-z0-9._:@-]{1,80}$")


def bind_request_id(candidate: str | None = None) -> str:
    """Use the caller's id when it is sane (e.g. X-Request-Id from a proxy), else a new one."""
    value = candidate if candidate and _SAFE.match(candidate) else secrets.token_hex(8)
    request_id.set(value)
    return value
