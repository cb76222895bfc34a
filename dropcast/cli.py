"""The ``dropcast`` command line. Bad input: exit code 2 and one line on stderr; a step
that failed outside (a payment provider refusing a refund, a row of a bulk shipment):
exit code 1."""

from __future__ import annotations

import asyncio
import json
import sys
import tomllib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, NoReturn, TypeVar

import aiohttp
import click
from pydantic import AnyHttpUrl
from rich import box
from rich.console import Console, JustifyMethod
from rich.markup import escape
from rich.table import Table

from commerce.analytics.chart import render_png
from commerce.analytics.metrics import kpi_json
from commerce.analytics.results import to_json
from commerce.desk import DeskLine, OrderDesk, packing_csv, parse_ship_csv
from commerce.domain.errors import DomainError, InvalidInput, InvalidState
from commerce.domain.model import (
    PICKUP_PREFIX,
    DeskStatus,
    DropState,
    DropView,
    Money,
    Order,
    OrderStatus,
    currency_exponent,
)
from commerce.domain.payments import PaymentError
from commerce.dropfile import load_drop_file, parse_when
from commerce.durations import parse_duration, parse_period
from commerce.money_format import format_money
from commerce.views import drop_state, iso
from config.settings import ConfigError, Settings, load_settings
from dropcast import logs
from dropcast.app import ALL_ROLES, App, event_loop_factory
from dropcast.rehearse import (
    ChatRehearsal,
    Rehearsal,
    RehearsalError,
    run_chat_rehearsal,
    run_rehearsal,
)
from dropcast.report import compare_table, print_kpis, wide_console
from scheduler.recurring import check_cron, known_timezone

T = TypeVar("T")
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    click.echo(f"dropcast: error: {message}", err=True)
    sys.exit(code)


def settings_of(ctx: click.Context) -> Settings:
    settings: Settings = ctx.obj["settings"]
    return settings


def with_app(
    ctx: click.Context, work: Callable[[App], Awaitable[T]], *, reraise: bool = False
) -> T:
    """Open the app (migrating the schema), run ``work``, close; domain errors exit 2."""

    async def go() -> T:
        app = await App.open(settings_of(ctx), hand_off=True)
        try:
            return await work(app)
        finally:
            await app.close()

    loop_factory = event_loop_factory(settings_of(ctx).runtime.event_loop)
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(go())
    except DomainError as exc:
        if reraise:
            raise
        fail(str(exc))


def emit(data: Any, as_json: bool, text: str) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else text)


def render_view(view: DropView) -> str:
    data = drop_state(view)
    lines = [
        f"drop {data['id']}: {data['title']} [{data['format']}, {data['state']}]",
        f"  opens {data['opens_at'] or '-'}  closes {data['closes_at'] or '-'}  "
        f"hold {data['hold_seconds']}s  limit {data['per_customer_limit']}/customer",
        f"  available {data['available']}  held {data['held']}  sold {data['sold']}  "
        f"of {data['total']}  waiting {data['waiting']}",
        f"  {'SKU':<16} {'pool':<24} {'total':>6} {'avail':>6} {'held':>6} {'sold':>6}",
    ]
    for item in data["items"]:
        for pool in item["pools"]:
            lines.append(
                f"  {item['sku']:<16} {pool['pool']:<24} {pool['total']:>6} "
                f"{pool['available']:>6} {pool['held']:>6} {pool['sold']:>6}"
            )
    return "\n".join(lines)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Settings file (TOML). Default: ./dropcast.toml when present.",
)
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None) -> None:
    """dropcast: live-commerce drops from chat."""
    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        fail(str(exc))
    logs.configure(settings.log.level, settings.log.json_format)
    logs.hide(*logs.secrets_of(settings))
    ctx.obj = {"settings": settings}


@cli.command()
@click.option(
    "--demo",
    is_flag=True,
    help="The demo: reuse the demo drop while it is open, else seed one that opens in a minute.",
)
@click.option("--host", default=None, help="Override web.host.")
@click.option("--port", type=int, default=None, help="Override web.port.")
@click.option(
    "--role",
    default="all",
    show_default=True,
    help="all, or a comma list of web, bots, scheduler (several processes on PostgreSQL).",
)
@click.pass_context
def run(ctx: click.Context, demo: bool, host: str | None, port: int | None, role: str) -> None:
    """Run web checkout, bots and scheduler (everything, on SQLite, by default)."""
    roles = ALL_ROLES if role == "all" else frozenset(r.strip() for r in role.split(","))
    if not roles or not roles <= ALL_ROLES:
        fail(f"--role: {role!r} is not 'all' or a comma list of web, bots, scheduler")
    settings = settings_of(ctx)
    if host is not None:
        settings.web.host = host
    if port is not None:
        settings.web.port = port
    if demo and not settings.web.trusted_proxies:
        # The demo is local: let `dropcast rehearse` stand in for many viewers by address.
        settings.web.trusted_proxies = ["127.0.0.1/32", "::1/128"]
    if "public_url" not in settings.web.model_fields_set and (host or port):
        # No public address configured: links should point where we actually listen.
        settings.web.public_url = AnyHttpUrl(f"http://{settings.web.host}:{settings.web.port}")
    with_app(ctx, lambda app: app.serve(demo=demo, roles=roles))


