"""Per-node overcommit on a hand-worked cluster (numbers written out), the reservation guideline,
cluster totals, and the bundled sample against sums computed independently from its source frames."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from capplan import store
from capplan.analysis.nodes import cluster_summary, node_overcommit, nodes_report
from capplan.errors import NoDataError
from capplan.reservation import (
    CPU_RESERVE_TIERS,
    HARD_EVICTION_BYTES,
    MEMORY_RESERVE_TIERS,
    recommended_reservation,
    tiered_reservation,
)
from tests.analysis.cluster_builder import GiB, MiB, build_store, hand_cluster, node


@pytest.fixture(scope="module")
def hand_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    nodes, pods, containers, usage = hand_cluster()
    return build_store(tmp_path_factory.mktemp("hand") / "hand.duckdb", nodes, pods, containers, usage)


@pytest.fixture(scope="module")
def table(hand_db: Path) -> pl.DataFrame:
    con = store.open_db(hand_db, read_only=True)
    try:
        return nodes_report(con, timedelta(days=14))
    finally:
        con.close()


def row(table: pl.DataFrame, name: str) -> dict:
    return table.filter(pl.col("node") == name).row(0, named=True)


def test_requests_limits_and_unlimited_containers(table) -> None:
    a = row(table, "node-a")
    assert a["pods"] == 2
    assert a["cpu_requests_cores"] == pytest.approx(1.5)                  # 1 + 0.5
    assert a["memory_requests_bytes"] == 3 * GiB                          # 2Gi + 1Gi
    assert math.isinf(a["cpu_limits_cores"]) and math.isinf(a["memory_limits_bytes"])  # p2 has no limits
    assert a["cpu_limits_set_cores"] == pytest.approx(2.0) and a["memory_limits_set_bytes"] == 4 * GiB
    assert a["cpu_unlimited_containers"] == 1 and a["memory_unlimited_containers"] == 1
    assert a["cpu_request_ratio"] == pytest.approx(1.5 / 3.9)
    assert math.isinf(a["cpu_limit_ratio"])
    assert a["cpu_headroom_cores"] == pytest.approx(2.4)                  # 3.9 - 1.5
    assert a["memory_headroom_bytes"] == 11 * GiB                         # 14Gi - 3Gi
    b = row(table, "node-b")
    assert b["pods"] == 2
    assert b["cpu_requests_cores"] == pytest.approx(2.6)                  # 2 + 0.5 sidecar + 0.1 DaemonSet
    assert b["memory_requests_bytes"] == 4 * GiB + 512 * MiB + 128 * MiB
    assert b["cpu_limits_cores"] == pytest.approx(2.6)                    # every container has limits
    assert b["memory_limits_bytes"] == 4 * GiB + 640 * MiB
    assert b["cpu_unlimited_containers"] == 0
    c = row(table, "node-c")
    assert c["pods"] == 1                                                 # the Succeeded pod does not count
    assert c["cpu_requests_cores"] == pytest.approx(0.1)


def test_usage_percentiles_and_physical_headroom(table) -> None:
    a = row(table, "node-a")
    # sums per timestamp 1,2,3,4,5 (cores and GiB); linear interpolation: p95 at rank 3.8, p99 at 3.96
    assert a["cpu_usage_p50_cores"] == pytest.approx(3.0)
    assert a["cpu_usage_p95_cores"] == pytest.approx(4.8)
    assert a["cpu_usage_p99_cores"] == pytest.approx(4.96)
    assert a["cpu_usage_max_cores"] == pytest.approx(5.0)
    assert a["memory_usage_p95_bytes"] == pytest.approx(4.8 * GiB, rel=1e-9)
    assert a["cpu_physical_headroom_cores"] == pytest.approx(3.9 - 4.96)        # negative: usage above allocatable
    assert a["memory_physical_headroom_bytes"] == pytest.approx(14 * GiB - 4.96 * GiB, rel=1e-9)
    assert a["usage_points"] == 5
    assert row(table, "node-b")["cpu_usage_p95_cores"] == pytest.approx(0.05, rel=1e-6)
    assert row(table, "node-c")["cpu_usage_p95_cores"] is None                   # no samples on node-c


def test_reservation_guideline(table) -> None:
    # 4 cores: 6% of 1 + 1% of 1 + 0.5% of 2 = 0.08; 16Gi: 25% of 4 + 20% of 4 + 10% of 8 = 2.6Gi, + 100Mi
    cpu, memory = recommended_reservation(4.0, 16 * GiB)
    assert cpu == pytest.approx(0.08)
    assert memory == pytest.approx(2.6 * GiB + 100 * MiB)
    # 8 cores: + 0.25% of 4 = 0.09; 32Gi: 2.6Gi + 6% of 16Gi = 3.56Gi; 256Gi: 3.56 + 6% of 112 + 2% of 128
    assert tiered_reservation(8.0, CPU_RESERVE_TIERS) == pytest.approx(0.09)
    assert tiered_reservation(32 * GiB, MEMORY_RESERVE_TIERS) == pytest.approx(3.56 * GiB)
    assert tiered_reservation(256 * GiB, MEMORY_RESERVE_TIERS) == pytest.approx((2.6 + 6.72 + 2.56) * GiB)
    assert recommended_reservation(1.0, 512 * MiB)[1] == 255 * MiB + HARD_EVICTION_BYTES  # below 1Gi: 255Mi
    a, b, c = row(table, "node-a"), row(table, "node-b"), row(table, "node-c")
    assert a["memory_reserved_bytes"] == 2 * GiB and not a["reserved_ok"]    # 2Gi < 2.6Gi + 100Mi
    assert b["memory_reserved_bytes"] == 3 * GiB and b["cpu_reserved_cores"] == pytest.approx(0.1)
    assert b["reserved_ok"]                                                  # 3Gi >= 2.6Gi + 100Mi, 0.1 >= 0.08
    assert c["cpu_reserved_cores"] == 0 and not c["reserved_ok"]             # nothing reserved


def test_cluster_summary_totals(table) -> None:
    s = {r["resource"]: r for r in cluster_summary(table).iter_rows(named=True)}
    assert s["cpu"]["allocatable"] == pytest.approx(9.8)                     # 3.9 + 3.9 + 2
    assert s["cpu"]["requests"] == pytest.approx(4.2)                        # 1.5 + 2.6 + 0.1
    assert math.isinf(s["cpu"]["limits"])
    assert s["memory"]["allocatable"] == 35 * GiB                            # 14 + 13 + 8
    assert s["memory"]["requests"] == 7.5 * GiB + 256 * MiB                  # 3Gi + 4.625Gi + 128Mi
    assert s["memory"]["headroom"] == 35 * GiB - (7.5 * GiB + 256 * MiB)
    assert s["pods"]["allocatable"] == 330 and s["pods"]["requests"] == 5
    assert s["cpu"]["request_ratio"] == pytest.approx(4.2 / 9.8)


def test_spec_only_store_still_answers(tmp_path: Path) -> None:
    nodes, pods, containers, _ = hand_cluster()
    path = build_store(tmp_path / "spec.duckdb", nodes, pods, containers)
    con = store.open_db(path, read_only=True)
    try:
        t = nodes_report(con)
    finally:
        con.close()
    assert t.height == 3
    assert row(t, "node-a")["cpu_requests_cores"] == pytest.approx(1.5)
    assert t["cpu_usage_p95_cores"].null_count() == 3


def test_empty_store_is_no_data(tmp_path: Path) -> None:
    store.open_db(tmp_path / "empty.duckdb").close()
    con = store.open_db(tmp_path / "empty.duckdb", read_only=True)
    try:
        with pytest.raises(NoDataError):
            nodes_report(con)
    finally:
        con.close()


def test_node_overcommit_is_a_pure_function_of_frames() -> None:
    nodes = pl.DataFrame([node("n", 2.0, 4 * GiB, 1.8, 3 * GiB)]).drop("valid_from", "valid_to")
    pods = pl.DataFrame({"node": ["n", "n"], "cpu_request_cores": [0.5, 0.25], "cpu_limit_cores": [1.0, 0.5],
                         "memory_request_bytes": [1.0 * GiB, 0.5 * GiB], "memory_limit_bytes": [2.0 * GiB, 1.0 * GiB],
                         "cpu_unlimited_containers": [0, 0], "memory_unlimited_containers": [0, 0]})
    r = node_overcommit(nodes, pods).row(0, named=True)
    assert r["cpu_limits_cores"] == pytest.approx(1.5) and r["cpu_limit_ratio"] == pytest.approx(1.5 / 1.8)
    assert r["memory_headroom_bytes"] == 1.5 * GiB                            # 3Gi - 1.5Gi
    assert r["cpu_usage_p95_cores"] is None                                   # no usage given


def test_sample_per_node_sums_equal_the_source_frames(sample_cluster, sample_db_readonly) -> None:
    """Requests, limits (unbounded where a running container has none) and pod counts per node,
    computed in plain Python from the generator's frames for the pods alive at the window's end."""
    f = sample_cluster.frames
    end = sample_cluster.end
    alive = {(r["namespace"], r["pod"]): r["node"] for r in f["pods"].iter_rows(named=True)
             if r["valid_from"] <= end <= r["valid_to"] and r["phase"] in ("Running", "Pending")}
    run: dict = defaultdict(lambda: defaultdict(float))
    inits: dict = defaultdict(list)
    sidecars: dict = defaultdict(list)
    for r in f["containers"].iter_rows(named=True):
        key = (r["namespace"], r["pod"])
        if key not in alive or not (r["valid_from"] <= end <= r["valid_to"]):
            continue
        vals = {"cpu_req": r["cpu_request_cores"] if r["cpu_request_cores"] is not None else r["cpu_limit_cores"],
                "mem_req": r["memory_request_bytes"] if r["memory_request_bytes"] is not None else r["memory_limit_bytes"],
                "cpu_lim": r["cpu_limit_cores"], "mem_lim": r["memory_limit_bytes"]}
        if r["init_container"] and not r["restartable"]:
            inits[key].append((r["init_order"], vals))
            continue
        if r["restartable"]:
            sidecars[key].append((r["init_order"], vals))
        for k, v in vals.items():
            run[key][k] += v or 0.0
        run[key]["cpu_unlimited"] += r["cpu_limit_cores"] is None
        run[key]["mem_unlimited"] += r["memory_limit_bytes"] is None
    expected: dict = defaultdict(lambda: defaultdict(float))
    for key, node_name in alive.items():
        for k in ("cpu_req", "mem_req", "cpu_lim", "mem_lim"):
            moments = [(v[k] or 0.0) + sum(s[k] or 0.0 for o, s in sidecars[key] if o < order)
                       for order, v in inits[key]]
            expected[node_name][k] += max([run[key][k]] + moments)
        expected[node_name]["cpu_unlimited"] += run[key]["cpu_unlimited"]
        expected[node_name]["mem_unlimited"] += run[key]["mem_unlimited"]
        expected[node_name]["pods"] += 1
    con = store.open_db(sample_db_readonly, read_only=True)
    try:
        t = nodes_report(con, timedelta(days=14))
    finally:
        con.close()
    assert sorted(t["node"]) == sorted(f["nodes"]["node"])
    for r in t.iter_rows(named=True):
        want = expected[r["node"]]
        assert r["pods"] == want["pods"]
        assert r["cpu_requests_cores"] == pytest.approx(want["cpu_req"])
        assert r["memory_requests_bytes"] == pytest.approx(want["mem_req"])
        assert r["cpu_limits_set_cores"] == pytest.approx(want["cpu_lim"])
        assert r["memory_limits_set_bytes"] == pytest.approx(want["mem_lim"])
        assert r["cpu_unlimited_containers"] == want["cpu_unlimited"]
        assert r["memory_unlimited_containers"] == want["mem_unlimited"]
        assert math.isinf(r["memory_limits_bytes"]) == (want["mem_unlimited"] > 0)
        allocatable = f["nodes"].filter(pl.col("node") == r["node"])["memory_allocatable_bytes"][0]
        assert r["memory_headroom_bytes"] == pytest.approx(allocatable - want["mem_req"])
    # what the sample is built to show: node-8 reserves nothing, the tainted node-5 is nearly empty
    assert not row(t, "node-8")["reserved_ok"]
    assert row(t, "node-5")["taints"] == "dedicated=batch:NoSchedule"
