"""`capplan recommend` and `capplan backtest` on the command line: columns, formats, exit codes."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import tempfile
from pathlib import Path

import pytest

from capplan.cli import app
from tests import tools

RECOMMEND_COLUMNS = (
    "namespace,owner_kind,owner_name,container,pods,cpu_request_current,cpu_request_recommended,"
    "cpu_limit_current,cpu_limit_recommended,memory_request_current,memory_request_recommended,"
    "memory_limit_current,memory_limit_recommended,severity,reason"
).split(",")


def _csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("strategy", ["auto", "simple", "vpa", "max-target"])
def test_recommend_csv_has_the_contract_columns(runner, sample_db_readonly: Path, strategy: str) -> None:
    result = runner.invoke(app, ["recommend", "--db", str(sample_db_readonly), "--strategy", strategy, "--format", "csv"])
    assert result.exit_code == 0, result.output
    header = result.stdout.splitlines()[0].split(",")
    assert header[: len(RECOMMEND_COLUMNS)] == RECOMMEND_COLUMNS
    rows = _csv(result.stdout)
    assert rows and all(r["reason"] for r in rows)
    for r in rows:
        for col in ("memory_request_current", "memory_request_recommended", "memory_limit_current",
                    "memory_limit_recommended"):
            assert r[col] == "" or r[col].isdigit()  # integer bytes, unset = empty cell
    # session-cache has no memory limit today: an empty cell, not "None" or "nan"
    cache = next(r for r in rows if r["owner_name"] == "session-cache")
    assert cache["memory_limit_current"] == ""


def test_recommend_options_reach_the_library(runner, sample_db_readonly: Path) -> None:
    base = ["recommend", "--db", str(sample_db_readonly), "--format", "json", "-n", "web"]
    kept = json.loads(runner.invoke(app, base + ["--strategy", "simple"]).stdout)
    moved = json.loads(runner.invoke(app, base + ["--strategy", "simple", "--allow-hpa", "--cpu-cost", "0.05",
                                                  "--memory-cost", "0.01"]).stdout)
    assert {r["namespace"] for r in kept} == {"web"}
    api_kept = next(r for r in kept if r["owner_name"] == "api")
    api_moved = next(r for r in moved if r["owner_name"] == "api")
    assert api_kept["cpu_request_recommended"] == api_kept["cpu_request_current"]
    assert api_moved["cpu_request_recommended"] != api_moved["cpu_request_current"]
    assert api_kept["savings_per_hour"] is None and api_moved["savings_per_hour"] is not None
    none = json.loads(runner.invoke(app, base + ["--min-history", "30d"]).stdout)
    assert all(r["severity"] == "unknown" and r["memory_limit_recommended"] is None for r in none)


def test_recommend_table_output(runner, sample_db_readonly: Path) -> None:
    """Biggest impact first (severity, then the saving at 4 GiB per core), changes as
    `current -> new (delta)`, and a TOTAL that is the sum of the CSV's savings."""
    import csv
    import io

    result = runner.invoke(app, ["recommend", "--db", str(sample_db_readonly), "-n", "web"], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    assert "web/legacy-admin" in result.stdout and "2 -> 6m (-1994m)" in result.stdout
    rows = list(csv.DictReader(io.StringIO(runner.invoke(
        app, ["recommend", "--db", str(sample_db_readonly), "-n", "web", "-f", "csv"]).stdout)))
    order = {"critical": 4, "warning": 3, "ok": 2, "good": 1, "unknown": 0}
    def size(r):
        return abs(float(r["cpu_savings_cores"] or 0)) + abs(float(r["memory_savings_gib"] or 0)) / 4
    first = max(rows, key=lambda r: (order[r["severity"]], size(r)))
    lines = [line for line in result.stdout.splitlines() if line.startswith("web/")]
    assert lines[0].startswith(f"web/{first['owner_name']}")
    total_cpu_m = round(sum(float(r["cpu_savings_cores"] or 0) for r in rows) * 1000)
    total = next(line for line in result.stdout.splitlines() if line.startswith("TOTAL"))
    from capplan.quantity import format_cpu

    assert f"{len(rows)} containers" in total and f"{'+' if total_cpu_m > 0 else '-'}{format_cpu(abs(total_cpu_m) / 1000)}" in total


def test_recommend_exit_codes(runner, sample_db_readonly: Path, tmp_path: Path) -> None:
    db = ["--db", str(sample_db_readonly)]
    assert runner.invoke(app, ["recommend", *db, "--strategy", "krr"]).exit_code == 2
    assert runner.invoke(app, ["recommend", *db, "--cpu-percentile", "120"]).exit_code == 2
    assert runner.invoke(app, ["recommend", *db, "--format", "xml"]).exit_code == 2
    bad = runner.invoke(app, ["recommend", *db, "--min-history", "soon"])
    assert bad.exit_code == 2 and "soon" in bad.stderr
    assert runner.invoke(app, ["recommend", "--db", str(tmp_path / "none.duckdb")]).exit_code == 6
    assert runner.invoke(app, ["recommend", *db, "-n", "no-such-namespace"]).exit_code == 6


def test_backtest_command(runner, sample_db_readonly: Path) -> None:
    db = ["--db", str(sample_db_readonly)]
    result = runner.invoke(app, ["backtest", *db, "--train", "10d", "--test", "3d", "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = _csv(result.stdout)
    assert [r["policy"] for r in rows] == ["current", "simple", "vpa", "max-target", "auto", "hindsight"]
    assert {"cpu_slack", "cpu_short", "mem_slack", "oom_container_days"} <= set(rows[0])
    one = runner.invoke(app, ["backtest", *db, "--strategy", "simple", "--train", "10d", "--test", "3d", "-f", "json"])
    assert [r["policy"] for r in json.loads(one.stdout)] == ["current", "simple", "hindsight"]
    too_long = runner.invoke(app, ["backtest", *db, "--train", "21d", "--test", "7d"])
    assert too_long.exit_code == 6 and "history" in too_long.stderr
    assert runner.invoke(app, ["backtest", *db, "--train", "10d", "--test", "10d"]).exit_code == 2
    assert runner.invoke(app, ["backtest", *db, "--strategy", "nope"]).exit_code == 2


def test_backtest_splits_command(runner, sample_db_readonly: Path, tmp_path: Path) -> None:
    db = ["--db", str(sample_db_readonly)]
    base = ["backtest", *db, "--splits", "--trains", "7d", "--tests", "3d", "--step", "2d", "--strategy", "simple,auto"]
    result = runner.invoke(app, [*base, "--risk", "all", "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = _csv(result.stdout)
    assert [r["policy"] for r in rows] == ["current", "simple", "auto-low", "auto-medium", "auto-high", "hindsight"]
    assert {"cpu_slack_mean", "cpu_slack_worst", "oom_container_days_worst", "throttled_hours_mean",
            "mem_vs_current_mean", "splits_oom_at_most_current_and_less_memory"} <= set(rows[0])
    splits = int(rows[0]["splits"])
    assert splits >= 2
    long = runner.invoke(app, [*base, "--per-split", "--format", "json"])
    assert long.exit_code == 0, long.output
    records = json.loads(long.stdout)
    assert len(records) == splits * 4 and {r["policy"] for r in records} == {"current", "simple", "auto", "hindsight"}
    table = runner.invoke(app, base)
    assert table.exit_code == 0 and "mean (worst)" in table.stdout
    page = tmp_path / "bt.html"
    html_run = runner.invoke(app, [*base, "--format", "html", "-o", str(page)])
    assert html_run.exit_code == 0, html_run.output
    text = page.read_text()
    assert text.count('<svg class="chart" data-kind="frontier"') == 2 and "<script" not in text
    # one dot per policy and split in each chart
    assert text.count('class="point" data-policy="auto"') == 2 * splits
    # the page in real headless Chromium: it parses, both charts are in the DOM, nothing fetched
    with tempfile.TemporaryDirectory(prefix="capplan-chromium-") as profile:
        proc = subprocess.run([tools.one("chromium"), "--headless", "--no-sandbox",
                               "--disable-gpu", "--no-first-run", "--host-resolver-rules=MAP * ~NOTFOUND",
                               f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count('data-kind="frontier"') == 2 and "ERR_NAME_NOT_RESOLVED" not in proc.stderr
    assert runner.invoke(app, ["backtest", *db, "--format", "html"]).exit_code == 2  # html needs --splits
    assert runner.invoke(app, [*base, "--risk", "extreme"]).exit_code == 2
    assert runner.invoke(app, [*base, "--target-oom", "lots"]).exit_code == 2


def test_recommend_risk_and_target_oom(runner, sample_db_readonly: Path) -> None:
    db = ["--db", str(sample_db_readonly)]
    frames = {}
    for level in ("low", "high"):
        result = runner.invoke(app, ["recommend", *db, "--risk", level, "--format", "json"])
        assert result.exit_code == 0, result.output
        frames[level] = {(r["owner_name"], r["container"]): r for r in json.loads(result.stdout)}
    # high risk: never a larger CPU request or memory limit than low
    for key, low in frames["low"].items():
        high = frames["high"][key]
        for col in ("cpu_request_recommended", "memory_limit_recommended"):
            if low[col] is not None and high[col] is not None:
                assert high[col] <= low[col], (key, col)
    assert runner.invoke(app, ["recommend", *db, "--risk", "nope"]).exit_code == 2
    chosen = runner.invoke(app, ["recommend", *db, "--target-oom", "current", "--format", "csv"])
    assert chosen.exit_code == 0, chosen.output
    assert "--target-oom" in chosen.stderr and "risk " in chosen.stderr
