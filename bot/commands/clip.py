"""``!clip [ID]``: the creator clips the stream now; the clip is kept with the drop (the
live or next one, or drop ID) for its replay. Only a platform that can clip its stream
(Twitch, with the ``clips:edit`` scope) makes one; the answer comes at once, the clip
a few seconds later."""

from __future__ import annotations

from bot.commands.context import CommandContext
from bot.commands.errors import CommandError
from bot.commands.spec import Arg, Call, CommandSpec, Role
from bot.messages import Outbound
from bot.presenter import replies
from commerce.domain.model import ClipReason


async def clip(ctx: CommandContext, call: Call) -> Outbound:
    drop = await ctx.drop(call.args[0] if call.args else None)
    if not ctx.clippers:
        raise CommandError(replies.NO_CLIPS)
    started = [c.clip(drop.id, ClipReason.COMMAND) for c in list(ctx.clippers.values())]
    if not any(started):
        raise CommandError(replies.CLIPS_OFF)
    return Outbound(replies=[replies.clipping(drop.id)])


CLIP = CommandSpec(
    "clip",
    "Clip the stream now and keep the clip with the drop for its replay",
    clip,
    args=(Arg("drop", "ID", "A drop id (default: the live or next drop)", int),),
    role=Role.CREATOR,
)

COMMANDS = (CLIP,)
