"""Odd data from a real Prometheus: a counter reset, NaN and +Inf samples, requests changed
mid-window, a node that vanishes, a metric that disappears between runs.

A tiny hand-written cluster (so every expected value is known by construction), backfilled with
promtool and served by a real Prometheus; collected in two runs as an hourly cron would.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import duckdb
import numpy as np
import pytest

from tests import tools
from tests.promharness import KSM_TARGET, PrometheusServer, Series, _cadvisor_labels, build_tsdb
from tests.reliability._runner import integrity, snapshot

T0 = datetime(2026, 11, 10, 0, 0)
E0 = int(T0.replace(tzinfo=UTC).timestamp())
HOURS = 4
GRID = E0 + np.arange(0, HOURS * 3600 + 1, 60)          # scraped every minute
MID = E0 + 2 * 3600                                       # node n2 vanishes; run 1 ends here
RESET = E0 + 3600 + 30                                    # the web-1 CPU counter resets (restart)
REQUEST_CHANGE = E0 + 3600                                # api-1's CPU request 0.1 -> 0.2
LIMITS_END = E0 + 90 * 60                                 # kube_pod_container_resource_limits disappears
NAN_AT, INF_AT, CPU_NAN_AT = E0 + 30 * 60, E0 + 40 * 60, E0 + 20 * 60
MI = 2**20


def _gauge(name: str, labels: dict, ts: np.ndarray, value) -> Series:
    values = value(ts) if callable(value) else np.full(len(ts), float(value))
    return Series(name, {**KSM_TARGET, **labels}, ts, values)


def cluster_series() -> list[Series]:
    out: list[Series] = []
    nodes = {"n1": GRID, "n2": GRID[GRID <= MID]}
    for node, ts in nodes.items():
        for kind in ("capacity", "allocatable"):
            out.append(_gauge(f"kube_node_status_{kind}", {"node": node, "resource": "cpu", "unit": "core"}, ts, 4))
            out.append(_gauge(f"kube_node_status_{kind}", {"node": node, "resource": "memory", "unit": "byte"}, ts, 8 * 2**30))
            out.append(_gauge(f"kube_node_status_{kind}", {"node": node, "resource": "pods", "unit": "integer"}, ts, 110))
        out.append(_gauge("kube_node_labels", {"node": node, "label_kubernetes_io_hostname": node}, ts, 1))
    pods = {  # pod: (node, times alive, cpu request(ts), cpu limit)
        "web-1": ("n1", GRID, lambda t: np.full(len(t), 0.25), 1.0),
        "api-1": ("n2", GRID[GRID <= MID], lambda t: np.where(t >= REQUEST_CHANGE, 0.2, 0.1), 0.5),
        "api-2": ("n1", GRID[GRID >= MID + 300], lambda t: np.full(len(t), 0.2), 0.5),
        "bad-1": ("n1", GRID, lambda t: np.full(len(t), 0.25), 1.0),  # namespace "weird": NaN and +Inf
    }
    for pod, (node, ts, request, limit) in pods.items():
        ns = "weird" if pod == "bad-1" else "shop"
        base = {"namespace": ns, "pod": pod, "uid": f"uid-{pod}"}
        out.append(_gauge("kube_pod_info", {**base, "node": node, "created_by_kind": "<none>", "created_by_name": "<none>",
                                            "priority_class": "", "host_ip": "10.0.0.1", "pod_ip": "10.1.0.1",
                                            "host_network": "false"}, ts, 1))
        out.append(_gauge("kube_pod_owner", {**base, "owner_kind": "<none>", "owner_name": "<none>",
                                             "owner_is_controller": "<none>"}, ts, 1))
        out.append(_gauge("kube_pod_status_qos_class", {**base, "qos_class": "Burstable"}, ts, 1))
        out.append(_gauge("kube_pod_status_phase", {**base, "phase": "Running"}, ts, 1))
        ctr = {**base, "container": "app"}
        out.append(_gauge("kube_pod_container_info", {**ctr, "image": "x:1", "image_id": "", "container_id": "c"}, ts, 1))
        res = {**ctr, "node": node}
        out.append(_gauge("kube_pod_container_resource_requests", {**res, "resource": "cpu", "unit": "core"}, ts, request))
        out.append(_gauge("kube_pod_container_resource_requests", {**res, "resource": "memory", "unit": "byte"}, ts, 256 * MI))
        lts = ts[ts <= LIMITS_END]
        if len(lts):
            out.append(_gauge("kube_pod_container_resource_limits", {**res, "resource": "cpu", "unit": "core"}, lts, limit))
        labels = _cadvisor_labels(ns, pod, "app", node, "Burstable")
        # CPU: 0.5 cores, a counter; web-1 restarts at RESET (the counter starts again from 0);
        # bad-1 reports one NaN (a broken scrape).
        counter = 10.0 + 0.5 * (ts - ts[0])
        if pod == "web-1":
            counter = np.where(ts >= RESET, 0.5 * (ts - RESET), counter)
        if pod == "bad-1":
            counter = np.where(ts == CPU_NAN_AT, np.nan, counter)
        out.append(Series("container_cpu_usage_seconds_total", {**labels, "cpu": "total"}, ts, counter, kind="counter"))
        memory = np.full(len(ts), 100.0 * MI)
        if pod == "bad-1":
            memory = np.where(ts == NAN_AT, np.nan, np.where(ts == INF_AT, np.inf, memory))
        out.append(Series("container_memory_working_set_bytes", labels, ts, memory))
    return out


@pytest.fixture(scope="module")
def odd_prom(tmp_path_factory):
    tools.require("prometheus", "promtool")
    data = tmp_path_factory.mktemp("odd") / "tsdb"
    # 2-hour blocks, as a running Prometheus cuts them: a metric that stopped before the second
    # block is absent from that block's index (the label-values API is block-granular).
    build_tsdb(cluster_series(), data, max_block="2h")
    with PrometheusServer(data) as server:
        yield server


@pytest.fixture(scope="module")
def two_runs(odd_prom, forkserver, tmp_path_factory):
    db = tmp_path_factory.mktemp("odd-db") / "odd.duckdb"
    common = ["collect", "--prometheus-url", odd_prom.url, "--db", str(db), "--step", "5m", "--chunk", "1h",
              "--format", "json", "--namespace", "shop"]
    first = forkserver.run(common + ["--start", T0.isoformat(), "--end", datetime.utcfromtimestamp(MID).isoformat()])
    second = forkserver.run(common + ["--end", (T0 + timedelta(hours=HOURS)).isoformat()])
    return {"db": db, "first": first, "second": second, "common": common}


def _rows(db: Path, sql: str, params=None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _usage(db: Path, pod: str) -> list[tuple]:
    return _rows(db, "SELECT u.ts, u.cpu_cores, u.memory_bytes FROM usage_samples u JOIN series s USING (series_id) "
                     "WHERE s.pod = ? ORDER BY u.ts", [pod])


def test_both_runs_succeed_and_the_store_is_consistent(two_runs) -> None:
    for name in ("first", "second"):
        run = two_runs[name]
        assert run.code == 0, f"{name}: {run.err}"
    assert integrity(two_runs["db"]) == {"duplicate_samples": 0, "duplicate_series": 0, "orphan_samples": 0}


def test_counter_reset_gives_no_negative_or_inflated_rate(two_runs) -> None:
    rows = _usage(two_runs["db"], "web-1")
    assert len(rows) >= 40
    window = 5 * 60
    for ts, cpu, _mem in rows:
        t = int(ts.replace(tzinfo=UTC).timestamp())
        if t == E0:
            continue  # the first point has no rate: its window holds a single counter sample
        assert cpu is not None and math.isfinite(cpu), f"{ts}: cpu {cpu}"
        assert 0 <= cpu <= 0.5 + 1e-6, f"{ts}: rate {cpu} outside [0, 0.5] around a counter reset"
        # Away from the reset the rate is exactly the 0.5 cores written.
        if not (t - window <= RESET <= t + 60):
            assert cpu == pytest.approx(0.5, abs=1e-6), f"{ts}: {cpu}"


def test_nan_and_inf_samples_do_not_break_the_run_and_are_not_stored_as_numbers(odd_prom, forkserver, tmp_path) -> None:
    db = tmp_path / "weird.duckdb"
    run = forkserver.run(["collect", "--prometheus-url", odd_prom.url, "--db", str(db), "--step", "5m",
                          "--namespace", "weird", "--start", T0.isoformat(),
                          "--end", (T0 + timedelta(hours=HOURS)).isoformat()])
    assert run.code == 0, run.err
    rows = _usage(db, "bad-1")
    assert len(rows) >= 40
    for ts, cpu, mem in rows:
        t = int(ts.replace(tzinfo=UTC).timestamp())
        assert cpu is None or math.isfinite(cpu), f"{ts}: cpu {cpu}"
        assert mem is None or (isinstance(mem, int) and 0 <= mem <= 100 * MI), f"{ts}: memory {mem}"
        if not (t - 300 <= NAN_AT <= t or t - 300 <= INF_AT <= t):
            assert mem == 100 * MI, f"{ts}: {mem}"
        if t != E0 and not (t - 300 <= CPU_NAN_AT <= t + 60):  # the first point has no rate
            assert cpu == pytest.approx(0.5, abs=1e-6), f"{ts}: {cpu}"


def test_request_changed_mid_window_is_kept_as_history(two_runs) -> None:
    rows = _rows(two_runs["db"], "SELECT valid_from, valid_to, cpu_request_cores FROM containers "
                                 "WHERE pod = 'api-1' AND container = 'app' ORDER BY valid_from")
    # Consecutive intervals may split for other columns (the limit disappears later): compare
    # the request's own history.
    history = [rows[0]] + [r for prev, r in pairwise(rows) if r[2] != prev[2]]
    assert [r[2] for r in history] == pytest.approx([0.1, 0.2]), rows
    to1 = rows[rows.index(history[1]) - 1][1]
    from2 = history[1][0]
    change = datetime.utcfromtimestamp(REQUEST_CHANGE)
    # The old value holds until just before the change; the new one from the change on (5 m spec step).
    assert to1 < change <= from2 <= change + timedelta(minutes=5), rows


def test_a_vanished_node_ends_and_its_pod_with_it(two_runs) -> None:
    db = two_runs["db"]
    mid = datetime.utcfromtimestamp(MID)
    n2 = _rows(db, "SELECT max(valid_to) FROM nodes WHERE node = 'n2'")[0][0]
    n1 = _rows(db, "SELECT max(valid_to) FROM nodes WHERE node = 'n1'")[0][0]
    assert n2 is not None and mid - timedelta(minutes=10) <= n2 <= mid + timedelta(minutes=5), n2
    assert n1 >= T0 + timedelta(hours=HOURS) - timedelta(minutes=5)
    last_api1 = max(r[0] for r in _usage(db, "api-1"))
    assert last_api1 <= mid + timedelta(minutes=5)
    assert min(r[0] for r in _usage(db, "api-2")) >= mid


def test_a_metric_that_disappears_is_a_warning_not_a_failure(two_runs) -> None:
    second = two_runs["second"]
    assert second.code == 0
    assert "kube_pod_container_resource_limits" in second.err and "warning" in second.err
    # What the first run stored about limits is kept.
    limits = _rows(two_runs["db"], "SELECT count(*) FROM containers WHERE pod = 'web-1' AND cpu_limit_cores = 1.0")
    assert limits[0][0] >= 1


def test_running_again_adds_nothing(two_runs, forkserver) -> None:
    db = two_runs["db"]
    before = snapshot(db)
    again = forkserver.run(two_runs["common"] + ["--start", T0.isoformat(),
                                                 "--end", (T0 + timedelta(hours=HOURS)).isoformat()])
    assert again.code == 0, again.err
    after = snapshot(db)
    assert after["usage"] == before["usage"]
    assert integrity(db)["duplicate_samples"] == 0
