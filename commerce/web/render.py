"""Templates (Jinja2, autoescaped, compiled once) and static assets under content-hashed
names, held in memory and served with immutable cache headers."""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from commerce.domain.model import Money
from commerce.money_format import format_money

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
TEMPLATE_DIR = HERE / "templates"
# Served at fixed, uncached-ish paths because their URL is their identity.
UNHASHED = frozenset({"sw.js"})


@dataclass(frozen=True, slots=True)
class Asset:
    name: str  # the hashed URL name, e.g. app.3f2a1b9c0d.css
    body: bytes
    content_type: str
    etag: str


class Assets:
    """Static files loaded once; ``url('app.css')`` gives the hashed, cacheable URL."""

    def __init__(self, directory: Path = STATIC_DIR) -> None:
        self._by_logical: dict[str, Asset] = {}
        self.by_name: dict[str, Asset] = {}
        for path in sorted(directory.iterdir()):
            if not path.is_file() or path.name in UNHASHED:
                continue
            body = path.read_bytes()
            digest = hashlib.sha256(body).hexdigest()[:12]
            hashed = f"{path.stem}.{digest}{path.suffix}"
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            if content_type.startswith("text/") or content_type.endswith(("javascript", "json")):
                content_type += "; charset=utf-8"
            asset = Asset(hashed, body, content_type, f'"{digest}"')
            self._by_logical[path.name] = asset
            self.by_name[hashed] = asset

    def url(self, logical: str) -> str:
        return f"/static/{self._by_logical[logical].name}"

    def named(self, logical: str) -> Asset:
        """The file ``logical`` (e.g. ``embed.js``), for a route of its own."""
        return self._by_logical[logical]

    def urls(self) -> list[str]:
        return [f"/static/{name}" for name in sorted(self.by_name)]


# Marks a slot in a skeleton's text; nothing a page shows contains it (a control
# character: refused in titles and names, and not in any template).
SLOT_MARK = "\x1a"


class Slot(Markup):
    """What a template gets for a value filled in per request (``Templates.skeleton``): it
    renders as its marked name, and through a filter as its name and that filter's."""

    __slots__ = ()

    @classmethod
    def named(cls, name: str, through: str | None = None) -> Slot:
        return cls(f"{SLOT_MARK}{name}{'|' + through if through else ''}{SLOT_MARK}")

    def through(self, filter_name: str) -> Slot:
        return Slot.named(self.strip(SLOT_MARK), filter_name)


def _iso(value: datetime | None) -> str:
    if isinstance(value, Slot):
        return value.through("iso")
    return value.isoformat().replace("+00:00", "Z") if value else ""


def _hms(value: datetime | None) -> str:
    if isinstance(value, Slot):
        return value.through("hms")
    # Not strftime: it consults the locale, a measurable share of a hold page's cost.
    return f"{value.hour:02d}:{value.minute:02d}:{value.second:02d} UTC" if value else ""


# The filters a slot may go through, applied when it is filled.
SLOT_FILTERS: dict[str, Callable[[Any], str]] = {"iso": _iso, "hms": _hms}


@dataclass(frozen=True, slots=True)
class Skeleton:
    """A page rendered once with its per-request values left as slots: ``fill`` joins the
    text between them with each request's values, filtered and escaped exactly as the
    template would have, so the page costs a join instead of a render."""

    texts: tuple[str, ...]  # the text before each slot, then the text after the last
    slots: tuple[tuple[str, Callable[[Any], str] | None], ...]  # (value's name, its filter)

    @classmethod
    def parse(cls, rendered: str, names: Iterable[str]) -> Skeleton | None:
        """The skeleton of text rendered with ``Slot``s for ``names``; None when that text
        holds a mark that is not a slot's (then the page is rendered per request)."""
        pieces = rendered.split(SLOT_MARK)
        wanted = set(names)
        slots: list[tuple[str, Callable[[Any], str] | None]] = []
        for piece in pieces[1::2]:
            name, _, through = piece.partition("|")
            if name not in wanted or (through and through not in SLOT_FILTERS):
                return None
            slots.append((name, SLOT_FILTERS[through] if through else None))
        if len(pieces) % 2 == 0:  # an odd number of marks: one is not a slot's
            return None
        return cls(tuple(pieces[0::2]), tuple(slots))

    def fill(self, values: Mapping[str, object]) -> str:
        texts = self.texts
        out = [texts[0]]
        for i, (name, through) in enumerate(self.slots):
            value = values[name]
            out.append(escape(through(value) if through is not None else value))
            out.append(texts[i + 1])
        return "".join(out)


# The reader's locale for this request (from Accept-Language, set by the app's middleware):
# money on every page reads the way its reader writes amounts.
READER_LOCALE: ContextVar[str | None] = ContextVar("reader_locale", default=None)


def reader_locale(accept_language: str | None) -> str | None:
    """The first language a browser asks for (``de-DE,de;q=0.9`` → ``de-DE``), or None."""
    first = (accept_language or "").split(",", 1)[0].split(";", 1)[0].strip()
    return first if first and first != "*" and len(first) <= 35 else None


def _money(value: Money | None) -> str:
    return format_money(value, READER_LOCALE.get()) if value else ""


class Templates:
    """Every template compiled at start-up; rendering is a dictionary lookup and a call."""

    def __init__(self, assets: Assets, directory: Path = TEMPLATE_DIR) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(directory),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
            undefined=jinja2.StrictUndefined,
        )
        self.env.globals["asset"] = assets.url
        self.env.filters.update(iso=_iso, hms=_hms, money=_money)
        self._compiled = {
            path.name: self.env.get_template(path.name)
            for path in directory.iterdir()
            if path.suffix in (".html", ".js", ".webmanifest")
        }

    def render(self, name: str, **context: Any) -> str:
        return self._compiled[name].render(**context)

    def skeleton(self, name: str, slots: Iterable[str], **context: Any) -> Skeleton | None:
        """``name`` rendered once with ``slots`` left open (see ``Skeleton``); the rest of
        the context is what every request sharing the skeleton shows alike."""
        names = tuple(slots)
        marked = {slot: Slot.named(slot) for slot in names}
        return Skeleton.parse(self.render(name, **context, **marked), names)
