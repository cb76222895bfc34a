"""The Discord bot: slash commands and drop buttons in, the shared command handler, and
answers that never show a personal link to anyone but its owner."""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any, Protocol

import aiohttp
import discord
import yarl
from aiohttp import web
from discord import app_commands

from bot.commands import Command, CommandHandler, current_drop
from bot.discord import render
from bot.discord.buttons import DropButton
from bot.discord.outlet import DiscordOutlet, Edit
from bot.discord.pacing import discord_limiter, paced
from bot.discord.slash import Interaction, slash_commands
from bot.hub import ChatHub
from bot.messages import Button, ChatUser, Message, Outbound
from bot.presenter import platforms as say
from bot.ratelimit import RateLimiter
from commerce.services.arrivals import Arrival
from config.settings import DiscordSettings

log = logging.getLogger(__name__)


class LinkCodes(Protocol):
    def issue_link_code(self, identity: str) -> str: ...


COMMAND_GRACE = 5.0  # at close, how long commands being run may take to finish
# Discord wants a first response to an interaction within 3 s. A command decided within
# ANSWER_WAIT is answered with its result at once; a slower one is deferred ("thinking")
# and followed up. Interaction responses and follow-ups are bound to the interaction's
# token, not to the bot's global rate limit: they never wait behind posts and DMs in our
# limiter, and discord.py obeys the per-route limits their headers state.
ANSWER_WAIT = 0.5
ACK_WINDOW = 3.0
ACK_MARGIN = 1.0  # the deferral's own trip to Discord, on a busy event loop
CONNECTIONS = 64  # REST connections to Discord kept open at most


def use_endpoints(settings: DiscordSettings) -> None:
    """Point discord.py (process-wide class attributes) at the configured REST base and
    gateway, so the real client can run against a local fake or a proxy."""
    discord.http.Route.BASE = str(settings.api_base).rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.gateway_url)


def minimal_intents() -> discord.Intents:
    # GUILDS only: interactions arrive without any intent, and the guild/role cache is
    # what the creator check needs. Nothing privileged.
    intents = discord.Intents.none()
    intents.guilds = True
    return intents


