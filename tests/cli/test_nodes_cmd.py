"""`capplan nodes`, `capplan namespaces`, `capplan fit` from the command line: columns, the TOTAL
row, taints, replicas, and exit codes for bad input."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from capplan import store
from capplan.cli import app
from tests.analysis.cluster_builder import GiB, build_store, hand_cluster


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture(scope="module")
def hand_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    nodes, pods, containers, usage = hand_cluster()
    nodes[2]["taints"] = json.dumps([{"key": "dedicated", "value": "batch", "effect": "NoSchedule"}])
    quotas = [{"namespace": "web", "quota": "q", "resource": "requests.cpu", "hard": 3.0}]
    return build_store(tmp_path_factory.mktemp("cli") / "hand.duckdb", nodes, pods, containers, usage, quotas)


def test_fit_csv_per_node_and_total(runner, hand_db: Path) -> None:
    # free: node-a 2.4 cores / 11Gi, node-b 1.3 / 13Gi - 4.625Gi = 8.375Gi, node-c tainted (1.9 / 7.875Gi)
    result = runner.invoke(app, ["fit", "--db", str(hand_db), "--cpu", "500m", "--memory", "2Gi", "-f", "csv"])
    assert result.exit_code == 0, result.stderr
    got = {r["node"]: r for r in rows(result.stdout)}
    assert list(got) == ["node-a", "node-b", "node-c", "TOTAL"]
    assert (got["node-a"]["fits"], got["node-a"]["limited_by"]) == ("4", "cpu")      # 2.4 / 0.5 -> 4; 11Gi / 2Gi -> 5
    assert (got["node-b"]["fits"], got["node-b"]["limited_by"]) == ("2", "cpu")      # 1.3 / 0.5 -> 2; 8.375 / 2 -> 4
    assert got["node-c"]["fits"] == "0" and got["node-c"]["excluded_by"] == "dedicated=batch:NoSchedule"
    assert got["TOTAL"]["fits"] == "6"
    assert got["node-a"]["memory_free_bytes"] == str(11 * GiB)
    tolerated = runner.invoke(app, ["fit", "--db", str(hand_db), "--cpu", "500m", "--memory", "2Gi", "-f", "csv",
                                    "--tolerate", "dedicated"])
    got = {r["node"]: r for r in rows(tolerated.stdout)}
    # node-c: 2 - 0.1 = 1.9 cores -> 3; 8Gi - 128Mi = 7.875Gi -> 3; tie -> cpu
    assert (got["node-c"]["fits"], got["node-c"]["limited_by"]) == ("3", "cpu")
    assert got["TOTAL"]["fits"] == "9"


def test_fit_limited_by_memory_and_replicas(runner, hand_db: Path) -> None:
    result = runner.invoke(app, ["fit", "--db", str(hand_db), "--cpu", "100m", "--memory", "4Gi", "--replicas", "5",
                                 "-f", "json"])
    assert result.exit_code == 0, result.stderr
    got = {r["node"]: r for r in json.loads(result.stdout)}
    assert (got["node-a"]["fits"], got["node-a"]["limited_by"]) == (2, "memory")    # 11Gi / 4Gi
    assert (got["node-b"]["fits"], got["node-b"]["limited_by"]) == (2, "memory")    # 8.375Gi / 4Gi
    assert [got[n]["placed"] for n in ("node-a", "node-b", "node-c", "TOTAL")] == [2, 2, 0, 4]
    assert "only 4 of 5 replicas fit: node-a x2, node-b x2" in result.stderr


def test_fit_limited_by_pods(runner, tmp_path: Path) -> None:
    nodes, pods, containers, usage = hand_cluster()
    for n in nodes:
        n["pods_allocatable"] = 3
    path = build_store(tmp_path / "pods.duckdb", nodes, pods, containers, usage)
    result = runner.invoke(app, ["fit", "--db", str(path), "--cpu", "10m", "-f", "csv"])
    got = {r["node"]: r for r in rows(result.stdout)}
    assert (got["node-a"]["fits"], got["node-a"]["limited_by"]) == ("1", "pods")    # 3 slots - 2 pods
    assert (got["node-c"]["fits"], got["node-c"]["limited_by"]) == ("2", "pods")
    assert got["node-a"]["fits_by_memory"] == ""                                    # no memory asked: unbounded
    assert got["TOTAL"]["fits"] == "4" and got["TOTAL"]["limited_by"] == "pods"


@pytest.mark.parametrize("args,code,words", [
    (["--cpu", "lots"], 2, "lots"),  # option values that make no sense: usage (issue 13)
    ([], 2, "--cpu"),
    (["--cpu", "1", "--tolerate", "k:Sometimes"], 2, "effect"),
    (["--cpu", "-1"], 2, "negative"),
])
def test_fit_bad_input(runner, hand_db: Path, args, code, words) -> None:
    result = runner.invoke(app, ["fit", "--db", str(hand_db), *args])
    assert result.exit_code == code
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_fit_on_an_empty_store_is_exit_6(runner, tmp_path: Path) -> None:
    store.open_db(tmp_path / "e.duckdb").close()
    assert runner.invoke(app, ["fit", "--db", str(tmp_path / "e.duckdb"), "--cpu", "1"]).exit_code == 6


def test_nodes_has_class_and_risk_columns(runner, hand_db: Path) -> None:
    result = runner.invoke(app, ["nodes", "--db", str(hand_db), "-f", "csv", "--low", "5", "--high", "50"])
    assert result.exit_code == 0, result.stderr
    got = {r["node"]: r for r in rows(result.stdout)}
    # node-a: cpu 1.5/3.9 = 38% -> neither; node-c: cpu 5%, memory 1.6%, pods 0.9% -> under 5%
    assert got["node-a"]["utilization_class"] == "ok" and got["node-c"]["utilization_class"] == "under"
    assert got["node-a"]["cpu_limits_cores"] == "inf" and got["node-a"]["memory_limits_bytes"] == "inf"
    assert got["node-a"]["cpu_usage_p99_cores"] != "" and "memory_pressure_day_probability" in got["node-a"]
    assert got["node-c"]["reserved_ok"] == "false" and got["node-b"]["reserved_ok"] == "true"
    bad = runner.invoke(app, ["nodes", "--db", str(hand_db), "--low", "60", "--high", "50"])
    assert bad.exit_code == 2 and "--low" in bad.stderr


def test_namespaces_csv_and_filter(runner, hand_db: Path) -> None:
    result = runner.invoke(app, ["namespaces", "--db", str(hand_db), "-f", "csv"])
    assert result.exit_code == 0, result.stderr
    got = {r["namespace"]: r for r in rows(result.stdout)}
    assert set(got) == {"data", "monitoring", "web"}
    assert float(got["web"]["cpu_requests_cores"]) == pytest.approx(1.75)
    assert float(got["web"]["quota_cpu_requests_used_ratio"]) == pytest.approx(1.75 / 3)
    assert got["data"]["quota_cpu_requests_cores"] == ""
    only = runner.invoke(app, ["namespaces", "--db", str(hand_db), "-f", "json", "-n", "data"])
    assert [r["namespace"] for r in json.loads(only.stdout)] == ["data"]
    missing = runner.invoke(app, ["namespaces", "--db", str(hand_db), "-n", "nope"])
    assert missing.exit_code == 6


def test_table_output_on_the_sample(runner, sample_db_readonly: Path, tmp_path: Path) -> None:
    for args, word in ((["nodes"], "node-8"), (["namespaces"], "monitoring"),
                       (["fit", "--cpu", "500m", "--memory", "1Gi", "--replicas", "3"], "TOTAL")):
        out = tmp_path / "table.txt"
        result = runner.invoke(app, [*args, "--db", str(sample_db_readonly), "-o", str(out)])
        assert result.exit_code == 0, (args, result.stderr)
        assert word in out.read_text()


def test_cluster_csv(runner, hand_db: Path) -> None:
    result = runner.invoke(app, ["cluster", "--db", str(hand_db), "-f", "csv"])
    assert result.exit_code == 0, result.stderr
    got = {r["resource"]: r for r in rows(result.stdout)}
    assert list(got) == ["cpu", "memory", "pods"]
    assert got["cpu"]["requests"] == "4.2" and got["cpu"]["limits"] == "inf" and got["cpu"]["n1_holds"] == "true"


def test_fit_with_a_namespace_quota(runner, hand_db: Path) -> None:
    # web: requests.cpu hard 3, used 1 + 0.5 + 0.25 (Pending p4) = 1.75 -> 1.25 left -> two 500m pods
    result = runner.invoke(app, ["fit", "--db", str(hand_db), "--cpu", "500m", "--memory", "2Gi", "-n", "web",
                                 "--replicas", "3", "-f", "csv"])
    assert result.exit_code == 0, result.stderr
    total = rows(result.stdout)[-1]
    assert (total["node"], total["fits"], total["quota_fits"], total["quota_limited_by"]) == ("TOTAL", "6", "2", "requests.cpu")
    assert "ResourceQuota admits only 2 (requests.cpu)" in result.stderr
    no_quota = rows(runner.invoke(app, ["fit", "--db", str(hand_db), "--cpu", "500m", "-n", "data", "-f", "csv"]).stdout)
    assert no_quota[-1]["quota_fits"] == ""


def test_node_filter(runner, hand_db: Path) -> None:
    result = runner.invoke(app, ["nodes", "--db", str(hand_db), "-f", "csv", "--node", "node-b"])
    assert [r["node"] for r in rows(result.stdout)] == ["node-b"]
    assert runner.invoke(app, ["nodes", "--db", str(hand_db), "--node", "nope"]).exit_code == 6
    assert runner.invoke(app, ["fit", "--db", str(hand_db), "--cpu", "1", "--node", "nope"]).exit_code == 6
