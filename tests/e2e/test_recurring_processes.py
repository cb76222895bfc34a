"""Real processes: two schedulers on one database materialize the same occurrences of a
recurring drop at once, and every occurrence still becomes exactly one drop."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from commerce.core import Commerce
from commerce.storage.database import Database
from commerce.storage.tables import drops, outbox, template_runs
from tests.e2e.processes import ROOT
from tests.helpers import capsule_spec

pytestmark = pytest.mark.timeout(120)

FIRST = datetime(2030, 3, 29, 0, 0, tzinfo=UTC)  # the night Berlin changes to summer time
OCCURRENCES = 12

# One scheduler process: load the template, say "ready", wait for the starting signal (a
# file), then materialize every occurrence at once and print the ids it created.
MATERIALIZE = """
import asyncio, json, sys, time
from datetime import datetime, timedelta
from pathlib import Path
from commerce.core import Commerce
from commerce.storage.database import Database

async def main(url, go, first, count):
    db = Database(url)
    try:
        commerce = Commerce.build(db)
        (template,) = await commerce.templates.active()
        print("ready", flush=True)
        while not Path(go).exists():
            time.sleep(0.005)
        start = datetime.fromisoformat(first)
        created = await asyncio.gather(*(
            commerce.templates.materialize(template, start + timedelta(minutes=i))
            for i in range(count)
        ))
        print(json.dumps([d for d in created if d is not None]), flush=True)
    finally:
        await db.dispose()

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
"""


async def add_template(url: str) -> None:
    db = Database(url)
    try:
        await Commerce.build(db).templates.add(
            "minutely", capsule_spec(6), "* * * * *", "Europe/Berlin", timedelta(seconds=90)
        )
    finally:
        await db.dispose()


async def outbox_count(conn: AsyncConnection, topic: str) -> int:
    query = select(func.count()).select_from(outbox).where(outbox.c.topic == topic)
    return int((await conn.execute(query)).scalar_one())


async def count_rows(url: str) -> dict[str, int]:
    db = Database(url)
    try:
        async with db.read() as conn:
            return {
                "drops": (await conn.execute(select(func.count()).select_from(drops))).scalar_one(),
                "closed": (
                    await conn.execute(
                        select(func.count()).select_from(drops).where(drops.c.state == "closed")
                    )
                ).scalar_one(),
                "runs": (
                    await conn.execute(select(func.count()).select_from(template_runs))
                ).scalar_one(),
                "announced": await outbox_count(conn, "DropScheduled"),
                "withdrawn": await outbox_count(conn, "DropClosed"),
            }
    finally:
        await db.dispose()


async def test_two_scheduler_processes_create_one_drop_per_occurrence(database_url, tmp_path):
    await add_template(database_url)
    go = tmp_path / "go"
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            MATERIALIZE,
            database_url,
            str(go),
            FIRST.isoformat(),
            str(OCCURRENCES),
            cwd=str(ROOT),
            env=dict(os.environ),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    try:
        for process in processes:  # both have connected and loaded the template
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), 60)
            assert line.strip() == b"ready", (await process.communicate())[1].decode()[-3000:]
        go.touch()
        results = [await asyncio.wait_for(p.communicate(), 60) for p in processes]
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
    created: list[int] = []
    for process, (out, err) in zip(processes, results, strict=True):
        assert process.returncode == 0, err.decode()[-3000:]
        created += json.loads(out)
    assert len(created) == len(set(created)) == OCCURRENCES
    # Nothing else was created, closed, or queued for announcement (DropScheduled and
    # DropClosed are durable: a committed one is in the outbox).
    assert await count_rows(database_url) == {
        "drops": OCCURRENCES,
        "closed": 0,
        "runs": OCCURRENCES,
        "announced": OCCURRENCES,
        "withdrawn": 0,
    }
