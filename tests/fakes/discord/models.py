"""World model of the fake Discord: users, guilds, roles, channels, members.

Payload builders live next to the dataclasses so that every JSON object the fake
emits has the same shape wherever it appears (REST answer, gateway dispatch,
interaction payload).
"""

from __future__ import annotations

import datetime as _dt
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

Json = dict[str, Any]

DISCORD_EPOCH_MS = 1_420_070_400_000


class HasId(Protocol):
    @property
    def id(self) -> int: ...


def as_id(value: int | str | HasId) -> int:
    """Accept a snowflake, its string form, or any object with an ``id``."""
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return int(value)
    return int(value.id)


class SnowflakeGenerator:
    """Real-looking snowflakes (timestamp << 22 | worker | process | increment).

    discord.py derives ``created_at`` from snowflakes, so they must encode "now".
    They are strictly increasing, like Discord's, which lets tests sort by id.
    """

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()
        self._increment = itertools.count()

    def __call__(self) -> int:
        with self._lock:
            ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
            value = (ms << 22) | (1 << 17) | (1 << 12) | (next(self._increment) & 0xFFF)
            if value <= self._last:
                value = self._last + 1
            self._last = value
            return value


def iso_now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat()


# --- permission bits (https://discord.com/developers/docs/topics/permissions) ---
class Permissions:
    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    CHANGE_NICKNAME = 1 << 26
    USE_APPLICATION_COMMANDS = 1 << 31
    SEND_MESSAGES_IN_THREADS = 1 << 38
    ALL = (1 << 53) - 1  # Discord answers "all permissions" for owners/admins

    DEFAULT_EVERYONE = (
        CREATE_INSTANT_INVITE
        | ADD_REACTIONS
        | VIEW_CHANNEL
        | SEND_MESSAGES
        | EMBED_LINKS
        | ATTACH_FILES
        | READ_MESSAGE_HISTORY
        | USE_EXTERNAL_EMOJIS
        | CHANGE_NICKNAME
        | USE_APPLICATION_COMMANDS
        | SEND_MESSAGES_IN_THREADS
    )
    DEFAULT_BOT = DEFAULT_EVERYONE | MANAGE_MESSAGES


class Intents:
    GUILDS = 1 << 0
    GUILD_MEMBERS = 1 << 1
    GUILD_PRESENCES = 1 << 8
    GUILD_MESSAGES = 1 << 9
    DIRECT_MESSAGES = 1 << 12
    MESSAGE_CONTENT = 1 << 15
    PRIVILEGED = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT
    VALID_MASK = (1 << 26) - 1


class ChannelType:
    GUILD_TEXT = 0
    DM = 1
    GUILD_VOICE = 2
    GUILD_CATEGORY = 4
    GUILD_ANNOUNCEMENT = 5


@dataclass
class FakeUser:
    id: int
    username: str
    global_name: str | None = None
    bot: bool = False
    # Bots kept their 4-digit discriminators after the username migration; users have "0".
    discriminator: str = "0"

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    def to_payload(self) -> Json:
        data: Json = {
            "id": str(self.id),
            "username": self.username,
            "discriminator": self.discriminator,
            "global_name": self.global_name,
            "avatar": None,
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
            "collectibles": None,
            "primary_guild": None,
        }
        if self.bot:  # Discord omits the key entirely for humans
            data["bot"] = True
        return data

    def to_self_payload(self) -> Json:
        """``GET /users/@me`` and READY.user carry a few private fields."""
        data = self.to_payload()
        data.update(verified=True, mfa_enabled=False, locale="en-US", email=None, premium_type=0)
        return data


@dataclass
class FakeRole:
    id: int
    guild_id: int
    name: str
    permissions: int = 0
    position: int = 0
    managed: bool = False
    bot_id: int | None = None

    @property
    def mention(self) -> str:
        return f"<@&{self.id}>"

    def to_payload(self) -> Json:
        data: Json = {
            "id": str(self.id),
            "name": self.name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": self.managed,
            "mentionable": False,
            "flags": 0,
        }
        if self.bot_id is not None:
            data["tags"] = {"bot_id": str(self.bot_id)}
        return data


@dataclass
class PermissionOverwrite:
    id: int
    type: int  # 0 = role, 1 = member
    allow: int = 0
    deny: int = 0

    def to_payload(self) -> Json:
        return {
            "id": str(self.id),
            "type": self.type,
            "allow": str(self.allow),
            "deny": str(self.deny),
        }


