"""Logging set-up: readable lines by default, JSON lines (``log.json_format``) for machines.
Every record carries the request id bound by the entrypoint (HTTP or chat)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

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
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, separators=(",", ":"))


def configure(level: str, json_format: bool) -> None:
    install_request_ids()
    handler = logging.StreamHandler()
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
