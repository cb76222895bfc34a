"""``!drop start|close ID``, ``!drop restock ID SKU N [POOL]``, ``!drop new NAME``: the
creator and mods steer drops from chat (``/dropadmin …`` on Discord)."""

from __future__ import annotations

import re

from bot.commands.context import CommandContext
from bot.commands.errors import CommandError, number
from bot.commands.spec import Arg, Call, CommandSpec, Group, Role
from bot.messages import Outbound
from bot.presenter import replies
from commerce.domain.errors import DomainError
from commerce.dropfile import load_drop_file

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

DROP_ADMIN = Group("drop", "dropadmin", "Creator and mod controls for drops")
_DROP_ID = Arg("drop", "ID", "The drop id", int, required=True)


async def start(ctx: CommandContext, call: Call) -> Outbound:
    drop = await ctx.commerce.drops.open(number(call.args[0], "The drop id"))
    return Outbound(replies=[replies.drop_live(drop.id)])


async def close(ctx: CommandContext, call: Call) -> Outbound:
    drop = await ctx.commerce.drops.close(number(call.args[0], "The drop id"))
    return Outbound(replies=[replies.drop_closed(drop.id)])


async def restock(ctx: CommandContext, call: Call) -> Outbound:
    args = call.args
    drop_id = number(args[0], "The drop id")
    units = number(args[2], "The number of units")
    pool = args[3] if len(args) == 4 else None
    offered = await ctx.commerce.drops.restock(drop_id, args[1], units, pool)
    return Outbound(replies=[replies.restocked(units, args[1], offered)])


async def new(ctx: CommandContext, call: Call) -> Outbound:
    (name,) = call.args
    if not _NAME.match(name):
        raise CommandError(replies.BAD_DROP_NAME)
    path = ctx.drops_dir / f"{name}.toml"
    if not path.is_file():
        raise CommandError(replies.no_prepared_drop(name))
    try:
        spec = load_drop_file(path)
    except DomainError as exc:
        raise CommandError(replies.bad_drop_file(name, exc)) from None
    drop_id = await ctx.commerce.drops.create(spec)
    return Outbound(replies=[replies.drop_created(drop_id, name)])


START = CommandSpec(
    "start",
    "Open a drop now",
    start,
    args=(_DROP_ID,),
    aliases=("open",),
    role=Role.CREATOR,
    group=DROP_ADMIN,
)
CLOSE = CommandSpec(
    "close", "Close a drop now", close, args=(_DROP_ID,), role=Role.CREATOR, group=DROP_ADMIN
)
RESTOCK = CommandSpec(
    "restock",
    "Add units to a drop (the waitlist is served first)",
    restock,
    args=(
        _DROP_ID,
        Arg("sku", "SKU", "Product SKU", required=True),
        Arg("units", "N", "Units to add", int, required=True),
        Arg("pool", "POOL", "Pool"),
    ),
    role=Role.CREATOR,
    group=DROP_ADMIN,
)
NEW = CommandSpec(
    "new",
    "Schedule a prepared drop from the drops folder",
    new,
    args=(Arg("name", "NAME", "The drop file's name, without .toml", required=True),),
    role=Role.CREATOR,
    group=DROP_ADMIN,
)

COMMANDS = (START, CLOSE, RESTOCK, NEW)