@cli.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply pending schema migrations."""

    async def work(app: App) -> None:
        click.echo(f"database at head ({app.db.dialect})")

    with_app(ctx, work)


@cli.group()
def drop() -> None:
    """Create, inspect and steer drops."""


@drop.command("create")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help='Print {"id": …}.')
@click.pass_context
def drop_create(ctx: click.Context, file: Path, as_json: bool) -> None:
    """Create a drop from a drop file (TOML)."""
    try:
        spec = load_drop_file(file)  # validated before the database is touched
        drop_id = with_app(ctx, lambda app: app.commerce.drops.create(spec), reraise=True)
    except DomainError as exc:
        fail(f"drop file {file}: {exc}")
    emit({"id": drop_id}, as_json, f"created drop {drop_id}")


@drop.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def drop_list(ctx: click.Context, as_json: bool) -> None:
    """List drops."""

    async def work(app: App) -> list[dict[str, Any]]:
        return [
            {
                "id": d.id,
                "title": d.title,
                "format": d.format.value,
                "state": d.state.value,
                "opens_at": iso(d.opens_at),
            }
            for d in await app.commerce.drops.list()
        ]

    rows = with_app(ctx, work)
    text = "\n".join(
        f"{r['id']:>4}  {r['state']:<9} {r['format']:<8} {r['opens_at'] or '-':<26} {r['title']}"
        for r in rows
    )
    emit(rows, as_json, text or "no drops yet")


@drop.command("show")
@click.argument("drop_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def drop_show(ctx: click.Context, drop_id: int, as_json: bool) -> None:
    """Show a drop with stock per item and pool: total, available, held, sold."""
    view = with_app(ctx, lambda app: app.commerce.drops.view(drop_id))
    emit(drop_state(view), as_json, render_view(view))


@drop.command("open")
@click.argument("drop_id", type=int)
@click.pass_context
def drop_open(ctx: click.Context, drop_id: int) -> None:
    """Open a drop for claims now."""
    try:
        result = with_app(ctx, lambda app: app.commerce.drops.open(drop_id), reraise=True)
    except InvalidState as exc:  # closed: say how to run it again
        fail(f"{exc}; `dropcast drop copy {drop_id}` makes a new drop from it")
    except DomainError as exc:
        fail(str(exc))
    click.echo(f"drop {result.id} is {result.state.value}")


@drop.command("close")
@click.argument("drop_id", type=int)
@click.pass_context
def drop_close(ctx: click.Context, drop_id: int) -> None:
    """Close a drop: no new claims; holds already placed can still be paid."""
    result = with_app(ctx, lambda app: app.commerce.drops.close(drop_id))
    click.echo(f"drop {result.id} is {result.state.value}")


@drop.command("copy")
@click.argument("drop_id", type=int)
@click.option(
    "--opens",
    "opens_at",
    default=None,
    help='When the copy opens ("+2m" or ISO 8601). Default: a draft, opened by `drop open`.',
)
@click.option("--json", "as_json", is_flag=True, help='Print {"id": …, "copy_of": …}.')
@click.pass_context
def drop_copy(ctx: click.Context, drop_id: int, opens_at: str | None, as_json: bool) -> None:
    """Create a new drop with another drop's items, prices and settings (a drop closed by
    hand never reopens: copy it to run it again). Pools get the totals the original ended
    with."""
    if opens_at is not None:
        try:
            parse_when(opens_at, datetime.now(UTC), "--opens")
        except DomainError as exc:
            fail(str(exc))
    new_id = with_app(ctx, lambda app: app.copy_drop(drop_id, opens_at))
    then = f"it opens at {opens_at}" if opens_at else f"open it with: dropcast drop open {new_id}"
    emit(
        {"id": new_id, "copy_of": drop_id},
        as_json,
        f"created drop {new_id}, a copy of drop {drop_id}; {then}",
    )


# ignore_unknown_options: "-3" reaches UNITS and gets a range message, not "No such option".
@drop.command("restock", context_settings={"ignore_unknown_options": True})
@click.argument("drop_id", type=int)
@click.argument("sku")
@click.argument("units", type=click.IntRange(1, 1_000_000))
@click.option("--pool", default="ship", show_default=True, help="ship or pickup:<location>")
@click.option("--new-pool", is_flag=True, help="Open POOL if the item does not have it yet.")
@click.pass_context
def drop_restock(
    ctx: click.Context, drop_id: int, sku: str, units: int, pool: str, new_pool: bool
) -> None:
    """Add units to one of the item's pools; the waitlist is served first."""
    offers = with_app(
        ctx,
        lambda app: app.commerce.drops.restock(drop_id, sku, units, pool, new_pool=new_pool),
    )
    click.echo(f"restocked {units} x {sku} ({pool}); {offers} offered to the waitlist")


