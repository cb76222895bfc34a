"""Logging set-up: readable lines by default, JSON lines (``log.json_format``) for machines.
Every record carries the request id bound by the entrypoint (HTTP or chat).

Secrets never reach a log, at any level: SQL parameters are hidden by the engines
(``hide_parameters``), the SQLite driver (which prints call arguments at DEBUG) speaks from
INFO up, and every secret we know of (the settings' ``SecretStr`` values, the generated
link key, the demo's admin token) is masked in whatever line still carries it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, SecretStr

from commerce.observability import request_id

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


_installed = False


def install_request_ids() -> None:
    """Stamp every log record with the request id when it is *created* — in the request's
    own context — whichever handler writes it later."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.request_id = request_id.get() or "-"
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in vars(record).items():  # structured extras: log.info(..., extra={})
            if key not in _STANDARD and key not in data:
                data[key] = value if isinstance(value, int | float | bool | None) else str(value)
        if record.exc_info:
            data["exc"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(data, separators=(",", ":"))


MASK = "[secret]"
MIN_SECRET = 8  # shorter values would mask ordinary words; real secrets are far longer
# At DEBUG the SQLite driver logs every call with its arguments, stored secrets included:
# never below INFO. (SQLAlchemy keeps its own loggers at WARNING unless ``database.echo``,
# which shows statements with their parameters hidden, never rows.)
CHATTY_AT_DEBUG = ("aiosqlite",)


class MaskSecrets(logging.Filter):
    """Replaces every known secret in a record's message and traceback with ``MASK``."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        masked = self._mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self._mask(record.stack_info)
        return True

    def _mask(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text


_masks = MaskSecrets()


def hide(*values: str | None) -> None:
    """Never log these values (a secret made at run time: the link key, a demo token)."""
    _masks.secrets.update(v for v in values if v and len(v) >= MIN_SECRET)


def secrets_of(model: BaseModel) -> Iterator[str]:
    """Every ``SecretStr`` value in a settings model, sections included."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            yield value.get_secret_value()
        elif isinstance(value, BaseModel):
            yield from secrets_of(value)


def configure(level: str, json_format: bool) -> None:
    install_request_ids()
    handler = logging.StreamHandler()
    handler.addFilter(_masks)
    if json_format:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries speak only on trouble: migrations, and APScheduler's per-run chatter.
    for name in ("alembic", "apscheduler"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in CHATTY_AT_DEBUG:
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))
