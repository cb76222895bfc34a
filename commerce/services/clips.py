"""Clips of the stream kept with a drop, for the shoppable replay.

A chat platform that can clip its stream (Twitch) makes the clip and reports here: first
that it asked (pending), then that the platform serves it (ready, with its URL) or never
did (failed). The core keeps clips as neutral data and picks the best ready one for the
replay message and the recap: the sell-out before the opening before a creator's
``!clip``, the latest of a kind first.

It also answers whether a restock of a closed drop is planned, which decides the
automatic replay after close: another scheduled drop sells one of its SKUs, or it came
from a recurring template that is still active.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, select, update
from sqlalchemy.engine import Row

from commerce.domain.errors import DropNotFound, InvalidInput, InvalidState
from commerce.domain.events import ClipReady, ReplayPosted
from commerce.domain.model import (
    CLIP_PREFERENCE,
    Clip,
    ClipReason,
    ClipStatus,
    DropState,
)
from commerce.storage.rows import record
from commerce.storage.tables import (
    clips,
    drop_stock,
    drop_templates,
    drops,
    template_runs,
)
from commerce.storage.unit_of_work import UnitOfWork


def _clip(row: Row[Any]) -> Clip:
    return record(Clip, row)


def best_clip(found: Iterable[Clip]) -> Clip | None:
    """The clip a replay shows: ready ones only, by reason (``CLIP_PREFERENCE``), the
    latest of a reason first."""
    ready = [c for c in found if c.status is ClipStatus.READY and c.url]
    if not ready:
        return None
    rank = {reason: i for i, reason in enumerate(CLIP_PREFERENCE)}
    return min(ready, key=lambda c: (rank[c.reason], -c.id))


class ClipService:
    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self._insert = uow.db.insert

    async def started(self, drop_id: int, platform: str, clip_id: str, reason: ClipReason) -> Clip:
        """The platform accepted a clip request: keep it, pending, with the drop. Asking
        twice for the same platform clip keeps the first."""
        if not clip_id or len(clip_id) > 120:
            raise InvalidInput("clip_id", "must be 1 to 120 characters")
        async with self.uow.write() as tx:
            await tx.conn.execute(
                self._insert(clips)
                .values(
                    drop_id=drop_id,
                    platform=platform,
                    clip_id=clip_id,
                    reason=ClipReason(reason).value,
                    status=ClipStatus.PENDING.value,
                    created_at=tx.now,
                )
                .on_conflict_do_nothing(index_elements=["platform", "clip_id"])
            )
            row = (
                await tx.conn.execute(
                    select(clips).where(clips.c.platform == platform, clips.c.clip_id == clip_id)
                )
            ).one()
        return _clip(row)

    async def ready(
        self, platform: str, clip_id: str, url: str, thumbnail_url: str | None = None
    ) -> Clip | None:
        """The platform serves the clip now: its URL (and thumbnail). None if unknown."""
        if not url.startswith(("https://", "http://")):
            raise InvalidInput("url", "must be an http(s) URL")
        return await self._settle(
            platform,
            clip_id,
            status=ClipStatus.READY.value,
            url=url,
            thumbnail_url=thumbnail_url or None,
        )

    async def failed(self, platform: str, clip_id: str) -> Clip | None:
        """The platform never served the clip in its time: it is assumed lost. A clip
        already ready stays ready."""
        return await self._settle(
            platform, clip_id, status=ClipStatus.FAILED.value, only_pending=True
        )

    async def _settle(
        self, platform: str, clip_id: str, *, only_pending: bool = False, **values: Any
    ) -> Clip | None:
        where = [clips.c.platform == platform, clips.c.clip_id == clip_id]
        if only_pending:
            where.append(clips.c.status == ClipStatus.PENDING.value)
        ready = values.get("status") == ClipStatus.READY.value
        if ready:  # once: a second report changes nothing and announces nothing
            where.append(clips.c.status != ClipStatus.READY.value)
        async with self.uow.write() as tx:
            if ready:
                values["ready_at"] = tx.now
            changed = await tx.conn.execute(update(clips).where(*where).values(**values))
            row = (
                await tx.conn.execute(
                    select(clips).where(clips.c.platform == platform, clips.c.clip_id == clip_id)
                )
            ).first()
            clip = _clip(row) if row is not None else None
            if ready and changed.rowcount and clip is not None and clip.url:
                tx.emit(ClipReady(clip.drop_id, clip.reason.value, clip.url))
        return clip

    # -- queries --------------------------------------------------------------------------

    async def for_drop(self, drop_id: int) -> list[Clip]:
        """Every clip kept with the drop, oldest first."""
        return (await self.for_drops([drop_id])).get(drop_id, [])

    async def for_drops(self, drop_ids: Iterable[int]) -> dict[int, list[Clip]]:
        """The clips of several drops (the dashboard), oldest first per drop."""
        wanted = list(dict.fromkeys(drop_ids))
        if not wanted:
            return {}
        async with self.uow.read() as conn:
            rows = await conn.execute(
                select(clips).where(clips.c.drop_id.in_(wanted)).order_by(clips.c.id)
            )
            found: dict[int, list[Clip]] = {}
            for row in rows:
                clip = _clip(row)
                found.setdefault(clip.drop_id, []).append(clip)
        return found

    async def best(self, drop_id: int) -> Clip | None:
        """The clip the replay shows (see ``best_clip``), or None when none is ready."""
        return best_clip(await self.for_drop(drop_id))

    # -- the replay -------------------------------------------------------------------------

    async def post_replay(self, drop_id: int) -> Clip:
        """The replay is the drop's best clip: subscribers and non-buyers who claimed hear
        of it (``ReplayPosted``). Refused while no clip of the drop is ready."""
        clip = await self.best(drop_id)
        async with self.uow.write() as tx:
            known = (await tx.conn.execute(select(drops.c.id).where(drops.c.id == drop_id))).first()
            if known is None:
                raise DropNotFound(drop_id)
            if clip is None or clip.url is None:
                raise InvalidState(
                    f"drop {drop_id} has no ready clip yet; give the replay's URL instead",
                    drop_id=drop_id,
                )
            tx.emit(ReplayPosted(drop_id, clip.url))
        return clip

    async def restock_planned(self, drop_id: int) -> bool:
        """Whether the drop's products will be on sale again: another drop selling one of
        its SKUs is scheduled, or the drop came from a recurring template still active."""
        skus = select(drop_stock.c.sku).where(drop_stock.c.drop_id == drop_id)
        later = exists().where(
            drop_stock.c.drop_id == drops.c.id,
            drops.c.id != drop_id,
            drops.c.state == DropState.SCHEDULED.value,
            drop_stock.c.sku.in_(skus),
        )
        recurring = exists().where(
            template_runs.c.drop_id == drop_id,
            template_runs.c.template_id == drop_templates.c.id,
            drop_templates.c.active == 1,
        )
        async with self.uow.read() as conn:
            planned = (await conn.execute(select(later | recurring))).scalar()
        return bool(planned)

    async def closed_between(self, start: datetime, end: datetime) -> list[tuple[int, datetime]]:
        """(drop id, closed at) of the drops closed in [start, end], oldest first: those
        whose replay after close falls in a window of time."""
        async with self.uow.read() as conn:
            rows = await conn.execute(
                select(drops.c.id, drops.c.closed_at)
                .where(
                    and_(
                        drops.c.state == DropState.CLOSED.value,
                        drops.c.closed_at >= start,
                        drops.c.closed_at <= end,
                    )
                )
                .order_by(drops.c.closed_at)
            )
            return [(int(r.id), r.closed_at) for r in rows]
