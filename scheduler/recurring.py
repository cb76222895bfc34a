"""When recurring drops fall: cron in the creator's zone via APScheduler's CronTrigger,
which computes in local wall-clock time, so a weekly 18:00 drop stays at 18:00 across
daylight-saving changes."""

from __future__ import annotations

import logging
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from commerce.core import Commerce
from commerce.services.templates import DropTemplate, TemplateService

log = logging.getLogger(__name__)


def known_timezone(name: str) -> bool:
    """Whether ``name`` is an IANA time zone (checked apart from the cron, so that a bad
    zone is reported against the zone)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def check_cron(cron: str, timezone: str) -> str | None:
    """None when APScheduler accepts the schedule, else its reason (for a clear refusal)."""
    try:
        CronTrigger.from_crontab(cron, timezone=timezone)
    except (ValueError, KeyError) as exc:
        return str(exc)
    return None


def next_occurrence(template: DropTemplate, after: datetime) -> datetime | None:
    trigger = CronTrigger.from_crontab(template.cron, timezone=template.timezone)
    fire: datetime | None = trigger.get_next_fire_time(None, after)
    return fire


async def materialize_due(commerce: Commerce, templates: TemplateService) -> list[int]:
    """Create each template's next drop once it is within the template's lead time."""
    now = commerce.clock.now()
    created = []
    for template in await templates.active():
        try:
            occurrence = next_occurrence(template, now)
            if occurrence is not None and occurrence - now <= template.lead:
                drop_id = await templates.materialize(template, occurrence)
                if drop_id is not None:
                    created.append(drop_id)
        except Exception:  # one broken template must not stop the others
            log.exception("recurring drop %r could not be created", template.name)
    return created
