"""The hub's view of Discord: embeds in the drop channel, edits of the live one, DMs."""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import aiohttp
import discord

from bot.discord import render
from bot.discord.pacing import paced
from bot.messages import Message
from bot.private import PrivateTrail
from bot.ratelimit import RateLimiter

log = logging.getLogger(__name__)

CANNOT_DM = 50007  # "Cannot send messages to this user": DMs closed or the bot blocked
_NETWORK_ERRORS = (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError)
Edit = Callable[..., Awaitable[Any]]  # a sent message's own ``edit``


class DiscordOutlet:
    """Posts and edits go to ``channel_id``; private messages open a DM. A user whose DMs
    are closed is remembered and never tried again by this process."""

    platform = "discord"

    def __init__(
        self,
        client: discord.Client,
        channel_id: int | None,
        limiter: RateLimiter,
        *,
        prefix: str = "!",
    ) -> None:
        self.client = client
        self.channel_id = channel_id
        self.limiter = limiter
        self.prefix = prefix  # the chat prefix in shared texts, shown here as slash commands
        self.unreachable: set[int] = set()
        # Pay links sent privately (DMs, ephemeral follow-ups), by hold: (bucket, edit).
        self.private: PrivateTrail[tuple[str | None, Edit]] = PrivateTrail()
        if channel_id is None:
            log.warning("discord.channel_id is not set: drops will not be announced on Discord")

    async def post(self, message: Message) -> str | None:
        if self.channel_id is None:
            return None
        channel = self.client.get_partial_messageable(self.channel_id)
        shown = render.channel_post(message, self.prefix)
        files = []
        if message.image is not None and shown.embeds:
            files.append(discord.File(io.BytesIO(message.image), filename="recap.png"))
            shown.embeds[0].set_image(url="attachment://recap.png")
        # Creating and editing messages are separate Discord routes with separate buckets.
        sent = await paced(
            self.limiter,
            f"post:{self.channel_id}",
            partial(channel.send, embeds=shown.embeds, view=shown.view, files=files),
        )
        return str(sent.id)

    async def edit(self, handle: str, message: Message) -> None:
        if self.channel_id is None:
            return
        channel = self.client.get_partial_messageable(self.channel_id)
        target = channel.get_partial_message(int(handle))
        shown = render.channel_post(message, self.prefix)
        await paced(
            self.limiter,
            f"edit:{self.channel_id}",
            partial(target.edit, embeds=shown.embeds, view=shown.view),
        )

    def remember_private(self, message: Message, edit: Edit, bucket: str | None = None) -> None:
        """Note a private message sent about a hold, so that ``edit_private`` can turn it
        into "paid". ``bucket``: a DM's channel bucket; None for an interaction's own
        message (the client's ephemeral answer), whose edits go by the interaction token,
        outside the bot's global rate limit."""
        if message.hold_id is not None and message.personal_link is not None:
            self.private.add(message.hold_id, (bucket, edit))

    async def edit_private(self, hold_id: int, message: Message) -> None:
        """Edit every private message that carried ``hold_id``'s pay link. An ephemeral
        answer can be edited only while its interaction token lives (15 minutes)."""
        shown = render.reply(message, private=True, prefix=self.prefix)
        for bucket, edit in self.private.pop(hold_id):
            call = partial(edit, content=shown.content, embeds=shown.embeds, view=shown.view)
            try:
                if bucket is None:
                    await call()
                else:
                    await paced(self.limiter, bucket, call)
            except _NETWORK_ERRORS as exc:
                log.info("could not mark a private discord message paid: %s", exc)

    async def send_private(self, identity: str, message: Message, key: str | None = None) -> bool:
        """DM ``identity``. False: this person cannot be DMed (50007, remembered). Transient
        failures raise, so the caller retries; ``key`` becomes the message nonce, which
        Discord (enforce_nonce) uses to drop a resend of the same notification."""
        platform, _, raw_id = identity.partition(":")
        if platform != self.platform or not raw_id.isdigit():
            return False
        user_id = int(raw_id)
        if user_id in self.unreachable:
            return False
        shown = render.reply(message, private=True, prefix=self.prefix)
        try:
            dm = await paced(
                self.limiter, None, partial(self.client.create_dm, discord.Object(user_id))
            )
            sent = await paced(
                self.limiter,
                f"post:{dm.id}",
                partial(
                    dm.send,
                    shown.content,
                    embeds=shown.embeds,
                    view=shown.view,
                    nonce=_nonce(key) if key else None,
                ),
            )
        except discord.Forbidden as exc:
            if exc.code == CANNOT_DM:
                self.unreachable.add(user_id)
                log.info("discord user %s does not accept DMs; not trying again", user_id)
            else:
                log.warning("DM to discord user %s refused: %s", user_id, exc)
            return False
        except _NETWORK_ERRORS as exc:
            log.warning("DM to discord user %s failed, will retry: %s", user_id, exc)
            raise
        self.remember_private(message, sent.edit, f"edit:{dm.id}")
        return True


def _nonce(key: str) -> str:
    # Discord nonces are at most 25 characters; a digest keeps any dedupe key inside that.
    return hashlib.blake2b(key.encode(), digest_size=12).hexdigest()
