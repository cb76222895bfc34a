"""Money as a person reads it: the drop's currency in the reader's locale, through Babel's
CLDR data (``$12.00`` for en_US, ``12,00 €`` for de_DE), never "12.00 USD".

Chat, the scheduler's messages and the web pages all format money here. A locale nobody
can name (``None``, ``"xx"``, garbage from a browser) falls back to the process default,
which the composition root sets from the ``chat.locale`` setting.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.numbers import format_currency

from commerce.domain.model import Money, currency_exponent

FALLBACK_LOCALE = "en_US"
_default = FALLBACK_LOCALE


@lru_cache(maxsize=256)
def parse_locale(name: str | None) -> Locale | None:
    """A Babel locale for ``en_US``, ``en-US`` or ``de`` (Discord and browsers use dashes);
    None when there is no such locale."""
    if not name:
        return None
    try:
        return Locale.parse(name.strip().replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return None


def set_default_locale(name: str) -> None:
    """Make ``name`` the locale for readers whose own is unknown. Refuses unknown names."""
    global _default
    if parse_locale(name) is None:
        raise ValueError(f"unknown locale {name!r}")
    _default = name


def default_locale() -> str:
    return _default


def _chosen(locale: str | None) -> Locale:
    return parse_locale(locale) or parse_locale(_default) or Locale.parse(FALLBACK_LOCALE)


@lru_cache(maxsize=256)
def _key(locale: str | None, default: str) -> str:
    return str(_chosen(locale))


def locale_key(locale: str | None) -> str:
    """The locale ``format_money`` writes in for ``locale`` (``de-DE`` → ``de_DE``; garbage →
    the default): readers with one key read the same amounts, so a page rendered for one
    of them serves them all."""
    return _key(locale, _default)


def format_money(money: Money, locale: str | None) -> str:
    """``money`` in its own currency, written the way ``locale`` writes amounts."""
    return _formatted(money, locale_key(locale))


# Babel's formatting is slow next to a hold page: a surge shows the same few prices to
# readers of the same few locales.
@lru_cache(maxsize=4096)
def _formatted(money: Money, locale: str) -> str:
    chosen = _chosen(locale)
    value = Decimal(money.amount_minor).scaleb(-currency_exponent(money.currency))
    # decimal_quantization=False: never round away a minor unit the buyer pays, should CLDR
    # give a currency fewer digits than our price does.
    return format_currency(value, money.currency, locale=chosen, decimal_quantization=False)
