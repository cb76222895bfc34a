"""A KPI is one entry in the metric registry: registered here, and nowhere else, it is
accepted as a drop's objective, carried by the KPI JSON with its format, shown and judged
on the dashboard, and listed by the report."""

from __future__ import annotations

import pytest
from rich.console import Console

from commerce.analytics.metrics import METRICS, Format, Metric
from commerce.domain.errors import InvalidInput
from commerce.dropfile import validate_spec
from dropcast.report import print_kpis
from tests.helpers import capsule_spec, live_drop
from tests.web.test_dashboard import sell

CLAIMS = Metric(
    "claims_total",
    "Claims made",
    Format.COUNT,
    lambda kpis: kpis.claims.total,
    objective=True,
)
AIM = {"metric": "claims_total", "target": 2}


@pytest.fixture
def claims_metric(monkeypatch):
    monkeypatch.setitem(METRICS, CLAIMS.name, CLAIMS)  # register(CLAIMS), undone after the test


def test_an_unregistered_metric_is_no_objective():
    with pytest.raises(InvalidInput) as refused:
        validate_spec(capsule_spec(2, objective=AIM))
    assert refused.value.field == "drop.objective.metric"


async def test_a_registered_metric_reaches_the_json_the_dashboard_and_the_report(
    site, claims_metric
):
    assert validate_spec(capsule_spec(2, objective=AIM)).drop.objective is not None
    drop_id = await live_drop(site.commerce, capsule_spec(4, objective=AIM))
    await sell(site, drop_id, "discord:1")

    data = await (await site.client.get(f"/api/drops/{drop_id}/kpis", headers=site.admin)).json()
    assert data["metrics"]["claims_total"] == {
        "label": "Claims made",
        "format": "int",
        "value": 1,
        "text": "1",
        "higher_is_better": True,
        "objective": True,
    }
    assert data["objective"] == {
        "metric": "claims_total",
        "target": 2.0,
        "actual": 1.0,
        "met": False,
        "higher_is_better": True,
    }
    verdict = data["dashboard"]["verdict"]
    assert (verdict["label"], verdict["goal"]) == ("Not met yet", "Claims made ≥ 2")
    assert data["dashboard"]["shown"]["claims_total"] == "1"

    html = await (await site.client.get(f"/dashboard?drop={drop_id}", headers=site.admin)).text()
    assert "Claims made ≥ 2" in html
    assert '<dt>Claims made</dt><dd data-kpi="claims_total" data-fmt="int">1</dd>' in html

    console = Console(width=160, record=True)
    print_kpis(console, await site.commerce.analytics.kpis(drop_id))
    report = console.export_text()
    assert "Objective: claims_total ≥ 2: 1 — NOT MET" in report
    assert any(
        line.split() == ["Claims", "made", "1", "claims_total"] for line in report.splitlines()
    )
