"""`capplan forecast` and `capplan rollout` on the command line: CONTRACT columns, filters,
options, exit codes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from capplan.cli import app

FORECAST_COLUMNS = ["scope", "resource", "basis", "current", "allocatable", "slope_per_day", "days_to_exhaustion",
                    "days_low", "days_high"]


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_forecast_csv_has_the_contract_columns(runner, sample_db_readonly: Path) -> None:
    result = runner.invoke(app, ["forecast", "--db", str(sample_db_readonly), "--format", "csv"])
    assert result.exit_code == 0, result.stderr
    rows = _csv(result.stdout)
    assert list(rows[0])[: len(FORECAST_COLUMNS)] == FORECAST_COLUMNS
    assert {"outlook", "reason"} <= set(rows[0])
    # cluster + 2 pools + 4 namespaces with requests (batch's Jobs are Succeeded) and 5 with usage
    assert {r["scope"] for r in rows} >= {"cluster", "pool:m5.2xlarge", "pool:m5.xlarge", "namespace:ml"}
    for row in rows:
        assert row["basis"] in ("requests", "usage") and row["resource"] in ("cpu", "memory")
        if row["resource"] == "memory":  # whole bytes
            assert row["current"].isdigit() and row["allocatable"].isdigit()
            assert row["slope_per_day"].lstrip("-").isdigit()
        else:
            float(row["current"])
        if row["outlook"] == "never":
            assert row["days_to_exhaustion"] == ""


def test_forecast_namespace_filter_and_json(runner, sample_db_readonly: Path) -> None:
    result = runner.invoke(app, ["forecast", "--db", str(sample_db_readonly), "-n", "ml", "--format", "json"])
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {r["scope"] for r in rows} == {"namespace:ml"} and len(rows) == 4
    memory = next(r for r in rows if r["resource"] == "memory" and r["basis"] == "requests")
    assert memory["outlook"] == "within_horizon" and memory["days_to_exhaustion"] > 0


def test_forecast_horizon_min_days_and_pool_label(runner, sample_db_readonly: Path, tmp_path: Path) -> None:
    db = str(sample_db_readonly)
    # a 10-day horizon: ml memory requests (about 11 days away) is no longer within it
    short = _csv(runner.invoke(app, ["forecast", "--db", db, "-n", "ml", "--horizon", "10d", "-f", "csv"]).stdout)
    memory = next(r for r in short if r["resource"] == "memory" and r["basis"] == "requests")
    assert memory["outlook"] == "never" and "beyond the 10-day horizon" in memory["reason"]
    # 14 days of history, 30 asked for
    out = tmp_path / "f.csv"
    result = runner.invoke(app, ["forecast", "--db", db, "--min-days", "30", "-f", "csv", "-o", str(out)])
    assert result.exit_code == 0 and result.stdout == ""
    rows = _csv(out.read_text())
    assert {r["outlook"] for r in rows} == {"too_short"}
    assert rows[0]["reason"] == "history too short: 14 days of data, at least 30 needed (--min-days)"
    # pools by host name: one pool per node
    hosts = _csv(runner.invoke(app, ["forecast", "--db", db, "--pool-label", "kubernetes.io/hostname",
                                     "-f", "csv"]).stdout)
    assert {r["scope"] for r in hosts if r["scope"].startswith("pool:")} == {f"pool:node-{i}" for i in range(1, 9)}


def test_forecast_table_prints_the_soonest(runner, sample_db_readonly: Path) -> None:
    result = runner.invoke(app, ["forecast", "--db", str(sample_db_readonly)])
    assert result.exit_code == 0, result.stderr
    assert "namespace:ml memory requests: runs out in" in result.stdout


def test_forecast_bad_options_and_empty_db(runner, sample_db_readonly: Path, tmp_path: Path) -> None:
    db = str(sample_db_readonly)
    assert runner.invoke(app, ["forecast", "--db", db, "--horizon", "soon"]).exit_code == 2
    assert runner.invoke(app, ["forecast", "--db", db, "--min-days", "1"]).exit_code == 2
    assert runner.invoke(app, ["forecast", "--db", db, "--format", "xml"]).exit_code == 2
    missing = runner.invoke(app, ["forecast", "--db", str(tmp_path / "none.duckdb")])
    assert missing.exit_code == 6 and len(missing.stderr.strip().splitlines()) == 1
    assert runner.invoke(app, ["rollout", "--db", str(tmp_path / "none.duckdb")]).exit_code == 6
    assert runner.invoke(app, ["rollout", "--db", db, "--format", "xml"]).exit_code == 2


def test_rollout_csv_json_and_namespace(runner, sample_db_readonly: Path, tmp_path: Path) -> None:
    db = str(sample_db_readonly)
    result = runner.invoke(app, ["rollout", "--db", db, "--format", "csv"])
    assert result.exit_code == 0, result.stderr
    rows = _csv(result.stdout)
    assert len(rows) == 9  # the sample's nine Deployments
    inference = next(r for r in rows if r["deployment"] == "inference")
    assert inference["can_roll"] == "false" and inference["pod_memory_request_bytes"] == str(6 * 2**30)
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["rollout", "--db", db, "-n", "web", "--format", "json", "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    web = json.loads(out.read_text())
    assert {r["namespace"] for r in web} == {"web"} and all(r["can_roll"] for r in web)
    assert set(web[0]) == set(rows[0])
    table = runner.invoke(app, ["rollout", "--db", db])
    assert table.exit_code == 0 and "cannot roll out now:" in table.stdout and "ml/inference" in table.stdout


def test_forecast_short_window_is_too_short_with_the_default_min_days(runner, sample_db_readonly: Path) -> None:
    # a 5-day window ends at 23:55 on the 14th: the 9th holds one sample time (dropped as a
    # partial day), the 10th to the 14th are whole: 5 days < 7
    result = runner.invoke(app, ["forecast", "--db", str(sample_db_readonly), "--window", "5d", "-f", "csv"])
    assert result.exit_code == 0, result.stderr
    rows = _csv(result.stdout)
    assert rows and {r["outlook"] for r in rows} == {"too_short"}
    assert {r["days_of_history"] for r in rows} == {"5"}
    assert all(r["days_to_exhaustion"] == "" and r["current"] != "" for r in rows)
