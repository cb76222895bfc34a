from __future__ import annotations

import pytest

from config.settings import ConfigError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no stray ./dropcast.toml
    for key in list(__import__("os").environ):
        if key.startswith("DROPCAST_"):
            monkeypatch.delenv(key)


def test_defaults_are_usable_without_any_file():
    settings = load_settings()
    assert settings.database.url == "sqlite+aiosqlite:///./dropcast.db"
    assert settings.payments.provider == "test"
    assert settings.web.base_url == "http://127.0.0.1:8080"


def test_toml_file_then_environment_override(tmp_path, monkeypatch):
    path = tmp_path / "d.toml"
    path.write_text(
        '[web]\nport = 9000\npublic_url = "https://shop.example"\n[database]\nurl = "sqlite+aiosqlite:///x.db"\n'
    )
    monkeypatch.setenv("DROPCAST_DATABASE__URL", "postgresql+asyncpg://postgres@127.0.0.1/test")
    settings = load_settings(path)
    assert settings.web.port == 9000
    assert settings.web.base_url == "https://shop.example"
    assert settings.database.url.startswith("postgresql+asyncpg://")


def test_default_file_is_read_when_present(tmp_path):
    (tmp_path / "dropcast.toml").write_text("[scheduler]\ntimezone = 'Europe/Berlin'\n")
    assert load_settings().scheduler.timezone == "Europe/Berlin"


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("[web]\nport = 'eighty'\n", "web.port"),
        ("[database]\nurl = 'mysql://x'\n", "database.url"),
        ("[payments]\nprovider = 'paypal'\n", "payments.provider"),
        ("[scheduler]\ntimezone = 'Mars/Olympus'\n", "scheduler.timezone"),
        ("[web]\ncolour = 'red'\n", "web.colour"),
        ("[security]\nsecret_key = 'short'\n", "security.secret_key"),
        ("[runtime]\nevent_loop = 'trio'\n", "runtime.event_loop"),
    ],
)
def test_an_invalid_value_fails_with_one_line_naming_the_key(tmp_path, body, key):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert key in message and "\n" not in message


def test_toml_syntax_errors_name_the_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[web\nport = 1\n")
    with pytest.raises(ConfigError, match="line 1"):
        load_settings(path)


def test_missing_config_file_is_reported(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_secrets_never_show_in_repr_or_str(monkeypatch):
    monkeypatch.setenv("DROPCAST_SECURITY__SECRET_KEY", "super-secret-value-0123456789abcdef")
    monkeypatch.setenv("DROPCAST_DISCORD__TOKEN", "discord-token-abcdef")
    settings = load_settings()
    for text in (repr(settings), str(settings), repr(settings.security), str(settings.discord)):
        assert "super-secret-value" not in text and "discord-token" not in text
    assert settings.security.secret_key is not None
    assert settings.security.secret_key.get_secret_value() == "super-secret-value-0123456789abcdef"


def test_example_config_file_is_valid():
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "config" / "dropcast.example.toml"
    settings = load_settings(example)
    assert settings.web.port == 8080
