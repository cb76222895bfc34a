"""``!waitlist [SKU] [POOL]``: be next in line when a unit frees up (or hold one at once
when one is free)."""

from __future__ import annotations

from bot.commands.claiming import Claimant, claimant, held, unit_word
from bot.commands.context import CommandContext
from bot.commands.errors import CommandError
from bot.commands.spec import Arg, Call, CommandSpec
from bot.messages import Outbound
from bot.presenter import replies
from commerce.domain.model import ClaimOutcome


async def waitlist(ctx: CommandContext, call: Call) -> Outbound:
    with call.place_in_line(ctx) as arrival:  # its place in line: see ``buy``
        user, who = call.user, await claimant(ctx, call)
        if not isinstance(who, Claimant):
            return Outbound(replies=[who])
        drop = who.drop
        # With a unit free, joining holds it at once: this reply is the one answer (the
        # core announces no waitlist offer for the joiner's own instant hold).
        result = await ctx.commerce.claims.join_waitlist(
            drop.id, who.customer_id, sku=who.sku, pool=who.pool, arrival=arrival
        )
    unit = unit_word(drop)
    if result.ok and result.hold is not None:
        return Outbound(replies=[await held(ctx, user, drop.id, result, unit, instant=True)])
    if result.outcome is ClaimOutcome.CLOSED:
        raise CommandError(replies.DROP_CLOSED)
    if result.outcome is ClaimOutcome.LIMIT_REACHED:
        raise CommandError(replies.waitlist_full_for(user.name))
    position = replies.in_line(user.name, result.waitlist_position, unit=unit, drop_id=drop.id)
    return Outbound(replies=[position])


WAITLIST = CommandSpec(
    "waitlist",
    "Be next in line when a unit frees up",
    waitlist,
    in_line=True,
    args=(Arg("sku", "SKU", "Which product"), Arg("pool", "POOL", "ship or pickup")),
    listed="waitlist",
)

COMMANDS = (WAITLIST,)
