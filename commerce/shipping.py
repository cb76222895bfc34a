"""Shipping: where a ``ship`` order may go, what it costs to get there, and the address
itself, checked field by field before anything is stored.

Countries are ISO 3166-1 alpha-2 codes from ``pycountry``. A drop's rates come from its
file (``shipping = { US = "5.00", "*" = "14.00" }``): a country with no rate and no ``*``
cannot be chosen. A drop without rates ships free. The deployment may narrow the
destinations further (``payments.ship_to_countries``).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import cache
from urllib.parse import quote

import pycountry

from commerce.domain.errors import InvalidInput
from commerce.domain.model import PICKUP_PREFIX, Address, Money
from commerce.domain.text import one_line

ANYWHERE = "*"
# Field, label, longest accepted, required.
ADDRESS_FIELDS: tuple[tuple[str, str, int, bool], ...] = (
    ("name", "name", 100, True),
    ("line1", "address line 1", 120, True),
    ("line2", "address line 2", 120, False),
    ("postal_code", "postal code", 20, False),
    ("city", "city", 80, True),
    ("region", "region", 80, False),
    ("country", "country", 2, True),
)


@cache
def countries() -> dict[str, str]:
    """Every ISO 3166-1 country: alpha-2 code → the name people know it by, by name."""
    named = {c.alpha_2: getattr(c, "common_name", None) or c.name for c in pycountry.countries}
    return dict(sorted(named.items(), key=lambda item: unicodedata.normalize("NFKD", item[1])))


def country_code(value: object, field_name: str = "country") -> str:
    """An ISO 3166-1 alpha-2 code, upper-cased, or a clear refusal."""
    code = str(value or "").strip().upper()
    if not code:
        raise InvalidInput(field_name, "is required")
    if code not in countries():
        raise InvalidInput(field_name, f"{str(value)[:20]!r} is not an ISO 3166-1 country code")
    return code


def parse_rates(rates: Mapping[str, object], currency: str, field_name: str) -> dict[str, int]:
    """A drop file's ``shipping`` table → minor units per country code (or ``*``)."""
    parsed: dict[str, int] = {}
    for key, amount in rates.items():
        where = ANYWHERE if key.strip() == ANYWHERE else country_code(key, f"{field_name}.{key}")
        if isinstance(amount, bool) or not isinstance(amount, str | int | float):
            raise InvalidInput(f"{field_name}.{key}", 'give the rate as a string, e.g. "5.00"')
        parsed[where] = Money.parse(amount, currency, f"{field_name}.{key}").amount_minor
    if not parsed:
        raise InvalidInput(field_name, 'name at least one country (or "*" for the rest)')
    return parsed


@dataclass(frozen=True, slots=True)
class ShippingRates:
    """What shipping one claim's order to a country costs, within the allowed countries."""

    currency: str
    rates: Mapping[str, int] | None  # None: free to every allowed country
    allowed: frozenset[str] = frozenset()  # empty: every country
    excluded: frozenset[str] = frozenset()  # where the payment provider cannot deliver

    def rate(self, country: str) -> Money | None:
        """The cost to ``country``; None when it cannot be chosen."""
        if (self.allowed and country not in self.allowed) or country in self.excluded:
            return None
        if self.rates is None:
            return Money(0, self.currency) if country in countries() else None
        minor = self.rates.get(country, self.rates.get(ANYWHERE))
        return None if minor is None else Money(minor, self.currency)

    def choices(self) -> dict[str, str]:
        """The countries a buyer may pick: code → name, by name."""
        return {code: name for code, name in countries().items() if self.rate(code) is not None}

    def quote(self, country: str) -> Money:
        """The rate to ``country``, or the refusal a buyer reads."""
        money = self.rate(country)
        if money is None:
            name = countries().get(country, country)
            raise InvalidInput("country", f"this drop does not ship to {name}")
        return money


def parse_address(form: Mapping[str, object], rates: ShippingRates | None = None) -> Address:
    """An address from a form, each field checked and named when wrong; with ``rates``,
    the country must be one the drop ships to."""
    values = {
        key: one_line(form.get(key), label, longest if key != "country" else 60, required=required)
        for key, label, longest, required in ADDRESS_FIELDS
    }
    values["country"] = country_code(values["country"])
    if rates is not None:
        rates.quote(values["country"])
    return Address(**values)


def allowed_countries(codes: Collection[str]) -> frozenset[str]:
    """The deployment's ``ship_to_countries`` checked as codes (empty: anywhere)."""
    return frozenset(country_code(c, "payments.ship_to_countries") for c in codes)


# Where a buyer follows a parcel, for the carriers creators use most; others get the code.
_TRACKERS = {
    "ups": "https://www.ups.com/track?tracknum={code}",
    "usps": "https://tools.usps.com/go/TrackConfirmAction?tLabels={code}",
    "fedex": "https://www.fedex.com/fedextrack/?trknbr={code}",
    "dhl": "https://www.dhl.com/global-en/home/tracking.html?tracking-id={code}",
    "royal mail": "https://www.royalmail.com/track-your-item#/tracking-results/{code}",
    "canada post": "https://www.canadapost-postescanada.ca/track-reperage/en#/search?searchFor={code}",
    "dpd": "https://www.dpd.com/tracking/?parcelNumber={code}",
}


def tracking_url(carrier: str, code: str) -> str | None:
    """The carrier's tracking page for ``code``; None for a carrier we do not know."""
    template = _TRACKERS.get(" ".join(carrier.lower().split()))
    return template.format(code=quote(code.replace(" ", ""), safe="")) if template else None


def pickup_point(pool: str) -> str:
    """A pickup pool as people name the place: "pickup:corner-deli" → "Corner Deli"."""
    return pool.removeprefix(PICKUP_PREFIX).replace("-", " ").title()
