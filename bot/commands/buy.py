"""``!buy [SKU] [POOL]``: claim a unit; the answer carries a private pay link."""

from __future__ import annotations

from bot.commands.claiming import Claimant, claimant, held, unit_word
from bot.commands.context import CommandContext
from bot.commands.spec import Arg, Call, CommandSpec
from bot.messages import Outbound
from bot.presenter import replies


async def buy(ctx: CommandContext, call: Call) -> Outbound:
    # Its place in line is taken as the command starts: finding the drop and the customer
    # takes longer for some (a first-time buyer) and must not let a later line go first.
    with call.place_in_line(ctx) as arrival:
        user, who = call.user, await claimant(ctx, call)
        if not isinstance(who, Claimant):
            return Outbound(replies=[who])
        drop, platform = who.drop, user.identity.split(":", 1)[0]
        result = await ctx.commerce.claims.claim(
            drop.id,
            who.customer_id,
            sku=who.sku,
            pool=who.pool,
            source=platform,
            claim_key=f"chat:{platform}:{call.message_id}",
            arrival=arrival,
        )
    unit = unit_word(drop)
    if result.ok and result.hold is not None:
        return Outbound(replies=[await held(ctx, user, drop.id, result, unit)])
    answer = replies.not_held(
        user.name,
        result.outcome,
        unit=unit,
        drop_id=drop.id,
        opens_at=result.opens_at,
        public_link=ctx.drop_page(drop.id),
        prefix=ctx.prefix,
    )
    return Outbound(replies=[answer])


BUY = CommandSpec(
    "buy",
    "Claim a unit; you get a private pay link",
    buy,
    in_line=True,
    args=(
        Arg("sku", "SKU", "Which product (default: the drop's only one)"),
        Arg("pool", "POOL", "ship or pickup"),
    ),
)

COMMANDS = (BUY,)
