"""The CLI's fixture: run `dropcast …` in-process against a database on each engine."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import pytest

from dropcast.cli import main
from dropcast.logs import MaskSecrets


@pytest.fixture
def dropcast(database_url, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("DROPCAST_DATABASE__URL", database_url)
    monkeypatch.setenv("DROPCAST_WEB__PUBLIC_URL", "https://drops.example.com")
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["dropcast", *args])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    run.url = database_url  # type: ignore[attr-defined]
    return run


def _cli_handlers() -> list[logging.Handler]:
    return [
        h
        for h in logging.getLogger().handlers
        if any(isinstance(f, MaskSecrets) for f in h.filters)
    ]


@pytest.fixture(autouse=True)
def no_stale_log_handler() -> Iterator[None]:
    """The CLI's log handler writes to the stderr of the test that ran it, closed after that
    test: never let a later test (seeding the database logs) write to it."""
    root = logging.getLogger()
    level = root.level
    for handler in _cli_handlers():
        root.removeHandler(handler)
    yield
    for handler in _cli_handlers():
        root.removeHandler(handler)
    root.setLevel(level)
