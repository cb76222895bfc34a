"""Retention messages count in claim units and show money through Babel (issue 9)."""

from __future__ import annotations

from datetime import timedelta

from bot.presenter.retention import RetentionRenderer
from commerce.dropfile import validate_spec
from commerce.services.notifications import Notification
from tests.helpers import bundle_spec, capsule_spec, links


def renderer(commerce, locale=None):
    return RetentionRenderer(
        commerce,
        links(lambda d, who, tag: f"https://x.test/c/{d}/{who}?tag={tag}"),
        lambda c: f"https://x.test/u/{c}",
        "https://x.test",
        locale,
    )


def reminder(drop_id, now, kind="reminder:300"):
    return Notification(1, "k", 1, drop_id, None, kind, "local", "local:fan", {}, 0, now, now)


async def test_a_reminder_shows_the_price_in_the_configured_locale(commerce, clock):
    drop_id = await commerce.drops.create(validate_spec(capsule_spec(5, opens_at="+10m")))
    now = clock.now()

    default = await renderer(commerce)(reminder(drop_id, now), now)
    german = await renderer(commerce, "de_DE")(reminder(drop_id, now), now)

    assert default is not None and german is not None
    assert "starts {at}: 5 units at $12.00." in default.text
    assert "12,00\xa0$" in german.text
    assert "USD" not in default.text + german.text


async def test_bundle_reminders_count_bundles(commerce, clock):
    drop_id = await commerce.drops.create(
        validate_spec(bundle_spec(chips=6, salsa=4, opens_at="+10m"))
    )
    now = clock.now()
    message = await renderer(commerce)(reminder(drop_id, now), now)
    assert message is not None and "4 bundles at $" in message.text

    await commerce.drops.open(drop_id)
    live = await renderer(commerce)(reminder(drop_id, now, "live"), now)
    assert live is not None and "4 of 4 bundles left" in live.text and "10" not in live.text


async def test_a_reminder_past_the_opening_time_never_says_starts_ago(commerce, clock):
    drop_id = await commerce.drops.create(validate_spec(capsule_spec(5, opens_at="+1m")))
    later = clock.now() + timedelta(minutes=2)  # the opener is late; still scheduled
    message = await renderer(commerce)(reminder(drop_id, later), later)
    assert message is not None and "starts any moment" in message.text and message.at is None
