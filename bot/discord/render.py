"""Neutral :class:`bot.messages.Message` → what Discord shows: text with native timestamps,
an embed, and components (drop buttons, link buttons).

The personal link is rendered only when the caller says the message goes privately.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import discord

from bot.commands import COMMANDS
from bot.discord.buttons import DropButton
from bot.messages import Message
from bot.presenter import platforms as say

_COLOURS = {
    "announcement": discord.Colour.blurple(),
    "countdown": discord.Colour.blurple(),
    "live": discord.Colour.green(),
    "tick": discord.Colour.green(),
    "restocked": discord.Colour.green(),
    "sold_out": discord.Colour.red(),
    "closed": discord.Colour.dark_grey(),
    "error": discord.Colour.red(),
}


# Chat commands that are slash commands of the same name here (``bot.discord.slash``).
SLASH_COMMANDS = tuple(spec.word for spec in COMMANDS if spec.group is None)


@dataclass(frozen=True, slots=True)
class Rendered:
    content: str
    embeds: list[discord.Embed]
    view: discord.ui.View  # possibly empty: an edit with it clears old buttons


def timestamp(at: datetime) -> str:
    """Discord renders ``<t:…>`` in each viewer's own zone and keeps ``:R`` ticking."""
    epoch = int((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp())
    return f"<t:{epoch}:t> (<t:{epoch}:R>)"


def text(message: Message, prefix: str = "!") -> str:
    """The message text with ``{at}`` filled in and chat command hints (``!buy``) turned
    into the slash commands that exist here (the bot cannot read ``!`` lines on Discord)."""
    body = message.text.replace("{at}", timestamp(message.at) if message.at else "soon")
    hint = re.compile(rf"(?<![\w/]){re.escape(prefix)}({'|'.join(SLASH_COMMANDS)})\b")
    return hint.sub(r"/\1", body)


def components(message: Message, *, private: bool) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    if message.drop_id is not None:
        for button in message.buttons:
            view.add_item(DropButton(button, message.drop_id))
    if private and message.personal_link:
        view.add_item(discord.ui.Button(label=say.PAY_NOW, url=message.personal_link))
    if message.public_link:
        view.add_item(discord.ui.Button(label=say.DROP_PAGE, url=message.public_link))
    return view


def embed(message: Message, description: str | None) -> discord.Embed:
    card = discord.Embed(
        title=message.title,
        description=description,
        url=message.public_link if message.title else None,
        colour=_COLOURS.get(message.kind, discord.Colour.blurple()),
    )
    for name, value in message.fields:
        card.add_field(name=name, value=value, inline=True)
    return card


def channel_post(message: Message, prefix: str = "!") -> Rendered:
    """A public post (or an edit of one): everything in one embed; never a personal link."""
    card = embed(message, text(message, prefix))
    return Rendered("", [card], components(message, private=False))


def reply(message: Message, *, private: bool, prefix: str = "!") -> Rendered:
    """An interaction answer or DM: plain text, an embed only for titled or fielded messages."""
    cards = [embed(message, None)] if message.title or message.fields else []
    return Rendered(text(message, prefix), cards, components(message, private=private))
