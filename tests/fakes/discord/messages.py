"""Validation and normalisation of message bodies, as Discord applies them."""

from __future__ import annotations

import mimetypes
import re
from typing import Any

from .models import Json
from .records import EMPTY_MESSAGE, error, form_error

EPHEMERAL = 1 << 6
LOADING = 1 << 7
SUPPRESS_EMBEDS = 1 << 2
SUPPRESS_NOTIFICATIONS = 1 << 12
IS_COMPONENTS_V2 = 1 << 15
# Flags a bot may set when creating a channel message; others are silently dropped.
SETTABLE_FLAGS = SUPPRESS_EMBEDS | SUPPRESS_NOTIFICATIONS | IS_COMPONENTS_V2
INTERACTION_SETTABLE_FLAGS = SETTABLE_FLAGS | EPHEMERAL

USER_MENTION = re.compile(r"<@!?(\d+)>")
ROLE_MENTION = re.compile(r"<@&(\d+)>")

_BUTTON, _ACTION_ROW, _LINK_STYLE, _PREMIUM_STYLE = 2, 1, 5, 6


def validate_body(body: Json) -> None:
    """Loose checks on the fields Discord validates most often (50035 Invalid Form Body)."""
    content = body.get("content")
    if content is not None and not isinstance(content, str):
        raise form_error("content", "STRING_TYPE_CONVERT", "Could not interpret value as string.")
    if isinstance(content, str) and len(content) > 2000:
        raise form_error("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
    embeds = body.get("embeds")
    if embeds is not None:
        if not isinstance(embeds, list):
            raise form_error(
                "embeds", "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType"
            )
        if len(embeds) > 10:
            raise form_error("embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
        total = 0
        for i, embed in enumerate(embeds):
            total += _validate_embed(i, embed)
        if total > 6000:
            raise form_error(
                "embeds", "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000"
            )
    flags = int(body.get("flags") or 0)
    components = body.get("components")
    if components is not None:
        _validate_components(components, v2=bool(flags & IS_COMPONENTS_V2))
    if flags & IS_COMPONENTS_V2 and (body.get("content") or body.get("embeds")):
        raise form_error(
            "content",
            "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
            "The 'content' and 'embeds' fields cannot be used when using "
            "MessageFlags.IS_COMPONENTS_V2",
        )


def _validate_embed(index: int, embed: Any) -> int:
    if not isinstance(embed, dict):
        raise form_error(f"embeds.{index}", "DICT_TYPE_CONVERT", "Only dictionaries may be used.")
    limits = {"title": 256, "description": 4096}
    size = 0
    for key, limit in limits.items():
        value = embed.get(key) or ""
        if len(value) > limit:
            raise form_error(
                f"embeds.{index}.{key}",
                "BASE_TYPE_MAX_LENGTH",
                f"Must be {limit} or fewer in length.",
            )
        size += len(value)
    fields = embed.get("fields") or []
    if len(fields) > 25:
        raise form_error(
            f"embeds.{index}.fields", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."
        )
    for j, fld in enumerate(fields):
        for key, limit in (("name", 256), ("value", 1024)):
            value = str(fld.get(key) or "")
            if not value:
                raise form_error(
                    f"embeds.{index}.fields.{j}.{key}",
                    "BASE_TYPE_REQUIRED",
                    "This field is required",
                )
            if len(value) > limit:
                raise form_error(
                    f"embeds.{index}.fields.{j}.{key}",
                    "BASE_TYPE_MAX_LENGTH",
                    f"Must be {limit} or fewer in length.",
                )
            size += len(value)
    size += len((embed.get("footer") or {}).get("text") or "")
    size += len((embed.get("author") or {}).get("name") or "")
    return size


def _validate_components(components: Any, *, v2: bool) -> None:
    if not isinstance(components, list):
        raise form_error(
            "components", "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType"
        )
    if not v2 and len(components) > 5:
        raise form_error("components", "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
    seen: set[str] = set()
    for i, row in enumerate(components):
        if not v2 and row.get("type") != _ACTION_ROW:
            raise form_error(
                f"components.{i}.type", "UNION_TYPE_CHOICES", 'Value of field "type" must be 1.'
            )
        children = row.get("components") or []
        if row.get("type") == _ACTION_ROW and not 1 <= len(children) <= 5:
            raise form_error(
                f"components.{i}.components",
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 5 in length.",
            )
        nested = (
            iter_components(children) if row.get("type") == _ACTION_ROW else iter_components([row])
        )
        for j, child in enumerate(nested):
            custom_id = child.get("custom_id")
            if custom_id is not None:
                if len(custom_id) > 100:
                    raise form_error(
                        f"components.{i}.components.{j}.custom_id",
                        "BASE_TYPE_MAX_LENGTH",
                        "Must be 100 or fewer in length.",
                    )
                if custom_id in seen:
                    raise form_error(
                        f"components.{i}.components.{j}.custom_id",
                        "COMPONENT_CUSTOM_ID_DUPLICATED",
                        "Component custom id cannot be duplicated",
                    )
                seen.add(custom_id)
            if child.get("type") == _BUTTON:
                style = child.get("style")
                if style == _LINK_STYLE and not child.get("url"):
                    raise form_error(
                        f"components.{i}.components.{j}.url",
                        "BASE_TYPE_REQUIRED",
                        "This field is required",
                    )
                if style not in (_LINK_STYLE, _PREMIUM_STYLE) and not custom_id:
                    raise form_error(
                        f"components.{i}.components.{j}.custom_id",
                        "BASE_TYPE_REQUIRED",
                        "This field is required",
                    )


def iter_components(components: list[Json]) -> list[Json]:
    """Flatten action rows, v2 containers/sections and their accessories."""
    out: list[Json] = []
    for comp in components:
        out.append(comp)
        out.extend(iter_components(list(comp.get("components") or [])))
        for key in ("accessory", "component"):
            if isinstance(comp.get(key), dict):
                out.extend(iter_components([comp[key]]))
    return out


def json_copy(value: Any) -> Any:
    """A copy of a JSON document (dicts, lists, scalars), sharing nothing mutable. What
    ``copy.deepcopy`` does for these, without its memo: it ran once per message in a surge."""
    kind = type(value)
    if kind is dict:
        return {key: json_copy(item) for key, item in value.items()}
    if kind is list:
        return [json_copy(item) for item in value]
    return value


def number_components(components: list[Json]) -> list[Json]:
    """Discord assigns sequential numeric ``id``s to components that lack one."""
    result: list[Json] = json_copy(components)
    used = {c["id"] for c in iter_components(result) if isinstance(c.get("id"), int)}
    next_id = 1
    for comp in iter_components(result):
        if "id" not in comp:
            while next_id in used:
                next_id += 1
            comp["id"] = next_id
            used.add(next_id)
    return result


def normalize_embeds(embeds: list[Json]) -> list[Json]:
    out = []
    for embed in embeds:
        embed = dict(embed)
        embed.setdefault("type", "rich")  # Discord stamps every bot embed as "rich"
        embed.setdefault("content_scan_version", 0)
        out.append(embed)
    return out


def is_empty(message: Json) -> bool:
    return not (
        message.get("content")
        or message.get("embeds")
        or message.get("components")
        or message.get("attachments")
        or message.get("sticker_items")
        or message.get("poll")
    )


def require_not_empty(message: Json) -> None:
    if is_empty(message):
        raise error(EMPTY_MESSAGE)


def guess_content_type(filename: str, declared: str) -> str:
    # discord.py always declares application/octet-stream; Discord sniffs the real type.
    guessed, _ = mimetypes.guess_type(filename)
    if guessed:
        return guessed if not guessed.startswith("text/") else f"{guessed}; charset=utf-8"
    return declared or "application/octet-stream"
