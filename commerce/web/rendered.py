"""Responses rendered once per state of a drop and served from memory: the body, its ETag
and its headers, kept per drop for the view object they were rendered from, and the
If-None-Match check (RFC 9110, section 13.1.2) that answers 304 from them."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from aiohttp import hdrs, web

from commerce.domain.model import DropView

# One element of an If-None-Match list: an entity-tag (its opaque tag captured, which is
# what weak comparison compares) or nothing (lists may have empty elements), then a comma.
_ELEMENT = re.compile(r'[ \t]*(?:(?:W/)?"([^"\x00-\x20\x7f]*)")?[ \t]*(?:,|\Z)')


def _opaque_tags(field: str) -> Iterator[str]:
    """The opaque tags of a list of entity-tags, up to anything malformed (ignored)."""
    position = 0
    while position < len(field):
        element = _ELEMENT.match(field, position)
        if element is None or element.end() == position:
            return
        if element[1] is not None:
            yield element[1]
        position = element.end()


def none_match(fields: list[str], opaque: str) -> bool:
    """Whether If-None-Match (all its fields: one list) names the representation whose
    opaque tag is ``opaque``: ``*``, or a listed tag equal by weak comparison (``W/`` or
    not), so a GET gets 304 (RFC 9110, section 13.1.2)."""
    for field in fields:
        if field.strip(" \t") == "*":
            return True
        if opaque in _opaque_tags(field):
            return True
    return False


@dataclass(frozen=True, slots=True)
class Rendered:
    """A body with its weak ETag and the headers of its 200 and of its 304, built once."""

    body: bytes
    etag: str
    opaque: str  # the ETag without W/ and quotes
    headers: Mapping[str, str]  # of the 200
    unchanged: Mapping[str, str]  # of the 304: what a 200 would say about caching

    @classmethod
    def of(
        cls,
        body: bytes,
        content_type: str,
        cache: str,
        *,
        vary: str | None = None,
        validator: bytes | None = None,
    ) -> Rendered:
        """``validator``: the bytes the ETag is a hash of (default: the body). Weak, so one
        tag may stand for bodies that differ only in what does not matter (the time it was
        rendered; a proxy's compression)."""
        opaque = hashlib.blake2b(body if validator is None else validator, digest_size=10)
        tag = opaque.hexdigest()
        etag = f'W/"{tag}"'
        unchanged = {"Cache-Control": cache, "ETag": etag}
        if vary is not None:
            unchanged["Vary"] = vary
        return cls(body, etag, tag, {**unchanged, "Content-Type": content_type}, unchanged)

    def response(
        self, request: web.Request, extra: Mapping[str, str] | None = None
    ) -> web.Response:
        """304 when the request's If-None-Match names this body, else the body; ``extra``:
        headers of this request alone (on both)."""
        fields = request.headers.getall(hdrs.IF_NONE_MATCH, None)
        # A browser sends back the ETag it was given: that needs no parsing.
        if fields is not None and (self.etag in fields or none_match(fields, self.opaque)):
            headers = self.unchanged if extra is None else {**self.unchanged, **extra}
            return web.Response(status=304, headers=headers)
        headers = self.headers if extra is None else {**self.headers, **extra}
        return web.Response(body=self.body, headers=headers)


Made = TypeVar("Made")


class RenderMemo(Generic[Made]):
    """What each drop's current view rendered to, per variant (e.g. the reader's locale):
    a ``Rendered`` response, or a page's ``Skeleton``.

    Keyed by the view object itself: the view cache hands out a new one after every event
    of the drop and at its TTL, so a new view always means new bytes, and the bytes of a
    view are made once however many requests it serves. A view is compared by identity and
    held while it is the drop's latest, so its id cannot be reused meanwhile. Bounded: the
    ``drops`` most recently rendered drops (a drop re-enters at the end with each new
    view), ``variants`` each.
    """

    def __init__(self, drops: int = 256, variants: int = 16) -> None:
        self._drops = drops
        self._variants = variants
        self._entries: dict[int, tuple[DropView, dict[str, Made]]] = {}

    def get(self, view: DropView, variant: str = "") -> Made | None:
        entry = self._entries.get(view.drop.id)
        if entry is None or entry[0] is not view:
            return None
        return entry[1].get(variant)

    def put(self, view: DropView, rendered: Made, variant: str = "") -> Made:
        drop_id = view.drop.id
        entry = self._entries.get(drop_id)
        if entry is None or entry[0] is not view:
            self._entries.pop(drop_id, None)
            while len(self._entries) >= self._drops:
                del self._entries[next(iter(self._entries))]
            entry = self._entries[drop_id] = (view, {})
        variants = entry[1]
        if variant not in variants and len(variants) >= self._variants:
            del variants[next(iter(variants))]
        variants[variant] = rendered
        return rendered

    def __len__(self) -> int:
        return len(self._entries)
