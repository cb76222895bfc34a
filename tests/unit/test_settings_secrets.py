"""Guessable secrets are refused at start-up: one line naming the key, exit code 2."""

from __future__ import annotations

import os
import sys

import pytest

from config.settings import ConfigError, load_settings
from dropcast.cli import main

STRONG_KEY = "kR3v9-Tq_x2LmZp8Wd4nYb7Hc1Js6Fg0"  # 32 characters, many different
STRONG_TOKEN = "Qm8_zT4wLx-2Vn9Rb5Kc7Hy3"  # 24


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no stray ./dropcast.toml
    for key in list(os.environ):
        if key.startswith("DROPCAST_"):
            monkeypatch.delenv(key)


WEAK = [
    ("security.secret_key", "x" * 31, "at least 32 characters"),
    ("security.secret_key", "ab" * 20, "at least 10 different characters"),
    ("security.secret_key", "change-me-to-a-long-random-string", "example"),
    ("security.secret_key", " " * 40, "blank"),
    ("security.secret_key", f" {STRONG_KEY} ", "whitespace"),
    ("security.admin_token", "admin-token-for-tests", "at least 24 characters"),
    ("security.admin_token", "bearer token for the admin API and dashboard", "example"),
    ("security.admin_token", "\t\n  ", "blank"),
    ("security.admin_token", "0123012301230123012301230123", "at least 10 different"),
    ("web.metrics_token", "scrape-me-please", "at least 24 characters"),
]


@pytest.mark.parametrize(("key", "value", "problem"), WEAK)
def test_a_guessable_secret_is_refused_naming_the_key(monkeypatch, key, value, problem):
    section, name = key.split(".")
    monkeypatch.setenv(f"DROPCAST_{section.upper()}__{name.upper()}", value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert key in message and problem in message and "\n" not in message
    assert "secrets.token_urlsafe(32)" in message  # says how to make a good one
    if value.strip():
        assert value.strip() not in message  # the refused secret is not echoed


def test_strong_secrets_are_accepted(monkeypatch):
    monkeypatch.setenv("DROPCAST_SECURITY__SECRET_KEY", STRONG_KEY)
    monkeypatch.setenv("DROPCAST_SECURITY__ADMIN_TOKEN", STRONG_TOKEN)
    monkeypatch.setenv("DROPCAST_WEB__METRICS_TOKEN", STRONG_TOKEN)
    settings = load_settings()
    assert settings.security.admin_token is not None
    assert settings.security.admin_token.get_secret_value() == STRONG_TOKEN
    assert settings.web.max_streams_per_ip == 20


@pytest.mark.parametrize("command", [["run"], ["drop", "list"], ["db", "upgrade"]])
def test_the_cli_exits_2_with_one_line_on_a_weak_admin_token(monkeypatch, capsys, command):
    monkeypatch.setenv("DROPCAST_SECURITY__ADMIN_TOKEN", "hunter2hunter2")
    monkeypatch.setattr(sys, "argv", ["dropcast", *command])
    with pytest.raises(SystemExit) as info:
        main()
    out, err = capsys.readouterr()
    assert info.value.code == 2 and out == ""
    assert err.count("\n") == 1 and "security.admin_token" in err
    assert "hunter2" not in err


def test_a_weak_key_in_the_config_file_is_refused_too(tmp_path):
    path = tmp_path / "dropcast.toml"
    path.write_text('[security]\nsecret_key = "change-me-to-a-long-random-string"\n')
    with pytest.raises(ConfigError, match=r"security\.secret_key: .*example"):
        load_settings(path)
