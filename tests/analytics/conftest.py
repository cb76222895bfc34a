"""The hand-built scenario, seeded once per engine per module: building it is the slow part,
and the KPI and CLI tests only read it."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from commerce.analytics.kpis import DropAnalytics
from commerce.analytics.results import DropKpis, DropSummary
from commerce.clock import ManualClock
from commerce.core import Commerce
from commerce.storage.database import Database
from tests.analytics.scenario import Scenario, build
from tests.conftest import ENGINES, run_blocking, truncate_all

SCENARIO_AGE = timedelta(days=70)  # drop A opened 70 days before the real now (for the CLI)


@dataclass
class Seeded:
    url: str
    scenario: Scenario
    kpis: DropKpis  # drop A, as of the scenario's end (60 days after it opened)
    compare_90d: list[DropSummary]
    compare_30d: list[DropSummary]


@pytest.fixture(scope="module", params=ENGINES)
def seeded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> Seeded:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("seeded") / "dropcast.db"
        shutil.copyfile(sqlite_template, path)
        url = f"sqlite+aiosqlite:///{path}"
    else:
        url = str(request.getfixturevalue("pg_url"))
    clock = ManualClock((datetime.now(UTC) - SCENARIO_AGE).replace(microsecond=0))

    async def seed() -> Seeded:
        database = Database(url)
        try:
            if database.dialect == "postgresql":
                await truncate_all(database)
            commerce = Commerce.build(database, clock=clock)
            scenario = await build(commerce, clock)
            analytics = DropAnalytics(commerce.uow)
            return Seeded(
                url,
                scenario,
                await analytics.kpis(scenario.drop_a),
                await analytics.compare(timedelta(days=90)),
                await analytics.compare(timedelta(days=30)),
            )
        finally:
            await database.dispose()

    return run_blocking(seed())
