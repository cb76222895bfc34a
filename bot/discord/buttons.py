"""Persistent drop buttons: the drop id lives in the ``custom_id``, so a click on a message
posted before a restart still reaches the running bot (no stored view needed)."""

from __future__ import annotations

import logging
import re
from typing import Any, Protocol, runtime_checkable

import discord

from bot.messages import Button
from bot.presenter import platforms as say

log = logging.getLogger(__name__)

_STYLE = {
    Button.BUY: discord.ButtonStyle.success,
    Button.WAITLIST: discord.ButtonStyle.secondary,
    Button.REMIND: discord.ButtonStyle.primary,
}


@runtime_checkable
class ButtonTarget(Protocol):
    """The client that acts on a click (the running :class:`bot.discord.DiscordBot`)."""

    async def on_drop_button(
        self, interaction: discord.Interaction[Any], action: Button, drop_id: int
    ) -> None: ...


class DropButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"dropcast:(?P<action>buy|waitlist|remind):(?P<drop_id>[0-9]{1,18})",
):
    """A Buy / Join waitlist / Remind me button: ``custom_id`` is ``dropcast:ACTION:DROP_ID``."""

    def __init__(self, action: Button, drop_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label=say.BUTTON_LABELS[action],
                style=_STYLE[action],
                custom_id=f"dropcast:{action.value}:{drop_id}",
            )
        )
        self.action = action
        self.drop_id = drop_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> DropButton:
        return cls(Button(match["action"]), int(match["drop_id"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        target = interaction.client
        if not isinstance(target, ButtonTarget):
            log.error("a drop button was clicked on a client that cannot handle it")
            return
        await target.on_drop_button(interaction, self.action, self.drop_id)
