"""What ``!buy`` and ``!waitlist`` share: who claims what (``[SKU] [POOL]``), the answer
about a hold, and the drop page for people a pay link cannot reach."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.commands.context import CommandContext
from bot.commands.spec import Call
from bot.messages import ChatUser, Message
from bot.presenter import replies
from commerce.domain.model import ClaimOutcome, ClaimResult, Drop, DropFormat

_POOL = re.compile(r"^(ship|pickup:[a-z0-9][a-z0-9-]{0,70})$")  # as the core names pools


def target(args: tuple[str, ...]) -> tuple[str | None, str | None]:
    """(sku, pool) from ``[SKU] [POOL]``, or from a lone POOL: ``!buy pickup:corner-deli``
    asks for that pool of the drop's one item (the core picks the only SKU, and refuses
    with the list of SKUs when there are several)."""
    if len(args) == 1 and _POOL.match(args[0].lower()):
        return None, args[0].lower()
    return (args[0] if args else None), (args[1] if len(args) > 1 else None)


def unit_word(drop: Drop) -> str:
    """What one claim takes, as ``DropView.unit_word`` says it, without reading the stock."""
    return "bundle" if drop.format is DropFormat.BUNDLE else "unit"


async def held(
    ctx: CommandContext,
    user: ChatUser,
    drop_id: int,
    result: ClaimResult,
    unit: str,
    *,
    instant: bool = False,
) -> Message:
    """The one private answer about a hold, with its holder's personal pay link."""
    assert result.hold is not None
    return replies.held(
        user.name,
        unit,
        already=result.outcome is ClaimOutcome.ALREADY_HELD,
        instant=instant,
        drop_id=drop_id,
        hold_id=result.hold.id,
        expires_at=result.hold.expires_at,
        personal_link=await ctx.issue_link(drop_id, user.identity),
        public_link=ctx.drop_page(drop_id),
    )


async def claim_elsewhere(
    ctx: CommandContext, user: ChatUser, drop_id: int, sku: str | None, pool: str | None
) -> Message | None:
    """For someone a personal link cannot reach privately: the drop page instead of a
    hold (or an offer) that would block a unit they can never pay for."""
    reachable = ctx.reachability.get(user.identity.split(":", 1)[0])
    if reachable is None or await reachable(user):
        return None
    await ctx.commerce.claims.validate(drop_id, sku=sku, pool=pool)  # bad input first
    return replies.claim_elsewhere(user.name, drop_id=drop_id, page=ctx.drop_page(drop_id))


@dataclass(frozen=True, slots=True)
class Claimant:
    """Who asks for what: the drop, the target and the customer behind the chat user."""

    drop: Drop
    sku: str | None
    pool: str | None
    customer_id: int


async def claimant(ctx: CommandContext, call: Call) -> Claimant | Message:
    """The claimant of a ``!buy`` or ``!waitlist``; or, for someone a pay link cannot reach,
    the answer sending them to the drop page (checked before anything is held)."""
    drop = await ctx.drop()
    sku, pool = target(call.args)
    elsewhere = await claim_elsewhere(ctx, call.user, drop.id, sku, pool)
    if elsewhere is not None:
        return elsewhere
    customer = await ctx.commerce.customers.resolve(call.user.identity, call.user.name)
    return Claimant(drop, sku, pool, customer)
