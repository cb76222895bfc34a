"""`privacy.address_retention_days`: 180 by default, from the file or the environment, and
at least a day."""

from __future__ import annotations

import os

import pytest

from config.settings import ConfigError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no stray ./dropcast.toml
    for key in list(os.environ):
        if key.startswith("DROPCAST_"):
            monkeypatch.delenv(key)


def test_addresses_are_kept_180_days_by_default():
    assert load_settings().privacy.address_retention_days == 180


def test_the_retention_comes_from_the_file_or_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "d.toml"
    path.write_text("[privacy]\naddress_retention_days = 30\n")
    assert load_settings(path).privacy.address_retention_days == 30
    monkeypatch.setenv("DROPCAST_PRIVACY__ADDRESS_RETENTION_DAYS", "90")
    assert load_settings(path).privacy.address_retention_days == 90


@pytest.mark.parametrize("days", ["0", "-5", "soon"])
def test_a_retention_under_a_day_names_the_key(monkeypatch, days):
    monkeypatch.setenv("DROPCAST_PRIVACY__ADDRESS_RETENTION_DAYS", days)
    with pytest.raises(ConfigError, match=r"privacy\.address_retention_days"):
        load_settings()
