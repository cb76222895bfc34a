"""``!remindme [drop|SKU]`` and ``!unsubscribe``: private reminders before drops and at
restocks, and the way out of them."""

from __future__ import annotations

from bot.commands.context import CommandContext
from bot.commands.spec import Arg, Call, CommandSpec
from bot.messages import Outbound
from bot.presenter import replies


async def remind(ctx: CommandContext, call: Call) -> Outbound:
    """!remindme: every drop; !remindme drop: the current one; !remindme SKU: restocks."""
    user, args = call.user, call.args
    customer = await ctx.commerce.customers.resolve(user.identity, user.name)
    if not args:
        scope, target, what = "creator", "*", "before every drop"
    elif args[0].lower() == "drop":
        drop = await ctx.drop()
        scope, target, what = "drop", str(drop.id), f"before {drop.title}"
    else:
        scope, target, what = "sku", args[0].upper(), f"when {args[0].upper()} is restocked"
    await ctx.commerce.subscriptions.subscribe(customer, scope, target)
    return Outbound(replies=[replies.subscribed(user.name, what, prefix=ctx.prefix)])


async def unsubscribe(ctx: CommandContext, call: Call) -> Outbound:
    customer = await ctx.commerce.customers.resolve(call.user.identity, call.user.name)
    ended = await ctx.commerce.subscriptions.unsubscribe(customer)
    return Outbound(replies=[replies.unsubscribed(ended)])


REMINDME = CommandSpec(
    "remindme",
    "Get a DM before drops (or restocks)",
    remind,
    args=(Arg("what", "drop|SKU", "'drop' for the current one, a SKU for its restocks"),),
)
UNSUBSCRIBE = CommandSpec(
    "unsubscribe",
    "Stop every reminder",
    unsubscribe,
    ignores_extra_words=True,
    in_private_chat=True,
)

COMMANDS = (REMINDME, UNSUBSCRIBE)
