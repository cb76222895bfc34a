"""`dropcast report`: the table leads with the objective, --json has stable keys, --png
writes the chart, --since compares; bad input exits 2 with one line. In-process, both
engines, against the seeded scenario."""

from __future__ import annotations

import json
import sys

import pytest

from dropcast.cli import main
from tests.analytics.test_chart import png_size


@pytest.fixture
def dropcast(seeded, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("DROPCAST_DATABASE__URL", seeded.url)
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["dropcast", "report", *args])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_the_report_leads_with_the_objective_and_whether_it_was_met(dropcast, seeded):
    code, out, err = dropcast(str(seeded.scenario.drop_a))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith(f"Drop {seeded.scenario.drop_a}: Spicy chips capsule")
    assert lines[1] == "Objective: units_first_10m ≥ 4: 3 — NOT MET"
    for shown in ("3 of 3 (100% sold)", "350 / 234.2", "p50 15  p90 25.4", "Funnel",
                  "First 120 seconds", "reminder:5m", "66.7% (2 of 3 buyers)"):  # fmt: skip
        assert shown in out, shown


def test_json_output_has_stable_keys(dropcast, seeded):
    code, out, _ = dropcast(str(seeded.scenario.drop_a), "--json")
    data = json.loads(out)
    assert code == 0 and data["drop"]["id"] == seeded.scenario.drop_a
    assert data["objective"] == {
        "metric": "units_first_10m",
        "target": 4.0,
        "actual": 3.0,
        "met": False,
        "higher_is_better": True,
    }
    assert set(data["series"]) == {
        "stock_available", "sales_per_10s", "viewers", "live_until_s", "end_s",
    }  # fmt: skip
    assert set(data["seconds_to_checkout"]["from_claim"]) == {"count", "p50", "p90"}
    assert data["series"]["stock_available"][0] == {
        "at": data["drop"]["opened_at"],
        "t_s": 0.0,
        "value": 3.0,
    }


def test_png_writes_the_recap_chart(dropcast, seeded, tmp_path):
    code, out, _ = dropcast(str(seeded.scenario.drop_a), "--png", "recap.png")
    assert code == 0 and "chart written to recap.png" in out
    assert png_size((tmp_path / "recap.png").read_bytes()) == (1200, 800)


def test_since_compares_the_drops_opened_in_the_period(dropcast, seeded):
    code, out, _ = dropcast("--since", "30d", "--json")
    data = json.loads(out)
    assert code == 0 and data["since"] == "30d"
    assert [d["drop_id"] for d in data["drops"]] == seeded.scenario.later_drops[-1:]
    code, out, _ = dropcast("--since", "90d")
    assert code == 0 and "Drops opened in the last 90d" in out
    first = next(line for line in out.splitlines() if line.strip().startswith("1 "))
    assert "units_first_10m" in first and " no " in first and "66.7%" in first
    code, out, _ = dropcast("--since", "1m")
    assert (code, out.strip()) == (0, "no drops opened in the last 1m")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["999"], "drop 999 does not exist"),
        (["abc"], "'abc' is not a valid integer"),
        ([], "give a DROP_ID or --since"),
        (["1", "--since", "3d"], "give a DROP_ID or --since"),
        (["--since", "30x"], "'30x' is not a period"),
        (["--since", "30d", "--png", "x.png"], "--png draws one drop"),
        (["1", "--png", "no/such/dir/x.png"], "does not exist"),
    ],
)
def test_bad_input_exits_2_with_one_line(dropcast, args, expected):
    code, out, err = dropcast(*args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("dropcast: error:") and expected in err
