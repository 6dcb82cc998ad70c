"""`capplan eviction` on the bundled sample: CONTRACT columns, views, filters, options and exit codes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from capplan.cli import app

CONTRACT_COLUMNS = ["node", "rank", "namespace", "pod", "qos_class", "priority", "memory_request_bytes",
                    "memory_usage_bytes", "exceeds_request", "oom_score_adj"]


def run(runner, db: Path, *args: str):
    return runner.invoke(app, ["eviction", "--db", str(db), *args])


def rows_of(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_has_the_contract_columns_in_order(runner, sample_db_readonly: Path) -> None:
    result = run(runner, sample_db_readonly, "-f", "csv")
    assert result.exit_code == 0, result.stderr
    header = next(csv.reader(io.StringIO(result.stdout)))
    assert header[:len(CONTRACT_COLUMNS)] == CONTRACT_COLUMNS
    assert {"cumulative_freed_bytes", "evicted_to_relieve", "evicted_share", "oom_kills", "restarts"} <= set(header)
    rows = rows_of(result.stdout)
    assert {r["node"] for r in rows} >= {"node-1", "node-8"}
    for r in rows:
        assert r["memory_request_bytes"].isdigit() and r["memory_usage_bytes"].isdigit()
        assert r["exceeds_request"] in ("true", "false")
        assert r["qos_class"] in ("BestEffort", "Burstable", "Guaranteed")
    node8 = [r for r in rows if r["node"] == "node-8"]
    assert [int(r["rank"]) for r in node8] == list(range(1, len(node8) + 1))
    relief = [r for r in node8 if r["evicted_to_relieve"] == "true"]
    assert len(relief) == 1 and relief[0]["rank"] == "1" and relief[0]["pod"].startswith("trainer-")


def test_json_keys_match_csv(runner, sample_db_readonly: Path) -> None:
    as_csv = run(runner, sample_db_readonly, "-f", "csv", "--node", "node-8").stdout
    as_json = json.loads(run(runner, sample_db_readonly, "-f", "json", "--node", "node-8").stdout)
    assert list(as_json[0]) == next(csv.reader(io.StringIO(as_csv)))
    assert isinstance(as_json[0]["memory_usage_bytes"], int)


def test_filters_and_output_file(runner, sample_db_readonly: Path, tmp_path: Path) -> None:
    out = tmp_path / "ev.csv"
    result = run(runner, sample_db_readonly, "-f", "csv", "-n", "web", "-n", "ml", "--node", "node-8", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    rows = rows_of(out.read_text())
    assert rows and {r["namespace"] for r in rows} <= {"web", "ml"} and {r["node"] for r in rows} == {"node-8"}


def test_views(runner, sample_db_readonly: Path) -> None:
    nodes = rows_of(run(runner, sample_db_readonly, "-f", "csv", "--view", "nodes").stdout)
    assert len(nodes) == 8
    assert [r["node"] for r in nodes if r["under_pressure"] == "true"] == ["node-8"]
    containers = rows_of(run(runner, sample_db_readonly, "-f", "csv", "--view", "containers", "--node", "node-8").stdout)
    scores = {(r["pod"].split("-")[0], r["container"]): int(r["oom_score_adj"]) for r in containers}
    # trainer: Burstable, 1Gi request on a 16Gi node -> 1000 - 62 = 938; postgres Guaranteed -997;
    # node-exporter is system-node-critical -> -997
    assert scores[("trainer", "trainer")] == 938
    assert scores[("postgres", "postgres")] == -997
    assert scores[("node", "node-exporter")] == -997
    advice = rows_of(run(runner, sample_db_readonly, "-f", "csv", "--view", "advice").stdout)
    assert any("OOM-killed at its limit 512Mi" in r["advice"] for r in advice)


def test_table_prints_the_explanation(runner, sample_db_readonly: Path) -> None:
    result = run(runner, sample_db_readonly, "--node", "node-8")
    assert result.exit_code == 0, result.stderr
    assert "node-8 is under memory pressure" in result.stdout


def test_usage_basis_and_thresholds(runner, sample_db_readonly: Path) -> None:
    latest = rows_of(run(runner, sample_db_readonly, "-f", "csv", "--usage", "latest", "--node", "node-8").stdout)
    assert {r["usage_basis"] for r in latest} == {"latest"}
    # a 1Gi hard threshold on node-8 needs more evictions than 100Mi
    hard = rows_of(run(runner, sample_db_readonly, "-f", "csv", "--eviction-hard", "1Gi", "--node", "node-8").stdout)
    assert sum(r["evicted_to_relieve"] == "true" for r in hard) == 1  # one trainer frees ~3.4Gi > 1Gi - 24Mi
    hard = rows_of(run(runner, sample_db_readonly, "-f", "csv", "--eviction-hard", "25%", "--node", "node-8").stdout)
    # 25% of 16Gi = 4Gi: need 4Gi - 24.3Mi, the first trainer (3.4Gi) is not enough -> two
    assert sum(r["evicted_to_relieve"] == "true" for r in hard) == 2


def test_priority_classes_file(runner, sample_db_readonly: Path, tmp_path: Path) -> None:
    path = tmp_path / "pc.json"
    path.write_text(json.dumps({"items": [{"metadata": {"name": "web-critical"}, "value": 1000},
                                          {"metadata": {"name": "data-critical"}, "value": 100000}]}))
    rows = rows_of(run(runner, sample_db_readonly, "-f", "csv", "--node", "node-8", "--priority-classes", str(path),
                       "--priority", "data-critical=7").stdout)
    prio = {r["pod"].split("-")[0]: int(r["priority"]) for r in rows}
    assert prio["api"] == 1000 and prio["postgres"] == 7 and prio["trainer"] == 0


def test_bad_input_is_one_line_exit_4_bad_options_exit_2(runner, sample_db_readonly: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    for args, code in ((["--priority", "web-critical"], 2), (["--priority", "web-critical=high"], 2),
                       (["--priority-classes", str(bad)], 4), (["--priority-classes", str(tmp_path / "missing.json")], 4),
                       (["--eviction-hard", "lots"], 2), (["--eviction-soft", "200%"], 2), (["--window", "fortnight"], 2)):
        result = run(runner, sample_db_readonly, *args)
        assert result.exit_code == code, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_wrong_usage_is_exit_2(runner, sample_db_readonly: Path) -> None:
    for args in (["--usage", "mean"], ["--view", "everything"], ["--format", "xml"]):
        result = run(runner, sample_db_readonly, *args)
        assert result.exit_code == 2, (args, result.stderr)


def test_missing_database_is_exit_6(runner, tmp_path: Path) -> None:
    assert run(runner, tmp_path / "none.duckdb").exit_code == 6


def test_report_json_has_the_eviction_sections(runner, sample_db_readonly: Path) -> None:
    result = runner.invoke(app, ["report", "--db", str(sample_db_readonly), "-f", "json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert {"eviction_nodes", "eviction", "eviction_advice"} <= set(data)
    assert [r["node"] for r in data["eviction_nodes"] if r["under_pressure"]] == ["node-8"]


def test_qos_view_lists_every_pod_of_the_window(runner, sample_db_readonly: Path) -> None:
    import duckdb

    rows = rows_of(run(runner, sample_db_readonly, "-f", "csv", "--view", "qos").stdout)
    con = duckdb.connect(str(sample_db_readonly), read_only=True)
    try:
        pods = con.execute("SELECT count(DISTINCT namespace || '/' || pod) FROM pods").fetchone()[0]
        reported = dict(con.execute("SELECT namespace || '/' || pod, any_value(qos_class) FROM pods GROUP BY 1").fetchall())
    finally:
        con.close()
    assert len(rows) == pods
    # the sample's reported classes agree with capplan's own computation
    assert all(r["qos_class"] == reported[f"{r['namespace']}/{r['pod']}"] for r in rows)
    assert not any(r["qos_mismatch"] == "true" for r in rows)
    besteffort = [r for r in rows if r["qos_class"] == "BestEffort"]
    assert besteffort and all(r["oom_score_adj"] == "1000" for r in besteffort)


def test_namespace_filter_keeps_the_node_advice(runner, sample_db_readonly: Path) -> None:
    rows = rows_of(run(runner, sample_db_readonly, "-f", "csv", "--view", "advice", "-n", "web").stdout)
    # the node-wide line still names the ml pod the kubelet would evict; pod lines are web only
    assert any(r["namespace"] == "" and "ml/trainer-" in r["advice"] for r in rows)
    assert {r["namespace"] for r in rows if r["namespace"]} == {"web"}
