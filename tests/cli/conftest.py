"""The CLI's fixture: run `dropcast …` in-process against a database on each engine."""

from __future__ import annotations

import sys

import pytest

from dropcast.cli import main


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