@drop.command("price", context_settings={"ignore_unknown_options": True})
@click.argument("drop_id", type=int)
@click.argument("price")
@click.option("--sku", default=None, help="The item (needed when the drop sells several).")
@click.pass_context
def drop_price(ctx: click.Context, drop_id: int, price: str, sku: str | None) -> None:
    """Change what one claim costs from now on; refused while any hold is open."""
    money = with_app(ctx, lambda app: app.commerce.drops.set_price(drop_id, price, sku))
    what = f"{sku.upper()} in drop {drop_id}" if sku else f"drop {drop_id}"
    click.echo(f"{what} now costs {format_money(money, None)}; recorded as price_changed")


@drop.command("replay")
@click.argument("drop_id", type=int)
@click.argument("url", required=False)
@click.pass_context
def drop_replay(ctx: click.Context, drop_id: int, url: str | None) -> None:
    """Send the replay to subscribers and non-buyers who claimed: the drop's best clip
    (the sell-out first) with the drop page, and URL (your replay) when given. Without
    URL it needs a ready clip."""
    if url is not None:
        result = with_app(ctx, lambda app: app.commerce.drops.set_replay(drop_id, url))
        click.echo(f"drop {result.id}: replay set; reminders go out from the scheduler")
        return
    clip = with_app(ctx, lambda app: app.commerce.clips.post_replay(drop_id))
    click.echo(
        f"drop {drop_id}: replay is the {clip.reason.value} clip {clip.url}; "
        "reminders go out from the scheduler"
    )


@cli.group()
def template() -> None:
    """Recurring capsule drops (micro-subscriptions)."""


@template.command("add")
@click.argument("name")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--cron", required=True, help='Five fields in the creator\'s zone: "0 18 * * fri".')
@click.option("--tz", "timezone", default="UTC", show_default=True)
@click.option("--lead", default="24h", show_default=True, help="Create each drop this early.")
@click.pass_context
def template_add(
    ctx: click.Context, name: str, file: Path, cron: str, timezone: str, lead: str
) -> None:
    """Repeat a drop file on a schedule; each occurrence becomes one drop."""
    try:
        lead_time = parse_duration(lead, "--lead")
    except InvalidInput as exc:
        fail(str(exc))
    if not known_timezone(timezone):  # before the cron check, which needs a zone to run
        fail(f"--tz: {timezone!r} is not a time zone (an IANA name like Europe/Berlin or UTC)")
    problem = check_cron(cron, timezone) if len(cron.split()) == 5 else None
    if problem is not None:
        fail(f"--cron: {cron!r} is not a schedule: {problem}")
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
        load_drop_file(file)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        fail(f"drop file {file}: {exc}")
    except DomainError as exc:
        fail(f"drop file {file}: {exc}")
    made = with_app(
        ctx, lambda app: app.commerce.templates.add(name, raw, cron, timezone, lead_time)
    )
    click.echo(f"template {made.id} {made.name}: {made.cron} ({made.timezone})")


