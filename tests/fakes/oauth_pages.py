"""What the Twitch and Discord fakes share for OAuth: the authorize endpoint's answers (a
redirect back, an error page, the consent page) and the error ``approve``/``deny`` raise."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from aiohttp import web


class AuthorizeRefused(Exception):
    """``approve``/``deny``: the authorize page would show an error (an unknown client, an
    unregistered redirect URI...) instead of redirecting anywhere."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


@dataclass
class AuthorizeAnswer:
    """What ``/oauth2/authorize`` answers: a 302 to ``location``, or an HTML page."""

    status: int
    location: str | None = None
    page: str = ""
    message: str = ""  # the error an error page shows ("" for the consent page)

    def response(self) -> web.Response:
        if self.location is not None:
            return web.Response(status=self.status, headers={"Location": self.location})
        return web.Response(
            status=self.status, text=self.page, content_type="text/html", charset="utf-8"
        )


def redirect(uri: str, query: dict[str, str], state: str | None) -> AuthorizeAnswer:
    """Back to the client's redirect URI with ``query`` (and ``state``, when one was sent)."""
    if state is not None:
        query = {**query, "state": state}
    separator = "&" if "?" in uri else "?"
    return AuthorizeAnswer(302, location=f"{uri}{separator}{urlencode(query)}")


def html_document(title: str, body: str) -> str:
    """A self-contained page: no scripts, styles or images to fetch."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8">'
        f"<title>{title}</title></head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def error_page(title: str, status: int, message: str) -> AuthorizeAnswer:
    body = f'<h1>Error</h1>\n<p id="error">{html.escape(message)}</p>'
    return AuthorizeAnswer(status, page=html_document(title, body), message=message)


def who_html(signed_in: tuple[str, str, str] | None, accounts: Iterable[tuple[str, str]]) -> str:
    """The logged-in account (label, display name, login), else a picker of ``accounts``
    (value, login) in the consent form."""
    if signed_in is not None:
        label, name, login = (html.escape(part) for part in signed_in)
        return f'<p id="login">{label} <strong>{name}</strong> ({login})</p>\n'
    options = "".join(
        f'<option value="{html.escape(value)}">{html.escape(login)}</option>'
        for value, login in accounts
    )
    return f'<label for="user">Log in as</label> <select id="user" name="user">{options}</select>\n'


def consent_form(params: Mapping[str, str], keep: Iterable[str], action: str | None = None) -> str:
    """The Cancel / Authorize form, carrying the authorize request's ``keep`` parameters."""
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(params[k])}">\n'
        for k in keep
        if k in params
    )
    target = f' action="{html.escape(action)}"' if action else ""
    return (
        f'<form method="post"{target}>\n{hidden}'
        '<button type="submit" id="cancel" name="action" value="cancel">Cancel</button>\n'
        '<button type="submit" id="authorize" name="action" value="authorize">'
        "Authorize</button>\n</form>"
    )


def scope_list(scopes: Iterable[str]) -> str:
    items = "".join(f"<li>{html.escape(scope)}</li>" for scope in scopes)
    return f'<ul id="scopes">{items}</ul>\n'
