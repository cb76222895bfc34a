"""Money reads the way its reader writes amounts, in the drop's own currency (Babel)."""

from __future__ import annotations

import pytest

from commerce.domain.model import Money
from commerce.money_format import default_locale, format_money, set_default_locale
from config.settings import ConfigError, load_settings


@pytest.mark.parametrize(
    ("money", "locale", "shown"),
    [
        (Money(1200, "USD"), "en_US", "$12.00"),
        (Money(1200, "EUR"), "de_DE", "12,00\xa0€"),
        (Money(1200, "EUR"), "de-DE", "12,00\xa0€"),  # Discord and browsers use dashes
        (Money(1200, "EUR"), "de", "12,00\xa0€"),
        (Money(1200, "EUR"), "en_US", "€12.00"),
        (Money(123456, "USD"), "en_US", "$1,234.56"),
        (Money(1200, "JPY"), "ja_JP", "￥1,200"),  # zero-decimal: 1200 minor units = ¥1,200
        (Money(5, "USD"), "en_US", "$0.05"),
    ],
)
def test_format_money_uses_the_locale_and_the_currency(money, locale, shown):
    assert format_money(money, locale) == shown


@pytest.mark.parametrize("locale", [None, "", "xx", "not a locale", "zz_ZZ"])
def test_an_unknown_locale_falls_back_to_the_default(locale):
    assert format_money(Money(1200, "USD"), locale) == "$12.00"


def test_the_default_locale_is_configurable_and_refuses_unknown_names():
    before = default_locale()
    try:
        set_default_locale("de_DE")
        assert format_money(Money(1200, "EUR"), None) == "12,00\xa0€"
        assert format_money(Money(1200, "EUR"), "xx") == "12,00\xa0€"
        with pytest.raises(ValueError, match="unknown locale"):
            set_default_locale("xx_YY")
        assert default_locale() == "de_DE"
    finally:
        set_default_locale(before)


def test_chat_locale_setting_defaults_to_en_us_and_rejects_unknown_locales(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DROPCAST_CHAT__LOCALE", raising=False)
    assert load_settings().chat.locale == "en_US"
    monkeypatch.setenv("DROPCAST_CHAT__LOCALE", "de_DE")
    assert load_settings().chat.locale == "de_DE"
    monkeypatch.setenv("DROPCAST_CHAT__LOCALE", "klingon")
    with pytest.raises(ConfigError, match=r"chat\.locale"):
        load_settings()
