"""Tests of the OAuth2 "Sign in with Twitch / Discord" flows of the local fakes.

The helpers read the consent page the way a browser without JavaScript does: find the one form,
collect its fields and submit it with the clicked button.
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import parse_qsl, urljoin, urlsplit


class ConsentPage(HTMLParser):
    """The parts of a consent page a browser would use, plus what must not be there."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.method = ""
        self.hidden: dict[str, str] = {}
        self.buttons: dict[str, tuple[str, str]] = {}  # id -> (name, value)
        self.selects: dict[str, list[str]] = {}  # name -> option values
        self.ids: set[str] = set()
        self.scripts = 0
        self.external: list[str] = []  # src/href values: resources a browser would fetch
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids.add(a["id"])
        self.external.extend(a[k] for k in ("src", "href") if k in a)
        if tag == "script":
            self.scripts += 1
        elif tag == "form":
            self.action, self.method = a.get("action"), a.get("method", "get").lower()
        elif tag == "input" and a.get("type") == "hidden":
            self.hidden[a["name"]] = a.get("value", "")
        elif tag == "button":
            self.buttons[a.get("id", "")] = (a.get("name", ""), a.get("value", ""))
        elif tag == "select":
            self._select = a["name"]
            self.selects[a["name"]] = []
        elif tag == "option" and self._select is not None:
            self.selects[self._select].append(a.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None

    def submit(self, page_url: str, button: str, **choices: str) -> tuple[str, dict[str, str]]:
        """The URL and form body a browser posts when ``button`` (an id) is clicked."""
        data = dict(self.hidden)
        for name, options in self.selects.items():
            data[name] = choices.get(name, options[0] if options else "")
        name, value = self.buttons[button]
        data[name] = value
        # No action attribute: the form posts back to the page's own URL.
        return urljoin(page_url, self.action or page_url), data


def parse_page(text: str) -> ConsentPage:
    page = ConsentPage()
    page.feed(text)
    page.close()
    return page


def split_redirect(location: str) -> tuple[str, dict[str, str]]:
    """``https://app/cb?code=...`` -> (``https://app/cb``, its query as a dict)."""
    parts = urlsplit(location)
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    return base, dict(parse_qsl(parts.query, keep_blank_values=True))
