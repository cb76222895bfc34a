"""A chat platform is one plugin: a made-up third platform ("fakechat"), declared in this
file and registered in one line, runs a whole drop through the real composition root —
the announcement and the live post reach its chat, a viewer claims there and gets a pay
link privately, and the reminder and the receipt reach them through its private messages.
Nothing outside this file knows it exists."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bot.hub import Outlet
from bot.messages import ChatUser, Message
from bot.platform import PlatformContext, PlatformPlugin
from bot.platforms import PLATFORMS
from commerce.domain.identities import IdentityScheme, PrivateChannel
from commerce.dropfile import validate_spec
from config.settings import Settings
from dropcast.app import App, Chat
from tests.helpers import capsule_spec


class FakeChat:
    """The whole platform: its chat is a list of posts, its DMs a list per person."""

    def __init__(self, ctx: PlatformContext) -> None:
        self.handler = ctx.handler
        self.posts: list[Message] = []
        self.private: dict[str, list[Message]] = {}
        self.running = False
        ctx.hub.add_outlet(self)

    # -- ChatPlatform --
    @property
    def outlet(self) -> Outlet:
        return self

    async def start(self) -> None:
        self.running = True

    async def close(self) -> None:
        self.running = False

    async def reachable(self, user: ChatUser) -> bool:
        return True

    def routes(self) -> list[web.RouteDef]:
        return []

    # -- Outlet --
    platform = "fakechat"

    async def post(self, message: Message) -> str | None:
        self.posts.append(message)
        return str(len(self.posts))

    async def edit(self, handle: str, message: Message) -> None:
        self.posts[int(handle) - 1] = message

    async def send_private(self, identity: str, message: Message, key: str | None = None) -> bool:
        self.private.setdefault(identity, []).append(message)
        return True

    async def edit_private(self, hold_id: int, message: Message) -> None:
        return None

    # -- chat in: a viewer types a line --
    async def say(self, identity: str, text: str) -> None:
        out = await self.handler.handle(
            ChatUser(identity, identity.partition(":")[2]), text, message_id=text
        )
        assert out is not None
        for reply in out.replies:  # a reply with a pay link goes privately, as any DM would
            if reply.personal_link is not None or reply.private:
                await self.send_private(identity, reply)
            else:
                await self.post(reply)
        for post in out.posts:
            await self.post(post)


SCHEME = IdentityScheme("fakechat", re.compile(r"^[a-z]{1,20}$"), private=PrivateChannel("DMs"))
FAKECHAT = PlatformPlugin(SCHEME, FakeChat)


@pytest.fixture
async def app(database_url: str) -> AsyncIterator[App]:
    settings = Settings(database={"url": database_url}, web={"public_url": "https://shop.test"})
    app = await App.open(settings, platforms=(*PLATFORMS, FAKECHAT))  # the one registration
    try:
        yield app
    finally:
        await app.close()


async def running(app: App) -> tuple[Chat, FakeChat]:
    chat = app.build_chat(web=False)
    fake = chat.platforms["fakechat"]
    assert isinstance(fake, FakeChat)
    await chat.hub.start()
    await fake.start()
    return chat, fake


async def test_a_drop_runs_through_a_platform_added_as_one_plugin(app: App) -> None:
    chat, fake = await running(app)
    try:
        commerce = app.commerce
        drop_id = await commerce.drops.create(validate_spec(capsule_spec(3, opens_at="+10m")))
        await chat.hub.drain()
        assert [p.kind for p in fake.posts] == ["announcement"]

        await fake.say("fakechat:ann", "!remindme")  # a subscription on this platform
        (sub,) = await commerce.subscriptions.of(await commerce.customers.resolve("fakechat:ann"))
        assert (sub.channel, sub.address) == ("fakechat", "fakechat:ann")

        await commerce.drops.open(drop_id)
        await commerce.notifications.fan_out(drop_id, "live")
        dispatcher = app.dispatcher(chat)
        assert await dispatcher.run_once() == 1
        await chat.hub.drain()
        assert "live" in [p.kind for p in fake.posts]
        (live,) = fake.private["fakechat:ann"][-1:]
        assert live.kind == "live" and live.personal_link is not None

        await fake.say("fakechat:ann", "!buy")
        held = fake.private["fakechat:ann"][-1]
        assert held.personal_link is not None and "https://shop.test/c/" in held.personal_link
        assert all(p.personal_link is None for p in fake.posts)  # never in public chat

        ann = await commerce.customers.resolve("fakechat:ann")
        hold = await commerce.claims.holding(drop_id, ann)
        assert hold is not None
        order = await commerce.orders.checkout(hold.id, ann, "test")
        await commerce.orders.confirm_payment(order.id, "pi_fake")
        assert await dispatcher.run_once() == 1
        assert fake.private["fakechat:ann"][-1].kind == "receipt"
    finally:
        await fake.close()
        await chat.hub.stop()