@dataclass
class FakeChannel:
    id: int
    type: int
    name: str | None = None
    guild_id: int | None = None
    position: int = 0
    parent_id: int | None = None
    topic: str | None = None
    overwrites: list[PermissionOverwrite] = field(default_factory=list)
    recipient: FakeUser | None = None  # DM channels only
    last_message_id: int | None = None
    pinned_ids: list[int] = field(default_factory=list)

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"

    @property
    def is_dm(self) -> bool:
        return self.type == ChannelType.DM

    def to_payload(self, *, include_guild_id: bool = True) -> Json:
        last = str(self.last_message_id) if self.last_message_id else None
        if self.is_dm:
            assert self.recipient is not None
            return {
                "id": str(self.id),
                "type": self.type,
                "last_message_id": last,
                "flags": 0,
                "recipients": [self.recipient.to_payload()],
            }
        data: Json = {
            "id": str(self.id),
            "type": self.type,
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [o.to_payload() for o in self.overwrites],
            "parent_id": str(self.parent_id) if self.parent_id else None,
            "flags": 0,
        }
        if self.type in (ChannelType.GUILD_TEXT, ChannelType.GUILD_ANNOUNCEMENT):
            data.update(topic=self.topic, nsfw=False, last_message_id=last, rate_limit_per_user=0)
        # GUILD_CREATE omits guild_id inside its channel list; REST objects carry it.
        if include_guild_id and self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
        return data


@dataclass
class FakeMember:
    user: FakeUser
    guild_id: int
    role_ids: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: str = field(default_factory=iso_now)

    def to_payload(self, *, permissions: int | None = None, with_user: bool = True) -> Json:
        data: Json = {
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "roles": [str(r) for r in self.role_ids],
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
            "unusual_dm_activity_until": None,
        }
        if with_user:
            data["user"] = self.user.to_payload()
        if permissions is not None:  # only present on interaction members
            data["permissions"] = str(permissions)
        return data


@dataclass
class FakeGuild:
    id: int
    name: str
    owner_id: int
    roles: dict[int, FakeRole] = field(default_factory=dict)
    channels: dict[int, FakeChannel] = field(default_factory=dict)
    members: dict[int, FakeMember] = field(default_factory=dict)
    joined_at: str = field(default_factory=iso_now)

    @property
    def everyone(self) -> FakeRole:
        # The @everyone role always has the guild's own id.
        return self.roles[self.id]

    def channel(self, name: str) -> FakeChannel:
        for channel in self.channels.values():
            if channel.name == name:
                return channel
        raise KeyError(f"guild {self.name!r} has no channel named {name!r}")

    def role(self, name: str) -> FakeRole:
        for role in self.roles.values():
            if role.name == name:
                return role
        raise KeyError(f"guild {self.name!r} has no role named {name!r}")

    @property
    def text_channels(self) -> list[FakeChannel]:
        return [c for c in self.channels.values() if c.type == ChannelType.GUILD_TEXT]

    def base_permissions(self, user_id: int) -> int:
        if user_id == self.owner_id:
            return Permissions.ALL
        member = self.members.get(user_id)
        perms = self.everyone.permissions
        if member is not None:
            for role_id in member.role_ids:
                role = self.roles.get(role_id)
                if role is not None:
                    perms |= role.permissions
        if perms & Permissions.ADMINISTRATOR:
            return Permissions.ALL
        return perms

    def channel_permissions(self, user_id: int, channel: FakeChannel) -> int:
        """Discord's documented algorithm: base, then @everyone, role, member overwrites."""
        perms = self.base_permissions(user_id)
        if perms & Permissions.ADMINISTRATOR:
            return perms
        by_id = {o.id: o for o in channel.overwrites}
        everyone = by_id.get(self.id)
        if everyone is not None:
            perms = (perms & ~everyone.deny) | everyone.allow
        member = self.members.get(user_id)
        role_ids = member.role_ids if member else []
        allow = deny = 0
        for role_id in role_ids:
            ow = by_id.get(role_id)
            if ow is not None and ow.type == 0:
                allow |= ow.allow
                deny |= ow.deny
        perms = (perms & ~deny) | allow
        own = by_id.get(user_id)
        if own is not None and own.type == 1:
            perms = (perms & ~own.deny) | own.allow
        # Without VIEW_CHANNEL a member has no permission at all in the channel.
        if not perms & Permissions.VIEW_CHANNEL:
            return 0
        return perms

    def to_payload(self, *, members: list[FakeMember], large: bool = False) -> Json:
        """The GUILD_CREATE shape (REST ``GET /guilds/{id}`` uses a subset)."""
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": "en-US",
            "features": [],
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "max_stage_video_channel_users": 50,
            "application_id": None,
            "widget_enabled": False,
            "incidents_data": None,
            "roles": [
                r.to_payload() for r in sorted(self.roles.values(), key=lambda r: r.position)
            ],
            "emojis": [],
            "stickers": [],
            # GUILD_CREATE-only fields
            "joined_at": self.joined_at,
            "large": large,
            "unavailable": False,
            "member_count": len(self.members),
            "voice_states": [],
            "members": [m.to_payload() for m in members],
            "channels": [c.to_payload(include_guild_id=False) for c in self.channels.values()],
            "threads": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "lazy": True,
        }
