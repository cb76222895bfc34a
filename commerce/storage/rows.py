"""Rows into domain records, generated from the dataclass: each field is read from the
column of the same name, and a column holding an enum's value becomes that enum. Only what
no column holds as such (``Money`` from two columns, an address from JSON) is passed in."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from enum import Enum
from typing import Any, TypeVar

from sqlalchemy.engine import Row

R = TypeVar("R")


def record(cls: type[R], row: Row[Any] | Mapping[str, Any], **computed: Any) -> R:
    """``cls`` (a dataclass) from ``row``: ``computed`` fields as given, the others from the
    column of the same name, converted to the field's enum when it has one."""
    columns: Mapping[Any, Any] = row._mapping if isinstance(row, Row) else row
    values: dict[str, Any] = {}
    for name, enum in _fields(cls):
        if name in computed:
            values[name] = computed[name]
        elif name in columns:
            value = columns[name]
            values[name] = enum(value) if enum is not None and value is not None else value
    return cls(**values)


_FIELDS: dict[type[Any], tuple[tuple[str, type[Enum] | None], ...]] = {}


def _fields(cls: type[Any]) -> tuple[tuple[str, type[Enum] | None], ...]:
    """Each init field of the dataclass with the enum its value must be (None: as read),
    worked out once per class."""
    found = _FIELDS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        found = _FIELDS[cls] = tuple(
            (field.name, _enum_of(hints[field.name]))
            for field in dataclasses.fields(cls)
            if field.init
        )
    return found


def _enum_of(hint: Any) -> type[Enum] | None:
    """``X`` for a hint ``X`` or ``X | None`` where X is an Enum; None otherwise."""
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        enums = [a for a in typing.get_args(hint) if isinstance(a, type) and issubclass(a, Enum)]
        return enums[0] if len(enums) == 1 else None
    return None
