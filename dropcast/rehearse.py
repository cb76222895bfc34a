"""``dropcast rehearse``: prove before going live that a surge will not break a drop.

It plays N distinct viewers against a running dropcast — each opens a personal one-click
link (claim) and pays through the ``test`` provider — and reports claim latency, holds,
sold-outs, errors, seconds-to-checkout and an oversell check that must read 0. With
``--chat`` the viewers type ``!buy`` in the studio chat instead (the command layer and
presenter every platform uses, outcomes said many to a line as on Twitch), and it reports
how fast each was answered and named in chat. Requests go only to the URL given (loopback
by default), bounded in count and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import statistics
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bot.coalesce import SEPARATOR
from bot.twitch.outlet import default_limiter
from dropcast.app import App

FORM_FIELD = re.compile(r'name="(csrf|hold_id|pool)" value="([^"]*)"')
COUNTRY_OPTION = re.compile(r'<option value="([A-Z]{2})"( selected)?>')
CLOSED_PAGE = 'data-state="closed"'  # the claim page of a drop that has closed


def pay_form(page: str, viewer: int) -> dict[str, str]:
    """What a rehearsal viewer sends to pay: the page's hidden fields and, for a ship hold,
    an address in a country the drop ships to (the one the page chose, else its first)."""
    form = dict(FORM_FIELD.findall(page))
    offered = COUNTRY_OPTION.findall(page)
    if offered:
        country = next((code for code, chosen in offered if chosen), offered[0][0])
        form.update(
            name=f"Rehearsal viewer {viewer}",
            line1=f"{viewer} Rehearsal Way",
            city="Testville",
            postal_code="00000",
            country=country,
        )
    return form


@dataclass
class Rehearsal:
    viewers: int
    arrival: str
    latencies: list[float] = field(default_factory=list)
    checkout_seconds: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    paid: int = 0
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def oversold(self) -> int:
        """Units promised beyond what existed: must be 0."""
        after = self.after
        granted = self.outcomes["held"]
        in_use = int(after.get("sold", 0)) + int(after.get("held", 0))
        beyond_total = max(0, in_use - int(after.get("total", 0)))
        beyond_start = max(0, granted - int(self.before.get("available", 0)))
        return max(beyond_total, beyond_start)

    def summary(self) -> dict[str, Any]:
        ms = [x * 1000 for x in self.latencies]
        errors = {
            k.removeprefix("error:"): n for k, n in self.outcomes.items() if k.startswith("error")
        }
        return {
            "viewers": self.viewers,
            "arrival": self.arrival,
            "seconds": round(self.elapsed, 2),
            "claim_p50_ms": _round(_pct(ms, 50)),
            "claim_p99_ms": _round(_pct(ms, 99)),
            "holds": self.outcomes["held"],
            "sold_out": self.outcomes["sold_out"],
            "closed": self.outcomes["closed"],  # came after the last unit was paid
            "rate_limited": self.outcomes["rate_limited"],
            "errors": sum(errors.values()),
            # What went wrong, by kind (a status, or the client's exception): a count alone
            # cannot tell a full listen queue from a server bug.
            "error_kinds": dict(sorted(errors.items())),
            "paid": self.paid,
            "checkout_p50_s": _round(_pct(self.checkout_seconds, 50)),
            "checkout_p90_s": _round(_pct(self.checkout_seconds, 90)),
            "holders_refused": self.outcomes["holder_refused"],
            "oversold": self.oversold,
            **{k: n for k, n in sorted(self.outcomes.items()) if k.startswith("answered")},
        }


def _round(value: float | None) -> float | None:
    return round(value, 2) if value is not None else None


def fake_address(i: int) -> str:
    """Distinct client addresses from the benchmarking range (RFC 2544, 198.18.0.0/15)."""
    return f"198.{18 + (i >> 16) % 2}.{(i >> 8) % 256}.{i % 256}"


async def run_rehearsal(
    app: App,
    drop_id: int,
    *,
    viewers: int,
    arrival: str,
    url: str,
    ramp_seconds: float,
    request_seconds: float = 60.0,
    claims_only: bool = False,
) -> Rehearsal:
    """``claims_only``: each viewer only opens their link, and the drop's state is not read:
    the same surge against any server (a bare aiohttp floor), to compare claim latencies."""
    base = url.rstrip("/")
    report = Rehearsal(viewers, arrival)
    run = uuid.uuid4().hex[:8]
    # Issued like any link (recorded as the funnel's first step), so the report adds up.
    identities = [f"web:rehearsal-{run}-{i}@rehearsal.invalid" for i in range(viewers)]
    issued = await asyncio.gather(
        *(app.links.issue(drop_id, identity, "rehearsal") for identity in identities)
    )
    tokens = [link.token for link in issued]
    connector = aiohttp.TCPConnector(limit=min(viewers, 1000))
    client_timeout = aiohttp.ClientTimeout(total=request_seconds)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as http:
        if not claims_only:
            report.before = await _state(http, base, drop_id)

        async def viewer(i: int, token: str) -> None:
            if arrival == "ramp":
                await asyncio.sleep(i * ramp_seconds / viewers)
            headers = {"X-Forwarded-For": fake_address(i), "Accept": "text/html"}
            started = time.perf_counter()
            try:
                async with http.get(f"{base}/c/{token}", headers=headers) as response:
                    body = await response.text()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                report.outcomes[f"error:{type(exc).__name__}"] += 1
                return
            report.latencies.append(time.perf_counter() - started)
            if claims_only:
                report.outcomes[f"answered {status}"] += 1
                return
            fields = pay_form(body, i)
            if status == 200 and "hold_id" in fields:
                report.outcomes["held"] += 1
            elif status == 409:
                report.outcomes["sold_out"] += 1
                return
            elif status == 410 and CLOSED_PAGE in body:
                # Every unit was paid and the drop closed itself: a refusal, as "sold out".
                report.outcomes["closed"] += 1
                return
            elif status == 429:
                report.outcomes["rate_limited"] += 1
                return
            else:
                report.outcomes[f"error:{status}"] += 1
                return
            # A holder opens another personal link of theirs (as from chat or a reminder) at
            # the busiest moment: it must show the same hold, never "sold out".
            again = await app.links.issue(drop_id, identities[i], "rehearsal")
            try:
                async with http.get(f"{base}/c/{again.token}", headers=headers) as response:
                    same = dict(FORM_FIELD.findall(await response.text())).get("hold_id")
                    if response.status != 200 or same != fields["hold_id"]:
                        report.outcomes["holder_refused"] += 1
            except (aiohttp.ClientError, TimeoutError) as exc:
                report.outcomes[f"error:reopen {type(exc).__name__}"] += 1
            form = {**fields, "provider": "test"}
            try:
                async with http.post(f"{base}/c/{token}/pay", data=form, headers=headers) as paid:
                    await paid.read()
                    if paid.status == 200:
                        report.paid += 1
                        report.checkout_seconds.append(time.perf_counter() - started)
                    else:
                        report.outcomes[f"error:pay {paid.status}"] += 1
            except (aiohttp.ClientError, TimeoutError) as exc:
                report.outcomes[f"error:pay {type(exc).__name__}"] += 1

        started = time.perf_counter()
        await asyncio.gather(*(viewer(i, token) for i, token in enumerate(tokens)))
        report.elapsed = time.perf_counter() - started
        if not claims_only:
            report.after = await _state(http, base, drop_id)
    return report


async def _state(http: aiohttp.ClientSession, base: str, drop_id: int) -> dict[str, Any]:
    async with http.get(f"{base}/api/drops/{drop_id}") as response:
        if response.status != 200:
            raise RehearsalError(f"{base}/api/drops/{drop_id} answered {response.status}")
        data: dict[str, Any] = await response.json()
        return data


class RehearsalError(Exception):
    """The rehearsal cannot run (server unreachable, drop unknown or not live)."""


@dataclass
class ChatRehearsal:
    """``dropcast rehearse --chat``: the surge through the studio chat, as Twitch will see it."""

    viewers: int
    arrival: str
    tabs: int
    sent_at: dict[str, float] = field(default_factory=dict)
    first_response: dict[str, float] = field(default_factory=dict)  # any answer, private or not
    named: dict[str, float] = field(default_factory=dict)  # named in a public outcome line
    outcomes: dict[str, str] = field(default_factory=dict)
    lines: set[str] = field(default_factory=set)
    links_in_public: int = 0
    elapsed: float = 0.0

    def heard(self, data: dict[str, Any], at: float) -> None:
        """One frame a rehearsal tab received."""
        if data.get("op") not in ("post", "edit"):
            return  # chat lines, history, errors
        if data.get("private"):
            who = str(data.get("to"))
            if who in self.sent_at:
                self.first_response.setdefault(who, at - self.sent_at[who])
                self.outcomes.setdefault(who, str(data.get("kind")))
            return
        text = str(data.get("text") or "")
        if data.get("link") or PERSONAL_LINK.search(text):
            self.links_in_public += 1
        if data.get("kind") != "outcomes":
            return
        self.lines.add(str(data.get("id")))
        for segment in text.split(SEPARATOR):
            names, _, brief = segment.partition(": ")
            for who in MENTION.findall(names):
                if who not in self.sent_at or who in self.named:
                    continue
                self.named[who] = at - self.sent_at[who]
                self.first_response.setdefault(who, self.named[who])
                self.outcomes.setdefault(who, _outcome_of(brief))

    def summary(self) -> dict[str, Any]:
        first = [x * 1000 for x in self.first_response.values()]
        named = [x * 1000 for x in self.named.values()]
        kinds = Counter(self.outcomes.values())
        return {
            "viewers": self.viewers,
            "arrival": self.arrival,
            "tabs": self.tabs,
            "seconds": round(self.elapsed, 2),
            "answered": len(self.first_response),
            "first_response_p50_ms": _round(_pct(first, 50)),
            "first_response_p99_ms": _round(_pct(first, 99)),
            "first_response_max_ms": _round(max(first, default=None)),
            "named_in_chat": len(self.named),
            "named_p50_ms": _round(_pct(named, 50)),
            "named_p99_ms": _round(_pct(named, 99)),
            "named_max_ms": _round(max(named, default=None)),
            "holds": kinds["held"],
            "sold_out": kinds["sold_out"],
            "other_answers": sum(n for k, n in kinds.items() if k not in ("held", "sold_out")),
            "outcome_lines": len(self.lines),
            # What those lines would take on Twitch, beyond the first burst, at its chat limit.
            "twitch_seconds_as_regular": _twitch_seconds(len(self.lines), moderator=False),
            "twitch_seconds_as_moderator": _twitch_seconds(len(self.lines), moderator=True),
            "links_in_public": self.links_in_public,
        }


def _twitch_seconds(lines: int, *, moderator: bool) -> float:
    limiter = default_limiter(moderator)
    bucket = limiter.global_bucket
    return round(max(0.0, lines - bucket.capacity) / bucket.rate, 1)


PERSONAL_LINK = re.compile(r"/c/\S+")
MENTION = re.compile(r"(?<!\S)@(\S+)")


def _outcome_of(brief: str) -> str:
    if brief.startswith(("you hold", "you already hold")):
        return "held"
    return "sold_out" if brief.startswith("sold out") else "other"


def _pct(values: list[float], p: int) -> float | None:
    if len(values) < 2:
        return values[0] if values else None
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


async def run_chat_rehearsal(
    *,
    viewers: int,
    arrival: str,
    url: str,
    ramp_seconds: float,
    tabs: int = 10,
    answer_seconds: float = 30.0,
    admin_token: str | None = None,
) -> ChatRehearsal:
    """``viewers`` distinct names type ``!buy`` in the studio chat at ``url`` (all within
    one second, or ramped), from ``tabs`` WebSocket tabs, and wait up to ``answer_seconds``
    for everyone to be answered. Only ``url`` is contacted; counts and time are bounded.
    ``admin_token``: see ``_studio_tabs``."""
    report = ChatRehearsal(viewers, arrival, tabs)
    run = uuid.uuid4().hex[:6]
    names = [f"r{run}v{i}" for i in range(viewers)]
    spread = 1.0 if arrival == "burst" else ramp_seconds
    loop = asyncio.get_running_loop()
    everyone = asyncio.Event()
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None),
        cookie_jar=aiohttp.CookieJar(unsafe=True),  # the studio's session, also on an IP host
    ) as http:
        sockets = await _studio_tabs(http, url, min(tabs, viewers), admin_token)

        async def listen(ws: aiohttp.ClientWebSocketResponse) -> None:
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    report.heard(message.json(), loop.time())
                    if len(report.first_response) == viewers and len(report.named) == viewers:
                        everyone.set()

        listeners = [asyncio.create_task(listen(ws)) for ws in sockets]
        started = loop.time()
        for i, name in enumerate(names):
            if (delay := started + i * spread / viewers - loop.time()) > 0:
                await asyncio.sleep(delay)
            report.sent_at[name] = loop.time()
            await sockets[i % len(sockets)].send_json({"name": name, "text": "!buy"})
        report.elapsed = loop.time() - started
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(everyone.wait(), answer_seconds)
        for ws in sockets:
            await ws.close()
        await asyncio.gather(*listeners, return_exceptions=True)
    return report


async def _studio_tabs(
    http: aiohttp.ClientSession, url: str, count: int, admin_token: str | None
) -> list[aiohttp.ClientWebSocketResponse]:
    """``count`` studio tabs of one browser session (the studio page gives it; the names
    the rehearsal speaks as belong to it). The studio rate-limits a session, except the
    admin's (``admin_token``, sent as a bearer header) and, in the demo, this machine's."""
    base = url.rstrip("/")
    async with http.get(f"{base}/studio") as page:
        if page.status != 200:
            raise RehearsalError(
                f"no studio chat at {base}/studio ({page.status}): run dropcast --demo, or "
                "with chat.studio = true"
            )
    headers = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}
    try:
        return [
            await http.ws_connect(f"{base}/studio/ws", heartbeat=20, headers=headers)
            for _ in range(count)
        ]
    except aiohttp.WSServerHandshakeError as exc:
        raise RehearsalError(
            f"the studio chat at {base} refused the rehearsal ({exc.status})"
        ) from None
