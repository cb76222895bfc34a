"""``!stock``: what is left in the current drop, per item and pool."""

from __future__ import annotations

from bot.commands.context import CommandContext
from bot.commands.spec import Call, CommandSpec
from bot.messages import Outbound


async def stock(ctx: CommandContext, call: Call) -> Outbound:
    # As with !drop, a drop id may follow in chat ("!stock 3"); the help does not list it.
    drop = await ctx.drop(call.args[0] if call.args else None)
    view = await ctx.commerce.drops.view(drop.id)
    return Outbound(replies=[ctx.presenter.stock(view, call.user.locale or ctx.locale)])


STOCK = CommandSpec(
    "stock",
    "What is left in the current drop",
    stock,
    ignores_extra_words=True,
    public_answer=True,
)

COMMANDS = (STOCK,)
