"""The CLI surface of CONTRACT.md: commands listed, output formats, exit codes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from capplan.cli import app

CONTRACT_COMMANDS = ["collect", "import", "report", "nodes", "namespaces", "fit", "eviction", "recommend",
                     "backtest", "forecast", "serve"]
NODES_COLUMNS = (
    "node,cpu_capacity_cores,cpu_allocatable_cores,cpu_requests_cores,cpu_limits_cores,cpu_usage_p95_cores,"
    "memory_capacity_bytes,memory_allocatable_bytes,memory_requests_bytes,memory_limits_bytes,"
    "memory_usage_p95_bytes,pods,pods_allocatable,cpu_request_ratio,cpu_limit_ratio,memory_request_ratio,"
    "memory_limit_ratio,cpu_headroom_cores,memory_headroom_bytes,reserved_ok"
).split(",")


def test_help_lists_every_contract_command(runner) -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in CONTRACT_COMMANDS:
        assert command in result.stdout


def test_nodes_csv_has_the_contract_columns_and_integer_bytes(runner, sample_db_readonly: Path) -> None:
    result = runner.invoke(app, ["nodes", "--db", str(sample_db_readonly), "--format", "csv"])
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert set(NODES_COLUMNS) <= set(rows[0])
    assert len(rows) == 8
    for row in rows:
        assert row["memory_allocatable_bytes"].isdigit()
        assert row["reserved_ok"] in ("true", "false")


def test_json_has_the_same_keys_as_csv(runner, sample_db_readonly: Path) -> None:
    as_csv = runner.invoke(app, ["nodes", "--db", str(sample_db_readonly), "-f", "csv"]).stdout
    as_json = json.loads(runner.invoke(app, ["nodes", "--db", str(sample_db_readonly), "-f", "json"]).stdout)
    assert list(as_json[0]) == next(csv.reader(io.StringIO(as_csv)))


def test_output_file(runner, sample_db_readonly: Path, tmp_path: Path) -> None:
    out = tmp_path / "nodes.csv"
    result = runner.invoke(app, ["nodes", "--db", str(sample_db_readonly), "-f", "csv", "-o", str(out)])
    assert result.exit_code == 0
    assert out.read_text().startswith("node,")


def test_missing_database_is_exit_6(runner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", "--db", str(tmp_path / "none.duckdb")])
    assert result.exit_code == 6
    assert "no database" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_empty_database_is_exit_6(runner, tmp_path: Path) -> None:
    from capplan import store

    store.open_db(tmp_path / "empty.duckdb").close()
    result = runner.invoke(app, ["nodes", "--db", str(tmp_path / "empty.duckdb")])
    assert result.exit_code == 6


def test_wrong_format_is_usage_exit_2(runner, sample_db_readonly: Path) -> None:
    result = runner.invoke(app, ["nodes", "--db", str(sample_db_readonly), "--format", "xml"])
    assert result.exit_code == 2
    assert "--format" in result.stderr


def test_bad_window_is_exit_2_naming_the_value(runner, sample_db_readonly: Path) -> None:
    result = runner.invoke(app, ["nodes", "--db", str(sample_db_readonly), "--window", "fortnight"])
    assert result.exit_code == 2  # an option value that makes no sense is wrong usage (issue 13)
    assert "fortnight" in result.stderr
    assert "Traceback" not in result.stderr


def test_import_of_a_missing_path_is_exit_4(runner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["import", str(tmp_path / "nope"), "--db", str(tmp_path / "db.duckdb")])
    assert result.exit_code == 4
    assert not (tmp_path / "db.duckdb").exists()


def test_report_opens_act_first_and_full_prints_every_section(runner, sample_db_readonly: Path) -> None:
    result = runner.invoke(app, ["report", "--db", str(sample_db_readonly)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("Act on these") and "node-8" in result.stdout and "Summary" in result.stdout
    assert "Cluster" not in result.stdout  # the sections wait for --full
    full = runner.invoke(app, ["report", "--db", str(sample_db_readonly), "--full"])
    assert full.exit_code == 0, full.stderr
    assert full.stdout.startswith("Act on these")
    for title in ("Cluster", "Nodes", "N-1", "Eviction advice", "Recommendations", "Forecast", "Rollout headroom"):
        assert title in full.stdout, title