class DiscordBot(discord.Client):
    """Built by the composition root from settings, the shared handler and the hub;
    ``await start()`` logs in and connects in the background, ``await close()`` stops."""

    def __init__(
        self,
        settings: DiscordSettings,
        handler: CommandHandler,
        hub: ChatHub,
        *,
        limiter: RateLimiter | None = None,
        linker: LinkCodes | None = None,
        **options: Any,
    ) -> None:
        super().__init__(intents=minimal_intents(), **options)
        self.settings = settings
        self.linker = linker
        self.handler = handler
        self.limiter = limiter or discord_limiter()
        self.tree: app_commands.CommandTree[DiscordBot] = app_commands.CommandTree(self)
        for command in slash_commands(self, handler.commands):
            self.tree.add_command(command)
        self.tree.error(self._on_command_error)
        self.outlet = DiscordOutlet(self, settings.channel_id, self.limiter, prefix=handler.prefix)
        hub.add_outlet(self.outlet)
        self.commands_synced = asyncio.Event()
        self._creator_roles = frozenset(settings.creator_role_ids)
        self._allowed_users = frozenset(settings.allowed_user_ids)
        self._gateway: asyncio.Task[None] | None = None
        # discord.py runs each interaction in a task it keeps no handle on; run_command keeps
        # one, so that close() can wait for commands that may be mid-claim in the database.
        self._commands: set[asyncio.Task[Any]] = set()

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, token: str | None = None, *, reconnect: bool = True) -> None:
        """Log in (a bad token fails here) and keep the gateway connected in the
        background; unlike ``discord.Client.start`` this returns once logged in."""
        secret = token or (self.settings.token.get_secret_value() if self.settings.token else "")
        if not secret:
            raise ValueError("discord.token is not set")
        use_endpoints(self.settings)
        if self.http.connector is discord.utils.MISSING or self.http.connector.closed:
            # discord.py's default has no limit: a surge of answers would open a connection
            # (a TLS handshake) for each. A bounded pool keeps reusing warm ones.
            self.http.connector = aiohttp.TCPConnector(limit=CONNECTIONS)
        await self.login(secret)
        self._gateway = asyncio.create_task(self.connect(reconnect=reconnect), name="discord")
        self._gateway.add_done_callback(_log_gateway_end)

    async def close(self) -> None:
        """Let commands being run finish (for a few seconds), disconnect, and wait for the
        gateway task: when this returns, nothing this bot started is still running."""
        await self._end_commands(COMMAND_GRACE)
        await super().close()
        await self._end_commands(0)
        gateway, self._gateway = self._gateway, None
        if gateway is not None and gateway is not asyncio.current_task():
            await asyncio.gather(gateway, return_exceptions=True)

    async def _end_commands(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for the commands being run, then cancel the rest and
        wait until they have ended."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self._commands and (remaining := deadline - loop.time()) > 0:
            await asyncio.wait(set(self._commands), timeout=remaining)
        late = set(self._commands)
        if late:
            log.warning("discord: %d commands still running at shutdown; cancelled", len(late))
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def reachable(self, user: ChatUser) -> bool:
        return True  # an interaction's answer can always be ephemeral (only they see it)

    def routes(self) -> list[web.RouteDef]:
        return []  # everything happens on Discord

    async def setup_hook(self) -> None:
        self.add_dynamic_items(DropButton)

    async def on_ready(self) -> None:
        if not self.commands_synced.is_set():  # on_ready repeats after every re-IDENTIFY
            await self.sync_commands()
            self.commands_synced.set()

    async def sync_commands(self) -> None:
        """Register the slash commands in the configured guilds (instant), else globally
        (Discord may take a while to show those). A failure is logged, not fatal."""
        guilds: list[discord.Object | None] = [discord.Object(g) for g in self.settings.guild_ids]
        for guild in guilds or [None]:
            if guild is not None:
                self.tree.copy_global_to(guild=guild)
            try:
                await paced(self.limiter, None, partial(self.tree.sync, guild=guild))
            except discord.HTTPException as exc:
                where = f"guild {guild.id}" if guild else "globally"
                log.error("could not register the slash commands %s: %s", where, exc)

    # -- who is asking --------------------------------------------------------------------

    def is_creator(self, interaction: Interaction) -> bool:
        """Manage Server, a configured creator role, or an allow-listed user id."""
        user = interaction.user
        if user.id in self._allowed_users:
            return True
        if not isinstance(user, discord.Member):
            return False
        permissions = interaction.permissions
        if permissions.administrator or permissions.manage_guild:
            return True
        return any(role.id in self._creator_roles for role in user.roles)

    def chat_user(self, interaction: Interaction) -> ChatUser:
        user = interaction.user
        return ChatUser(
            f"discord:{user.id}",
            user.display_name,
            self.is_creator(interaction),
            locale=str(interaction.locale),  # the client's language, e.g. "en-US", "de"
        )

    # -- interactions ---------------------------------------------------------------------

    async def run_command(
        self,
        interaction: Interaction,
        command: Command,
        *,
        ephemeral: bool,
        drop_id: int | None = None,
    ) -> None:
        """Run the command and answer within Discord's 3 s: with the result when it is
        decided fast, else a deferral and a follow-up. ``drop_id``: a button's drop, which
        must still be the current one."""
        task = asyncio.current_task()
        assert task is not None  # discord.py runs every interaction in a task
        self._commands.add(task)
        try:
            await self._run_command(interaction, command, ephemeral=ephemeral, drop_id=drop_id)
        finally:
            self._commands.discard(task)

    async def _run_command(
        self,
        interaction: Interaction,
        command: Command,
        *,
        ephemeral: bool,
        drop_id: int | None,
    ) -> None:
        user = self.chat_user(interaction)
        # A claim's place in line is the click's moment: taken before anything is awaited
        # (starting the task, the stale-button check), so a claim that came in after it on
        # another platform cannot go first.
        arrival = self.handler.place_in_line(command)
        outcome = asyncio.ensure_future(self._outcome(user, interaction, command, drop_id, arrival))
        try:
            decided, _ = await asyncio.wait({outcome}, timeout=answer_wait(interaction))
            if not decided:
                # thinking=True: for a button click, answer with a new message (the
                # "thinking" placeholder), not a silent acknowledgement that would edit
                # the clicked one.
                await interaction.response.defer(ephemeral=ephemeral, thinking=True)
            await self._answer(interaction, await outcome, ephemeral=ephemeral)
        except Exception:
            log.exception("discord /%s failed", command.name)
            await self._apologize(interaction)
        finally:
            if not outcome.done():  # this command was cancelled (shutdown): so is its work
                outcome.cancel()
                await asyncio.gather(outcome, return_exceptions=True)
            if arrival is not None:
                arrival.leave()  # (if the claim never ran) it holds no one up

    async def _outcome(
        self,
        user: ChatUser,
        interaction: Interaction,
        command: Command,
        drop_id: int | None,
        arrival: Arrival | None,
    ) -> Outbound:
        if drop_id is not None and not await self._is_current(drop_id):
            if arrival is not None:
                arrival.leave()
            return Outbound(replies=[Message(say.STALE_BUTTON, kind="error")])
        return await self.handler.execute(
            user, command, message_id=str(interaction.id), arrival=arrival
        )

    async def refuse(self, interaction: Interaction, text: str) -> None:
        await interaction.response.send_message(text, ephemeral=True)

    async def on_drop_button(self, interaction: Interaction, action: Button, drop_id: int) -> None:
        """A click on an announcement's Buy / Join waitlist / Remind me button."""
        if action is Button.REMIND:
            command = Command("remindme", ("drop",))
        else:
            command = Command(action.value)
        await self.run_command(interaction, command, ephemeral=True, drop_id=drop_id)

    async def link_code(self, interaction: Interaction) -> None:
        """/link: a one-time code, shown only to this person, to type in Twitch chat. This
        direction is the safe one: a code posted in public chat could be redeemed by anyone."""
        if self.linker is None:
            await self.refuse(interaction, say.LINKING_OFF)
            return
        code = self.linker.issue_link_code(f"discord:{interaction.user.id}")
        await self.refuse(interaction, say.link_code_issued(code))

    async def _is_current(self, drop_id: int) -> bool:
        drop = await current_drop(self.handler.commerce)
        return drop is not None and drop.id == drop_id

    async def _answer(self, interaction: Interaction, out: Outbound, *, ephemeral: bool) -> None:
        """Send ``out``: the first reply as the interaction's response, or, after a deferral
        (``ephemeral``: its visibility), in place of the "thinking" placeholder."""
        deferred = interaction.response.is_done()
        first = True
        for message in out.replies:
            hidden = ephemeral or message.private or message.personal_link is not None
            shown = render.reply(message, private=hidden, prefix=self.handler.prefix)
            edit: Edit
            if first and not deferred:
                await interaction.response.send_message(
                    shown.content, embeds=shown.embeds, view=shown.view, ephemeral=hidden
                )
                edit = interaction.edit_original_response
            else:
                if first and hidden and not ephemeral:
                    # Discord quirk: the first answer after a defer takes over the
                    # "thinking" placeholder and keeps its visibility whatever flags it asks
                    # for. Settle the public placeholder with a neutral note; later
                    # follow-ups honour their own ephemeral flag. Deleting it instead is no
                    # way out: follow-ups to a deleted placeholder fail with 10008
                    # (discord/discord-api-docs#3087).
                    await interaction.edit_original_response(content=say.SENT_PRIVATELY)
                sent = await interaction.followup.send(
                    shown.content,
                    embeds=shown.embeds,
                    view=shown.view,
                    ephemeral=hidden,
                    wait=True,
                )
                edit = sent.edit
            if hidden:  # its pay link becomes "paid" once paid (within the token's 15 min)
                self.outlet.remember_private(message, edit)
            first = False
        if first:  # nothing to say: acknowledge, and take the placeholder away
            if not deferred:
                await interaction.response.defer(ephemeral=True, thinking=True)
            await interaction.delete_original_response()
        for post in out.posts:
            await self.outlet.post(post)

    async def _apologize(self, interaction: Interaction) -> None:
        try:
            if interaction.response.is_done():
                await interaction.followup.send(say.FAILED, ephemeral=True)
            else:
                await interaction.response.send_message(say.FAILED, ephemeral=True)
        except discord.HTTPException:
            log.warning("could not tell a discord user that their command failed")

    async def _on_command_error(
        self, interaction: Interaction, error: app_commands.AppCommandError
    ) -> None:
        log.error("discord slash command failed", exc_info=error)
        await self._apologize(interaction)


def answer_wait(interaction: Interaction) -> float:
    """How long a command may run before its answer must be deferred: up to ANSWER_WAIT,
    and never so long that the deferral could miss Discord's window (a clock that is off
    only makes us defer sooner)."""
    age = (discord.utils.utcnow() - interaction.created_at).total_seconds()
    return max(0.0, min(ANSWER_WAIT, ACK_WINDOW - ACK_MARGIN - age))


def _log_gateway_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the discord gateway connection ended", exc_info=task.exception())
