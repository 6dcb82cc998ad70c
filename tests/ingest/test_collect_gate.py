"""The collector passes the same gate, against a real Prometheus (promtool-backfilled, served on
127.0.0.1): a chunk with impossible usage is refused (exit 4, the data tables as they were), and
collecting with and without kube-state-metrics stores each container once.

A tiny hand-written cluster so every expected value is known: node n1 (4 cores, 8 GiB); in
namespace `shop` pod web-1 using 0.5 cores and 100 MiB; in `milli` pod m-1 whose CPU counter
grows 250 s per second (250 cores: millicores written as cores); in `huge` pod h-1 reporting a
1e19-byte working set.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import polars as pl
import pytest

from capplan.cli import app
from tests.ingest.conftest import TABLES
from tests.promharness import KSM_TARGET, PrometheusServer, Series, _cadvisor_labels, build_tsdb, missing_binaries

T0 = datetime(2026, 11, 10, 0, 0)
E0 = int(T0.replace(tzinfo=UTC).timestamp())
GRID = E0 + np.arange(0, 2 * 3600 + 1, 60)
END = (T0 + timedelta(hours=2)).isoformat()
MI = 2**20
PODS = {"web-1": ("shop", 0.5, 100.0 * MI), "m-1": ("milli", 250.0, 100.0 * MI), "h-1": ("huge", 0.1, 1e19)}


def _gauge(name: str, labels: dict, value: float) -> Series:
    return Series(name, {**KSM_TARGET, **labels}, GRID, np.full(len(GRID), float(value)))


def cluster(*, ksm: bool, node_label: bool) -> list[Series]:
    out: list[Series] = []
    if ksm:
        for kind in ("capacity", "allocatable"):
            out.append(_gauge(f"kube_node_status_{kind}", {"node": "n1", "resource": "cpu", "unit": "core"}, 4))
            out.append(_gauge(f"kube_node_status_{kind}", {"node": "n1", "resource": "memory", "unit": "byte"}, 8 * 2**30))
            out.append(_gauge(f"kube_node_status_{kind}", {"node": "n1", "resource": "pods", "unit": "integer"}, 110))
    for pod, (ns, cores, memory) in PODS.items():
        base = {"namespace": ns, "pod": pod, "uid": f"uid-{pod}"}
        if ksm:
            out.append(_gauge("kube_pod_info", {**base, "node": "n1", "created_by_kind": "<none>",
                                                "created_by_name": "<none>", "priority_class": "", "host_ip": "10.0.0.1",
                                                "pod_ip": "10.1.0.1", "host_network": "false"}, 1))
            out.append(_gauge("kube_pod_status_phase", {**base, "phase": "Running"}, 1))
            out.append(_gauge("kube_pod_container_info", {**base, "container": "app", "image": "x:1", "image_id": "",
                                                          "container_id": "c"}, 1))
            out.append(_gauge("kube_pod_container_resource_requests", {**base, "container": "app", "node": "n1",
                                                                       "resource": "cpu", "unit": "core"}, 0.25))
        labels = _cadvisor_labels(ns, pod, "app", "n1", "Burstable")
        if not node_label:
            labels.pop("node")
        out.append(Series("container_cpu_usage_seconds_total", {**labels, "cpu": "total"}, GRID,
                          10.0 + cores * (GRID - GRID[0]), kind="counter"))
        out.append(Series("container_memory_working_set_bytes", labels, GRID, np.full(len(GRID), memory)))
    return out


@pytest.fixture(scope="module")
def proms(tmp_path_factory):
    reason = missing_binaries()
    if reason:
        pytest.fail(reason)  # CI installs prometheus: its absence is a failure, not a skip
    root = tmp_path_factory.mktemp("gate-prom")
    build_tsdb(cluster(ksm=True, node_label=True), root / "full")
    build_tsdb(cluster(ksm=False, node_label=False), root / "bare")
    with PrometheusServer(root / "full") as full, PrometheusServer(root / "bare") as bare:
        yield {"full": full, "bare": bare}


def _collect(runner, url: str, db, *namespaces: str, start: str | None = T0.isoformat()):
    args = ["collect", "--prometheus-url", url, "--db", str(db), "--step", "5m", "--end", END]
    if start:
        args += ["--start", start]
    for ns in namespaces:
        args += ["--namespace", ns]
    return runner.invoke(app, args)


def _counts(db) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    finally:
        con.close()


@pytest.mark.parametrize(("namespace", "column", "reason"), [
    ("milli", "cpu_cores", r"cpu_cores 250 on a 4-core node n1: millicores written as cores\?"),
    ("huge", "memory_bytes", r"1e\+19 is above"),
])
def test_impossible_usage_from_prometheus_is_refused(proms, runner, tmp_path, namespace, column, reason) -> None:
    db = tmp_path / "c.duckdb"
    first = _collect(runner, proms["full"].url, db, "shop")
    assert first.exit_code == 0, first.stderr
    before = _counts(db)
    bad = _collect(runner, proms["full"].url, db, namespace, start=None)
    assert bad.exit_code == 4, (bad.exit_code, bad.stderr)
    line = bad.stderr.strip().splitlines()[-1]
    assert line.startswith("capplan: "), line
    assert f": {column}: " in line and f"{namespace}/" in line, line
    assert pl.Series([line]).str.contains(reason).item(), line
    assert _counts(db) == before


def test_collecting_without_kube_state_metrics_adds_no_second_series(proms, runner, tmp_path) -> None:
    db = tmp_path / "c.duckdb"
    assert _collect(runner, proms["full"].url, db, "shop").exit_code == 0
    namespaces = runner.invoke(app, ["namespaces", "--db", str(db), "-f", "csv"])
    assert namespaces.exit_code == 0, namespaces.stderr
    before = _counts(db)
    again = _collect(runner, proms["bare"].url, db, "shop")
    assert again.exit_code == 0, again.stderr
    after = _counts(db)
    assert after["series"] == before["series"] == 1
    assert after["usage_samples"] == before["usage_samples"]
    assert runner.invoke(app, ["namespaces", "--db", str(db), "-f", "csv"]).stdout == namespaces.stdout
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT node FROM series").fetchone()[0] == "n1"  # the node is not forgotten


def test_collecting_without_kube_state_metrics_into_a_new_db_shows_unknown(proms, runner, tmp_path) -> None:
    db = tmp_path / "bare.duckdb"
    assert _collect(runner, proms["bare"].url, db, "shop").exit_code == 0
    ns = runner.invoke(app, ["namespaces", "--db", str(db), "-f", "csv"])
    assert ns.exit_code == 0, ns.stderr
    row = pl.read_csv(ns.stdout.encode(), infer_schema_length=None).row(0, named=True)
    assert row["namespace"] == "shop" and row["cpu_requests_cores"] is None and row["memory_requests_bytes"] is None
    rec = runner.invoke(app, ["recommend", "--db", str(db), "-f", "csv", "--min-history", "1h"])
    assert rec.exit_code == 0, rec.stderr
    for r in pl.read_csv(rec.stdout.encode(), infer_schema_length=None).iter_rows(named=True):
        assert r["qos_class_current"] is None, r
