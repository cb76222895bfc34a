"""``!drop [ID]``: the live or next drop's headline, detail and action in one line."""

from __future__ import annotations

from bot.commands.context import CommandContext
from bot.commands.spec import Arg, Call, CommandSpec
from bot.messages import Outbound


async def status(ctx: CommandContext, call: Call) -> Outbound:
    drop = await ctx.drop(call.args[0] if call.args else None)
    view = await ctx.commerce.drops.view(drop.id)
    locale = call.user.locale or ctx.locale
    return Outbound(replies=[ctx.presenter.status(view, locale=locale)])


STATUS = CommandSpec(
    "drop",
    "Status of the live or next drop",
    status,
    args=(Arg("drop", "ID", "A drop id (default: the live or next drop)", int),),
    listed="drop (status)",
    ignores_extra_words=True,
    public_answer=True,
)

COMMANDS = (STATUS,)
