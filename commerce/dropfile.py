"""The drop file (TOML) and the admin API's JSON: one schema, validated before any write.

Errors name the field (``items[1].pools.ship``) and, for TOML syntax, the line.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from commerce.analytics.metrics import objective_names
from commerce.domain.errors import InvalidInput
from commerce.domain.model import (
    PICKUP_PREFIX,
    DropFormat,
    Money,
    validate_pool,
    validate_sku,
)
from commerce.durations import FORMS, is_duration, parse_duration


def parse_when(value: str | datetime, now: datetime, field_name: str) -> datetime:
    """ISO 8601 with a zone, or relative to now in the duration grammar: ``+90s``, ``+10m``,
    ``+2h``, ``+1d``, ``+1w``."""
    if isinstance(value, datetime):
        when = value
    else:
        text = str(value).strip()
        if is_duration(text):
            return now + parse_duration(text, field_name)
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(
                field_name, f"{text!r} is neither ISO 8601 nor relative like {FORMS}"
            ) from None
    if when.tzinfo is None:
        raise InvalidInput(field_name, "needs a time zone, e.g. 2026-12-01T18:00:00+01:00")
    return when.astimezone(UTC)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Objective(_Strict):
    metric: str  # a metric of the registry that a drop may aim for
    target: float = Field(gt=0)

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        names = objective_names()
        if value not in names:
            raise ValueError(f"{value!r} is not a metric to aim for: one of {', '.join(names)}")
        return value


class DropHeader(_Strict):
    title: str = Field(min_length=1, max_length=200)
    format: DropFormat = DropFormat.CAPSULE
    opens_at: str | datetime | None = None
    closes_at: str | datetime | None = None
    demo_seconds: int | None = Field(default=None, ge=0, le=3600)
    hold_seconds: int = Field(default=60, ge=10, le=3600)
    per_customer_limit: int = Field(default=1, ge=1, le=100)
    price: str | int | float | None = None  # bundle price; default: the sum of its parts
    currency: str | None = None
    objective: Objective | None = None
    replay_url: str | None = None
    # What shipping a ship-pool order costs, per ISO country code; "*" for the rest.
    shipping: dict[str, str | int | float] | None = None

    @field_validator("opens_at", "closes_at")
    @classmethod
    def _when(cls, value: str | datetime | None) -> str | datetime | None:
        if value is not None:
            try:
                parse_when(value, datetime.now(UTC), "time")
            except InvalidInput as exc:
                raise ValueError(exc.problem) from None
        return value


class ProductSpec(_Strict):
    sku: str
    title: str = Field(min_length=1, max_length=200)
    price: str | int | float
    currency: str = "USD"
    image_url: str | None = None

    @field_validator("sku")
    @classmethod
    def _sku(cls, value: str) -> str:
        try:
            return validate_sku(value)
        except InvalidInput as exc:
            raise ValueError(exc.problem) from None

    @model_validator(mode="after")
    def _price(self) -> ProductSpec:
        try:
            Money.parse(self.price, self.currency)
        except InvalidInput as exc:
            raise PydanticCustomError(
                "price", "{field}: {problem}", {"field": exc.field, "problem": exc.problem}
            ) from None
        return self


class ItemSpec(_Strict):
    sku: str
    pools: dict[str, int] = Field(min_length=1)
    per_bundle: int = Field(default=1, ge=1, le=100)

    @field_validator("pools")
    @classmethod
    def _pools(cls, value: dict[str, int]) -> dict[str, int]:
        for name, units in value.items():
            try:
                validate_pool(name)
            except InvalidInput as exc:
                raise ValueError(exc.problem) from None
            if units < 0 or units > 1_000_000:
                raise ValueError(f"{name} = {units}: units must be between 0 and 1000000")
        return value


# What the API's description shows (and the fuzz test sends) as a drop that can be created.
EXAMPLE_SPEC: dict[str, Any] = {
    "drop": {"title": "Spicy chips capsule", "opens_at": "+10m", "hold_seconds": 60},
    "products": [{"sku": "CHIPS-SPICY", "title": "Spicy chips, 6-pack", "price": "12.00"}],
    "items": [{"sku": "CHIPS-SPICY", "pools": {"ship": 10}}],
}


class DropSpec(_Strict):
    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [EXAMPLE_SPEC]}
    )

    drop: DropHeader
    products: list[ProductSpec] = Field(default_factory=list)
    items: list[ItemSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> DropSpec:
        skus = [p.sku for p in self.products]
        if len(set(skus)) != len(skus):
            raise ValueError("products: the same sku is listed twice")
        item_skus = [i.sku for i in self.items]
        if len(set(item_skus)) != len(item_skus):
            raise ValueError("items: the same sku is listed twice")
        fmt = self.drop.format
        pickup = any(p.startswith(PICKUP_PREFIX) for i in self.items for p in i.pools)
        if pickup and fmt is not DropFormat.COLLAB:
            raise ValueError("drop.format: pickup pools need format = 'collab'")
        if fmt is DropFormat.COLLAB and not pickup:
            raise ValueError("items: a collab drop needs at least one 'pickup:<location>' pool")
        if fmt is DropFormat.BUNDLE:
            if len(self.items) < 2:
                raise ValueError("items: a bundle needs at least two SKUs")
            pool_sets = {frozenset(i.pools) for i in self.items}
            if len(pool_sets) != 1:
                raise ValueError("items: every part of a bundle needs the same pools")
        elif any(i.per_bundle != 1 for i in self.items):
            raise ValueError("items: per_bundle only applies to format = 'bundle'")
        if sum(sum(i.pools.values()) for i in self.items) == 0:
            raise ValueError("items: the drop has no units")
        currencies = {p.currency.upper() for p in self.products}
        if self.drop.currency:
            currencies.add(self.drop.currency.upper())
        if len(currencies) > 1:
            raise ValueError("products: one drop sells in one currency")
        return self


def _location(loc: tuple[int | str, ...], data: Any, whole: str, missing: bool) -> str:
    """The field of a pydantic error location, as the input spells it. Parts the input does
    not have are a union member's tag (``str``, ``constrained-str``), not a field, except
    the last one of a missing field."""
    out = ""
    for i, part in enumerate(loc):
        present = isinstance(data, dict) and part in data
        present |= isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if present:
            data = data[part]
        elif not (missing and i == len(loc) - 1):
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or whole


def input_error(exc: ValidationError, data: Any, whole: str = "drop file") -> InvalidInput:
    """The first problem pydantic found in ``data``, as InvalidInput naming its field
    (``items[1].pools``) in our wording; ``whole`` names the document when no field is at
    fault. The JSON API's bodies (``commerce/web/schemas.py``) are validated through it too."""
    first = exc.errors()[0]
    missing = first["type"] == "missing"
    message = "unknown field" if first["type"] == "extra_forbidden" else first["msg"]
    message = message.removeprefix("Value error, ")
    for said, ours in (("Input should be", "must be"), ("String should", "must")):
        message = message.replace(said, ours)
    loc = _location(first["loc"], data, whole, missing)
    if first["type"] == "price":  # names its own field inside the product
        ctx = first.get("ctx", {})
        loc, message = f"{loc}.{ctx.get('field', 'price')}", str(ctx.get("problem", message))
    if missing or (first["type"].endswith("_type") and first["input"] is None):
        message = "is required"
    return InvalidInput(loc, message)


def reject_unstorable_text(data: Any, path: str) -> None:
    """InvalidInput naming the first string (key or value) in ``data`` that no database
    column can hold: a NUL character (PostgreSQL refuses it) or a lone UTF-16 surrogate
    (not encodable as UTF-8; JSON's ``\\ud800`` makes one)."""
    if isinstance(data, str):
        if "\x00" in data:
            raise InvalidInput(path, "must not contain a NUL character")
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(path, "is not valid Unicode text") from None
    elif isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            reject_unstorable_text(key, where)
            reject_unstorable_text(value, where)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            reject_unstorable_text(value, f"{path}[{i}]")


def validate_spec(data: dict[str, Any]) -> DropSpec:
    reject_unstorable_text(data, "")
    try:
        return DropSpec.model_validate(data)
    except ValidationError as exc:
        raise input_error(exc, data) from None


def load_drop_file(path: Path | str) -> DropSpec:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(str(path), "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(str(path), f"cannot read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(str(path), f"not valid TOML: {exc}") from None
    return validate_spec(data)


def product_prices(spec: DropSpec) -> dict[str, Money]:
    prices = {}
    for i, product in enumerate(spec.products):
        prices[product.sku] = Money.parse(product.price, product.currency, f"products[{i}].price")
    return prices
