"""``payments.ship_to_countries``: ISO codes, checked when the settings load."""

from __future__ import annotations

import pytest

from config.settings import ConfigError, load_settings


def test_ship_to_countries_are_upper_cased_and_deduplicated():
    settings = load_settings(payments={"ship_to_countries": ["us", "CA", "US"]})
    assert settings.payments.ship_to_countries == ["US", "CA"]
    assert load_settings().payments.ship_to_countries == []


@pytest.mark.parametrize(
    ("codes", "problem"),
    [(["US", "ZZ"], "'ZZ' is not an ISO 3166-1 country code"), ([" "], "has an empty entry")],
)
def test_a_bad_ship_to_country_fails_naming_the_key(codes, problem):
    with pytest.raises(ConfigError) as caught:
        load_settings(payments={"ship_to_countries": codes})
    assert str(caught.value).startswith("invalid setting payments.ship_to_countries: ")
    assert problem in str(caught.value)


def test_ship_to_countries_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("DROPCAST_PAYMENTS__SHIP_TO_COUNTRIES", '["de", "AT"]')
    assert load_settings().payments.ship_to_countries == ["DE", "AT"]
