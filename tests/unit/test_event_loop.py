"""``runtime.event_loop``: the loop a dropcast process runs on (uvloop by default)."""

from __future__ import annotations

import asyncio
import builtins
import logging
from typing import Any

import pytest
import uvloop

from dropcast.app import event_loop_factory, event_loop_name


def run_on(name: str) -> str:
    with asyncio.Runner(loop_factory=event_loop_factory(name)) as runner:

        async def which() -> str:
            return event_loop_name()

        return runner.run(which())


def test_uvloop_is_the_default_and_asyncio_the_choice_that_turns_it_off():
    assert event_loop_factory("uvloop") is uvloop.new_event_loop
    assert run_on("uvloop") == "uvloop"
    assert event_loop_factory("asyncio") is None
    assert run_on("asyncio") == "asyncio"


def test_without_uvloop_installed_it_runs_on_asyncio_and_says_so(monkeypatch, caplog):
    real_import = builtins.__import__

    def no_uvloop(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "uvloop":
            raise ImportError("No module named 'uvloop'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_uvloop)
    with caplog.at_level(logging.WARNING):
        factory = event_loop_factory("uvloop")
    assert factory is None
    assert "uvloop is not installed" in caplog.text


@pytest.mark.parametrize("name", ["uvloop", "asyncio"])
def test_the_cli_runs_its_commands_on_the_chosen_loop(name, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from dropcast import cli
    from dropcast.app import App

    seen: list[str] = []
    real_open = App.open

    async def open_and_note(*args: Any, **kwargs: Any) -> Any:
        seen.append(event_loop_name())
        return await real_open(*args, **kwargs)

    monkeypatch.setattr(App, "open", open_and_note)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DROPCAST_DATABASE__URL", f"sqlite+aiosqlite:///{tmp_path}/d.db")
    monkeypatch.setenv("DROPCAST_RUNTIME__EVENT_LOOP", name)
    result = CliRunner().invoke(cli.cli, ["drop", "list"])
    assert result.exit_code == 0, result.output
    assert seen == [name]