@cli.command()
@click.argument("drop_id", type=int)
@click.option("--viewers", type=click.IntRange(1, 20_000), default=1000, show_default=True)
@click.option("--arrival", type=click.Choice(["burst", "ramp"]), default="burst", show_default=True)
@click.option("--ramp-seconds", type=click.FloatRange(0.1, 600), default=10.0, show_default=True)
@click.option("--url", default=None, help="The running dropcast (default: web.public_url).")
@click.option(
    "--fresh",
    is_flag=True,
    help="Rehearse on a new copy of the drop, opened now (e.g. when the drop has closed).",
)
@click.option(
    "--chat",
    is_flag=True,
    help="Viewers type !buy in the studio chat: reports how fast each is answered and named.",
)
@click.option("--tabs", type=click.IntRange(1, 100), default=10, show_default=True)
@click.option(
    "--claims-only",
    is_flag=True,
    help="Viewers only open their links (no pay, no drop state read): the same surge against "
    "any server at --url, e.g. a bare aiohttp handler, to compare claim latencies.",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def rehearse(
    ctx: click.Context,
    drop_id: int,
    viewers: int,
    arrival: str,
    ramp_seconds: float,
    url: str | None,
    fresh: bool,
    chat: bool,
    tabs: int,
    claims_only: bool,
    as_json: bool,
) -> None:
    """Simulate a viewer surge on a live (staging) drop and check for oversell; with --chat,
    through the studio chat (`--tabs` WebSockets speak for the viewers). The report starts
    with the id of the drop rehearsed on (a new one with --fresh)."""
    if chat and claims_only:
        fail("--claims-only opens links; --chat types !buy: choose one")
    settings = settings_of(ctx)
    if settings.payments.provider != "test":
        fail(
            f"rehearse only runs where payments.provider = 'test' (it is "
            f"{settings.payments.provider!r}): it buys with fake money"
        )
    target = url or settings.web.base_url

    rehearsed = drop_id

    async def work(app: App) -> Rehearsal | ChatRehearsal:
        nonlocal rehearsed
        if fresh:
            rehearsed = await app.copy_drop(drop_id)
            await app.commerce.drops.open(rehearsed)
        drop = await app.commerce.drops.get(rehearsed)
        if drop.state is DropState.CLOSED:
            raise InvalidState(
                f"drop {drop_id} is closed; `dropcast rehearse {drop_id} --fresh` rehearses "
                f"on a new copy of it"
            )
        if drop.state is not DropState.LIVE:
            raise InvalidState(
                f"drop {drop_id} is {drop.state.value}; open it first "
                f"(`dropcast drop open {drop_id}`) or add --fresh to rehearse on a copy"
            )
        if chat:
            admin = settings.security.admin_token  # the creator rehearses: no viewer limits
            return await run_chat_rehearsal(
                viewers=viewers,
                arrival=arrival,
                url=target,
                ramp_seconds=ramp_seconds,
                tabs=tabs,
                admin_token=admin.get_secret_value() if admin else None,
            )
        return await run_rehearsal(
            app,
            rehearsed,
            viewers=viewers,
            arrival=arrival,
            url=target,
            ramp_seconds=ramp_seconds,
            claims_only=claims_only,
        )

    try:
        result = with_app(ctx, work)
    except RehearsalError as exc:
        fail(str(exc))
    except aiohttp.ClientError as exc:
        fail(f"cannot reach {target}: {exc}")
    summary = {"drop_id": rehearsed, **result.summary()}
    text = "\n".join(f"{key:<22} {value}" for key, value in summary.items())
    emit(summary, as_json, text)
    if isinstance(result, ChatRehearsal):
        if summary["answered"] < viewers or summary["links_in_public"]:
            sys.exit(1)
    elif summary["oversold"] or summary["holders_refused"]:
        sys.exit(1)


@cli.command()
@click.argument("drop_id", type=int)
@click.option("--customer", required=True, help="discord:<id>, twitch:<id> or web:<email>")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def link(ctx: click.Context, drop_id: int, customer: str, as_json: bool) -> None:
    """Print a personal one-click checkout URL for a customer."""
    url, expires_at = with_app(ctx, lambda app: app.issue_link(drop_id, customer))
    emit({"url": url, "expires_at": iso(expires_at)}, as_json, url)


# -- the order desk --------------------------------------------------------------------


def with_desk(
    ctx: click.Context, work: Callable[[OrderDesk], Awaitable[T]], *, reraise: bool = False
) -> T:
    """``with_app`` for the order desk (payment providers opened and closed with it)."""

    async def go(app: App) -> T:
        async with app.order_desk() as desk:
            return await work(desk)

    return with_app(ctx, go, reraise=reraise)


def amount_text(money: Money) -> str:
    """``17.00 USD``: exact and the same in every locale, as a bank statement shows it."""
    exponent = currency_exponent(money.currency)
    return f"{Decimal(money.amount_minor).scaleb(-exponent):.{exponent}f} {money.currency}"


def when_text(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "-"


def items_text(line: DeskLine) -> str:
    return ", ".join(f"{qty} x {sku}" for sku, qty in line.items)


def destination(order: Order) -> str:
    """Where the goods go: the pickup point, else the ship-to country."""
    if order.pool.startswith(PICKUP_PREFIX):
        return f"pickup {order.pool.removeprefix(PICKUP_PREFIX)}"
    return order.ship_to.country if order.ship_to else "-"


ORDER_COLUMNS: tuple[tuple[str, JustifyMethod], ...] = (
    ("order", "right"),
    ("drop", "right"),
    ("status", "left"),
    ("customer", "left"),
    ("items", "left"),
    ("total", "right"),
    ("to", "left"),
    ("when", "left"),
)


def orders_table(lines: list[DeskLine]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False)
    for name, justify in ORDER_COLUMNS:
        table.add_column(name, justify=justify)
    for line in lines:
        order = line.order
        table.add_row(
            str(order.id),
            str(order.drop_id),
            line.status.value,
            escape(line.customer),
            escape(items_text(line)),
            amount_text(order.amount),
            escape(destination(order)),
            when_text(order.paid_at or order.created_at),
        )
    return table


def render_order(line: DeskLine) -> str:
    order = line.order
    who = line.customer
    if who != f"customer {order.customer_id}":
        who = f"{who} (customer {order.customer_id})"
    amount = amount_text(order.amount)
    if order.shipping is not None:
        amount += (
            f" = items {amount_text(order.items_amount)} + shipping {amount_text(order.shipping)}"
        )
    rows = [
        ("customer", who),
        ("items", items_text(line)),
        ("amount", amount),
        ("provider", f"{order.provider} {order.provider_ref or ''}".strip()),
        ("ordered", when_text(order.created_at)),
    ]
    if order.paid_at:
        rows.append(("paid", when_text(order.paid_at)))
    if order.pool.startswith(PICKUP_PREFIX):
        point = order.pool.removeprefix(PICKUP_PREFIX)
        rows.append(("pickup", f"{point}, code {order.pickup_code or '-'}"))
    else:
        label = order.ship_to.lines() if order.ship_to else ["-"]
        rows.extend(("ship to" if i == 0 else "", text) for i, text in enumerate(label))
    if order.fulfilment is not None:
        done = f"{order.fulfilment.value.replace('_', ' ')} {when_text(order.fulfilled_at)}"
        if order.carrier:
            done += f", {order.carrier} {order.tracking}"
        rows.append(("fulfilment", done))
    if order.status in (OrderStatus.REFUNDED, OrderStatus.CANCELLED):
        rows.append(
            (order.status.value, f"{when_text(order.ended_at)}: {order.refund_reason or '-'}")
        )
    head = f"order {order.id}: {line.status.value} (drop {order.drop_id}, {line.drop_title})"
    return "\n".join([head, *(f"  {key:<11} {value}" for key, value in rows)])


STATUSES = [s.value for s in DeskStatus]


@cli.group(invoke_without_command=True)
@click.option("--drop", "drop_id", type=int, default=None, help="Only this drop's orders.")
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only orders in it.")
@click.option("--json", "as_json", is_flag=True, help="A list of objects, addresses included.")
@click.option(
    "--csv", "as_csv", is_flag=True, help="The packing list (order, name, address, SKU, qty, pool)."
)
@click.pass_context
def orders(
    ctx: click.Context, drop_id: int | None, status: str | None, as_json: bool, as_csv: bool
) -> None:
    """List orders, oldest first: a table, --json, or --csv (the packing list). --json and
    --csv carry buyers' addresses: keep them to yourself.

    \b
    dropcast orders --drop 3 --status paid --csv > packing.csv
    dropcast orders ship --csv carrier.csv     # mark a carrier's export shipped
    """
    if ctx.invoked_subcommand is not None:
        sub = ctx.invoked_subcommand
        if drop_id is not None or status is not None or as_json or as_csv:
            fail(
                f"--drop, --status, --json and --csv are for listing orders; the options of "
                f"`orders {sub}` go after `{sub}`"
            )
        return
    if as_json and as_csv:
        fail("--json or --csv, not both")
    wanted = DeskStatus(status) if status else None
    lines = with_desk(ctx, lambda desk: desk.lines(drop_id, wanted))
    if as_csv:
        click.echo(packing_csv(lines), nl=False)
    elif as_json:
        click.echo(json.dumps([line.as_json() for line in lines], indent=2))
    elif not lines:
        click.echo("no orders" + (" like that" if drop_id is not None or wanted else " yet"))
    else:
        console = Console(highlight=False, soft_wrap=False)
        if not console.is_terminal:
            console.width = max(console.width, 160)
        console.print(orders_table(lines))


@orders.command("ship")
@click.option(
    "--csv",
    "csv_file",
    type=click.File("r", encoding="utf-8"),
    required=True,
    help="The carrier's export: columns order, carrier, tracking (others ignored); - is stdin.",
)
@click.option("--json", "as_json", is_flag=True, help="shipped, unchanged, refused as JSON.")
@click.pass_context
def orders_ship(ctx: click.Context, csv_file: IO[str], as_json: bool) -> None:
    """Mark every order of a carrier's export shipped; each buyer gets their tracking. The
    same file again changes nothing. A bad file changes nothing (exit 2); rows refused
    (an unknown or refunded order) are listed and the others still ship (exit 1)."""
    name = getattr(csv_file, "name", "-")
    try:
        text = csv_file.read()
        parse_ship_csv(text)  # every row checked before the database is touched
    except UnicodeDecodeError:
        fail(f"--csv {name}: not UTF-8 text")
    except InvalidInput as exc:
        fail(f"--csv {name}: {exc.problem}")
    report = with_desk(ctx, lambda desk: desk.ship_csv(text))
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        click.echo(
            f"shipped {len(report.shipped)}, unchanged {len(report.unchanged)}, "
            f"refused {len(report.refused)}"
        )
        for number, order_id, problem in report.refused:
            click.echo(f"  line {number}, order {order_id}: {problem}")
    if report.refused:
        sys.exit(EXIT_FAILED)


@cli.group()
def order() -> None:
    """One order: show, refund, ship, picked-up (`dropcast orders` lists them)."""


@order.command("show")
@click.argument("order_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def order_show(ctx: click.Context, order_id: int, as_json: bool) -> None:
    """Everything about one order: items, amounts with shipping, the address or pickup
    code, fulfilment with carrier and tracking, the refund and its reason."""
    line = with_desk(ctx, lambda desk: desk.line(order_id))
    emit(line.as_json(), as_json, render_order(line))


@order.command("refund")
@click.argument("order_id", type=int)
@click.option(
    "--reason", default="requested", show_default=True, help="A few words, kept on the order."
)
@click.pass_context
def order_refund(ctx: click.Context, order_id: int, reason: str) -> None:
    """Give the money back through the order's payment provider (one refund, however often
    asked) and record it; a live drop's unit goes back on sale, its waitlist first. An order
    not paid yet is cancelled."""
    try:
        done, changed = with_desk(ctx, lambda desk: desk.refund(order_id, reason), reraise=True)
    except PaymentError as exc:
        fail(f"order {order_id}: the payment provider did not refund: {exc}", EXIT_FAILED)
    except DomainError as exc:
        fail(str(exc))
    amount = amount_text(done.amount)
    if not changed:
        click.echo(f"order {order_id} was already {done.status.value}")
    elif done.status is OrderStatus.CANCELLED:
        click.echo(f"cancelled order {order_id} (not paid yet: nothing to refund)")
    elif done.paid_at is None:
        click.echo(f"refunded order {order_id} ({amount}): reserved, never paid, no money moved")
    elif done.provider == "manual":
        click.echo(
            f"refunded order {order_id} ({amount}) in the records: it was paid by hand "
            "(manual), so hand the money back yourself"
        )
    else:
        click.echo(f"refunded order {order_id} ({amount}) through {done.provider}")


@order.command("ship")
@click.argument("order_id", type=int)
@click.option("--carrier", required=True, help="UPS, DHL, USPS …")
@click.option("--tracking", required=True, help="The carrier's tracking code.")
@click.pass_context
def order_ship(ctx: click.Context, order_id: int, carrier: str, tracking: str) -> None:
    """Mark a ship order shipped; the buyer gets the carrier and tracking code. The same
    again changes nothing; a corrected code replaces the old one (and the buyer hears it)."""
    shipped, changed = with_desk(ctx, lambda desk: desk.ship(order_id, carrier, tracking))
    sent = f"{shipped.carrier} {shipped.tracking}"
    if changed:
        click.echo(f"order {order_id} shipped: {sent}")
    else:
        click.echo(f"order {order_id} was already shipped: {sent}")


@order.command("picked-up")
@click.argument("order_id", type=int)
@click.option("--code", default=None, help="The pickup code the buyer shows (checked if given).")
@click.pass_context
def order_picked_up(ctx: click.Context, order_id: int, code: str | None) -> None:
    """The buyer collected a pickup order (one paid at the counter is paid now)."""
    _, changed = with_desk(ctx, lambda desk: desk.picked_up(order_id, code))
    click.echo(f"order {order_id} " + ("picked up" if changed else "was already picked up"))


@cli.group()
def customer() -> None:
    """Customers and the personal data kept about them."""


FORGET_WORDS = (
    ("identities", "identity", "identities"),
    ("display_names", "display name", "display names"),
    ("addresses", "shipping address", "shipping addresses"),
    ("subscriptions", "subscription", "subscriptions"),
    ("messages", "message address", "message addresses"),
    ("unsent_messages", "unsent message skipped", "unsent messages skipped"),
    ("waitlist_places", "waitlist place", "waitlist places"),
)


@customer.command("forget")
@click.argument("identity")
@click.option("--json", "as_json", is_flag=True, help="The counts as JSON.")
@click.pass_context
def customer_forget(ctx: click.Context, identity: str, as_json: bool) -> None:
    """Erase a person (discord:<id>, twitch:<id>, web:<email>) and every identity linked to
    it: identities, emails, display names, shipping addresses, subscriptions and message
    addresses. Their orders stay, with amounts and SKUs, for the books. Prints what was
    erased, counted, never the data itself."""
    erased = with_app(ctx, lambda app: app.commerce.customers.forget(identity))
    parts = [
        f"{erased[key]} {one if erased[key] == 1 else many}" for key, one, many in FORGET_WORDS
    ]
    records = erased["customers"]
    text = (
        f"forgotten ({records} customer record{'' if records == 1 else 's'}): erased "
        + ", ".join(parts)
        + "; their orders keep amounts and SKUs"
    )
    emit(erased, as_json, text)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(1)
    except click.ClickException as exc:
        # One line, not click's usage block: scripts and humans both read it.
        fail(exc.format_message().replace("\n", " "))
    except SystemExit:
        raise


@cli.command()
@click.argument("drop_id", type=int, required=False)
@click.option("--since", help="Compare the drops opened within a period: 30d, 12h, 90m, 2w.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (stable keys).")
@click.option(
    "--png",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Also draw the recap chart (1200×800 PNG) to this file.",
)
@click.pass_context
def report(
    ctx: click.Context, drop_id: int | None, since: str | None, as_json: bool, png: Path | None
) -> None:
    """KPIs of drop DROP_ID, leading with its objective; or compare drops with --since."""
    if (drop_id is None) == (since is None):
        fail("report: give a DROP_ID or --since PERIOD, not both")
    if since is not None:
        if png is not None:
            fail("report: --png draws one drop; give a DROP_ID instead of --since")
        try:
            period = parse_period(since)
        except InvalidInput as exc:
            fail(f"report: {exc}")
        rows = with_app(ctx, lambda app: app.commerce.analytics.compare(period))
        if as_json:
            click.echo(json.dumps({"since": since.strip(), "drops": to_json(rows)}, indent=2))
        else:
            wide_console().print(compare_table(rows, since.strip()))
        return
    assert drop_id is not None
    if png is not None and not png.parent.is_dir():
        fail(f"report: --png: directory {png.parent} does not exist")
    kpis = with_app(ctx, lambda app: app.commerce.analytics.kpis(drop_id))
    if png is not None:
        try:
            png.write_bytes(render_png(kpis))
        except OSError as exc:
            fail(f"report: --png: cannot write {png}: {exc.strerror}")
    if as_json:
        click.echo(json.dumps(kpi_json(kpis), indent=2))
        return
    print_kpis(wide_console(), kpis)
    if png is not None:
        click.echo(f"chart written to {png}")


@cli.command("pickup-link")
@click.argument("location")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def pickup_link(ctx: click.Context, location: str, as_json: bool) -> None:
    """Print a partner shop's own link to its pickup list: no admin rights, this location
    only, valid until the secret key changes."""
    from commerce.domain.model import PICKUP_PREFIX, validate_pool
    from commerce.web.api import pickup_url
    from commerce.web.context import PickupKeys

    try:
        validate_pool(PICKUP_PREFIX + location, "location")
    except DomainError as exc:
        fail(str(exc))
    settings = settings_of(ctx)

    async def work(app: App) -> str:
        configured = settings.security.secret_key  # else the key the server keeps, as it does
        secret = configured.get_secret_value() if configured else await app.commerce.secret_key()
        return pickup_url(settings.web.base_url, PickupKeys(secret), location)

    url = with_app(ctx, work)
    emit({"location": location, "url": url}, as_json, url)


@cli.group()
def webhook() -> None:
    """Signed outbound webhooks: dropcast POSTs each event you choose (a sale, a sell-out …)
    as JSON to your URL, signed with the endpoint's own secret."""


def _event_names(events: str) -> list[str]:
    return [name.strip() for name in events.split(",")]


@webhook.command("add")
@click.argument("url")
@click.option(
    "--events",
    required=True,
    help="Comma-separated, from: drop.opened, stock.low, drop.sold_out, order.paid, "
    "drop.closed, recap.ready.",
)
@click.option("--json", "as_json", is_flag=True, help='Print {"id", "secret", …}.')
@click.pass_context
def webhook_add(ctx: click.Context, url: str, events: str, as_json: bool) -> None:
    """Register URL for the given events; prints its signing secret, this once."""
    from commerce.services.webhooks import validate_events, validate_url

    try:  # bad input is refused before the database is touched
        validate_url(url)
        validate_events(_event_names(events))
    except DomainError as exc:
        fail(str(exc))
    created = with_app(ctx, lambda app: app.commerce.webhooks.add(url, _event_names(events)))
    data = {**created.endpoint.as_json(), "secret": created.secret}
    text = (
        f"added webhook {created.endpoint.id}: {created.endpoint.url}\n"
        f"  events  {', '.join(created.endpoint.events)}\n"
        f"  secret  {created.secret}\n"
        "Keep the secret: it is shown only now. Verify each request's Dropcast-Signature "
        "with it (README, Webhooks)."
    )
    emit(data, as_json, text)


@webhook.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def webhook_list(ctx: click.Context, as_json: bool) -> None:
    """List webhooks: status, events, deliveries per status, why one was disabled."""
    infos = with_app(ctx, lambda app: app.commerce.webhooks.endpoints())
    lines = []
    for info in infos:
        endpoint = info.endpoint
        counts = " ".join(f"{k} {v}" for k, v in sorted(info.deliveries.items())) or "none yet"
        lines.append(f"{endpoint.id:>4}  {endpoint.status:<8}  {endpoint.url}")
        lines.append(f"      events {', '.join(endpoint.events)}; deliveries: {counts}")
        if endpoint.disabled_reason:
            lines.append(f"      disabled: {endpoint.disabled_reason}")
    emit([i.as_json() for i in infos], as_json, "\n".join(lines) or "no webhooks yet")


@webhook.command("remove")
@click.argument("endpoint_id", type=int)
@click.pass_context
def webhook_remove(ctx: click.Context, endpoint_id: int) -> None:
    """Delete a webhook; nothing more is sent to it, queued deliveries included."""
    with_app(ctx, lambda app: app.commerce.webhooks.remove(endpoint_id))
    click.echo(f"removed webhook {endpoint_id}")


@webhook.command("enable")
@click.argument("endpoint_id", type=int)
@click.pass_context
def webhook_enable(ctx: click.Context, endpoint_id: int) -> None:
    """Turn a webhook that was disabled after repeated failures back on."""
    endpoint = with_app(ctx, lambda app: app.commerce.webhooks.enable(endpoint_id))
    click.echo(f"webhook {endpoint.id} is {endpoint.status}")


@webhook.command("test")
@click.argument("endpoint_id", type=int)
@click.option(
    "--wait",
    type=click.FloatRange(0, 120),
    default=10.0,
    show_default=True,
    help="Seconds to wait for the running server to send it.",
)
@click.pass_context
def webhook_test(ctx: click.Context, endpoint_id: int, wait: float) -> None:
    """Queue a sample `webhook.test` event to one webhook, sent by the running server
    (`dropcast run`) like any event: signed, retried. Prints how it went."""
    from commerce.domain.model import WebhookStatus
    from commerce.services.webhooks import WebhookDelivery

    async def work(app: App) -> WebhookDelivery:
        queued = await app.commerce.webhooks.queue_test(endpoint_id)
        deadline = asyncio.get_running_loop().time() + wait
        current: WebhookDelivery | None = queued
        while asyncio.get_running_loop().time() < deadline:
            current = await app.commerce.webhooks.delivery(queued.id)
            if current is None or current.status not in (
                WebhookStatus.PENDING,
                WebhookStatus.SENDING,
            ):
                break
            await asyncio.sleep(0.2)
        return current or queued

    delivery = with_app(ctx, work)
    answer = f"HTTP {delivery.last_status}" if delivery.last_status else delivery.last_error
    if delivery.status is WebhookStatus.SENT:
        click.echo(f"test {delivery.event_id} delivered to webhook {endpoint_id}: {answer}")
        return
    if delivery.status in (WebhookStatus.FAILED, WebhookStatus.DEAD):
        fail(f"test {delivery.event_id} refused by webhook {endpoint_id}: {answer}", EXIT_FAILED)
    tried = f"; last try: {answer}, retrying" if answer else ""
    fail(
        f"test {delivery.event_id} queued, not delivered within {wait:g} s{tried} "
        "(it is sent by the running `dropcast run`)",
        EXIT_FAILED,
    )
