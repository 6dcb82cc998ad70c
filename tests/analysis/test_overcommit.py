"""fit, N-1, node loss, imbalance, memory-pressure risk and namespaces on hand-worked clusters
(expected numbers written out), plus a brute-force cross-check of fit and the sample's report
sections."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from capplan import store
from capplan.analysis.fit import fit_pods, fit_report, fit_summary, quota_room
from capplan.analysis.imbalance import imbalance
from capplan.analysis.n_minus_1 import cluster_report, n_minus_1, node_loss
from capplan.analysis.namespaces import namespace_table, namespaces_report
from capplan.analysis.pressure import daily_memory, memory_pressure
from capplan.analysis.snapshot import load_snapshot, node_state
from capplan.analysis.stats.peaks import gumbel_exceedance as breach_day_probability
from capplan.analysis.taints import Toleration, parse_toleration, untolerated_taint
from capplan.errors import UsageError
from capplan.report.capacity import capacity_sections as report_section
from capplan.report.capacity import imbalance_note
from capplan.report.results import ReportResults
from tests.analysis.cluster_builder import T0, GiB, MiB, build_store, hand_cluster

BATCH = [{"key": "dedicated", "value": "batch", "effect": "NoSchedule"}]


def state_frame(rows: list[tuple]) -> pl.DataFrame:
    """(node, cpu_alloc, mem_alloc, pods_alloc, cpu_req, mem_req, pods, taints)."""
    return pl.DataFrame(
        [{"node": n, "cpu_allocatable_cores": ca, "memory_allocatable_bytes": float(ma), "pods_allocatable": pa,
          "cpu_requests_cores": cr, "memory_requests_bytes": float(mr), "pods": p, "taints": json.dumps(t or [])}
         for n, ca, ma, pa, cr, mr, p, t in rows])


FIT_STATE = state_frame([
    ("n-cpu", 4.0, 64 * GiB, 110, 1.5, 2 * GiB, 3, None),    # cpu 2.5 free -> 2; memory 62; pods 107
    ("n-mem", 16.0, 8 * GiB, 110, 2.0, 5.5 * GiB, 1, None),  # cpu 14; memory 2.5Gi free -> 2
    ("n-over", 1.0, 8 * GiB, 110, 1.2, 1 * GiB, 1, None),    # requests above allocatable: 0
    ("n-pods", 16.0, 64 * GiB, 4, 0.3, 0.3 * GiB, 3, None),  # 1 pod slot left
    ("n-pref", 2.0, 2 * GiB, 110, 0.0, 0.0, 0, [{"key": "spot", "value": "", "effect": "PreferNoSchedule"}]),
    ("n-taint", 8.0, 32 * GiB, 110, 0.0, 0.0, 0, BATCH),     # excluded unless tolerated: 8 by cpu
])


def fit_rows(table: pl.DataFrame) -> dict[str, dict]:
    return {r["node"]: r for r in table.iter_rows(named=True)}


def test_fit_per_node_limited_by_each_resource_and_total() -> None:
    t = fit_rows(fit_pods(FIT_STATE, 1.0, 1 * GiB))
    assert (t["n-cpu"]["fits"], t["n-cpu"]["limited_by"]) == (2, "cpu")          # floor(2.5 / 1)
    assert (t["n-cpu"]["fits_by_memory"], t["n-cpu"]["fits_by_pods"]) == (62, 107)
    assert (t["n-mem"]["fits"], t["n-mem"]["limited_by"]) == (2, "memory")       # floor(2.5Gi / 1Gi)
    assert (t["n-over"]["fits"], t["n-over"]["limited_by"]) == (0, "cpu")
    assert t["n-over"]["cpu_free_cores"] == pytest.approx(-0.2)
    assert (t["n-pods"]["fits"], t["n-pods"]["limited_by"]) == (1, "pods")       # 4 - 3
    assert (t["n-pref"]["fits"], t["n-pref"]["limited_by"]) == (2, "cpu")        # PreferNoSchedule does not exclude; tie -> cpu
    assert t["n-taint"]["fits"] == 0 and t["n-taint"]["excluded_by"] == "dedicated=batch:NoSchedule"
    assert t["n-taint"]["limited_by"] is None
    total = t["TOTAL"]
    assert total["fits"] == 2 + 2 + 0 + 1 + 2 + 0
    assert total["limited_by"] == "cpu"          # cpu limits 3 of the 5 schedulable nodes
    assert total["excluded_by"] == "1 nodes"
    assert list(fit_pods(FIT_STATE, 1.0, 1 * GiB)["node"])[-1] == "TOTAL"


def test_fit_tolerating_the_taint() -> None:
    for spec in ("dedicated", "dedicated=batch", "dedicated:NoSchedule", "dedicated=batch:NoSchedule", "*"):
        t = fit_rows(fit_pods(FIT_STATE, 1.0, 1 * GiB, [parse_toleration(spec)]))
        assert t["n-taint"]["fits"] == 8, spec                                    # 8 cores, 32Gi -> 8 by cpu
        assert t["TOTAL"]["fits"] == 15
    for spec in ("dedicated=gpu", "dedicated:NoExecute", "other"):
        assert fit_rows(fit_pods(FIT_STATE, 1.0, 1 * GiB, [parse_toleration(spec)]))["n-taint"]["fits"] == 0, spec


def test_fit_replicas_first_fit() -> None:
    t = fit_pods(FIT_STATE, 1.0, 1 * GiB, replicas=6)
    placed = dict(zip(t["node"], t["placed"], strict=True))
    # nodes in name order: n-cpu 2, n-mem 2, n-over 0, n-pods 1, n-pref 1 -> 6
    assert placed == {"n-cpu": 2, "n-mem": 2, "n-over": 0, "n-pods": 1, "n-pref": 1, "n-taint": 0, "TOTAL": 6}
    assert fit_summary(t, 6) == "all 6 replicas fit: n-cpu x2, n-mem x2, n-pods x1, n-pref x1"
    t9 = fit_pods(FIT_STATE, 1.0, 1 * GiB, replicas=9)
    assert t9.filter(pl.col("node") == "TOTAL")["placed"][0] == 7
    assert fit_summary(t9, 9).startswith("only 7 of 9 replicas fit")


def test_fit_shape_edge_cases() -> None:
    # memory only: cpu does not limit (fits_by_cpu empty); n-cpu 62, n-mem 2, n-over 7, n-pods 1, n-pref 2
    t = fit_rows(fit_pods(FIT_STATE, 0.0, 1 * GiB))
    assert t["n-cpu"]["fits_by_cpu"] is None and t["n-cpu"]["fits"] == 62 and t["n-cpu"]["limited_by"] == "memory"
    assert t["n-over"]["fits"] == 7
    # a fractional millicore counts as a whole one: 0.5m -> 1m; n-pref has 2000m and 110 pod slots -> pods limit
    assert fit_rows(fit_pods(FIT_STATE, 0.0005, 0))["n-pref"]["fits_by_cpu"] == 2000
    with pytest.raises(UsageError):
        fit_pods(FIT_STATE, -1.0, 0)


def brute_force_fit(state: pl.DataFrame, cpu_m: int, mem_b: int) -> int:
    """Add pods one by one while requested + pod <= allocatable for cpu (millicores), memory and pods."""
    total = 0
    for r in state.iter_rows(named=True):
        if json.loads(r["taints"]):
            continue
        cpu = round(r["cpu_requests_cores"] * 1000)
        mem = int(r["memory_requests_bytes"])
        pods = r["pods"]
        while (cpu + cpu_m <= round(r["cpu_allocatable_cores"] * 1000) and mem + mem_b <= r["memory_allocatable_bytes"]
               and pods + 1 <= r["pods_allocatable"]):
            cpu, mem, pods, total = cpu + cpu_m, mem + mem_b, pods + 1, total + 1
    return total


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 8000), st.integers(0, 32), st.integers(0, 30), st.integers(0, 9000),
                          st.integers(0, 40), st.integers(0, 30), st.booleans()), min_size=1, max_size=6),
       st.integers(1, 3000), st.integers(1, 8))
def test_fit_agrees_with_brute_force(nodes, cpu_m, mem_gib) -> None:
    state = state_frame([(f"n{i}", ca / 1000, ma * GiB, pa, cr / 1000, mr * GiB / 4, p, BATCH if tainted else None)
                         for i, (ca, ma, pa, cr, mr, p, tainted) in enumerate(nodes)])
    table = fit_pods(state, cpu_m / 1000, mem_gib * GiB)
    assert table.filter(pl.col("node") == "TOTAL")["fits"][0] == brute_force_fit(state, cpu_m, mem_gib * GiB)


def test_tolerations() -> None:
    assert parse_toleration("k=v:NoExecute") == Toleration("k", "v", "NoExecute")
    assert parse_toleration("k") == Toleration("k", None, None)
    for bad in ("", "=v", "k:Sometimes"):
        with pytest.raises(UsageError):
            parse_toleration(bad)
    taints = [{"key": "a", "value": "", "effect": "PreferNoSchedule"}, {"key": "b", "value": "x", "effect": "NoExecute"}]
    assert untolerated_taint(taints, []) == "b=x:NoExecute"            # PreferNoSchedule never blocks
    assert untolerated_taint(taints, [Toleration("b")]) is None


# --- N-1 and node loss ----------------------------------------------------------------------

def loss_cluster(with_tainted_spare: bool = False) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A (4 cores): apps 2.0 and 1.5 + DaemonSet 0.25; B (4): app 3.0 + DS 0.25; C (8): app 1.0 + DS 0.25.
    Memory and pod slots are plentiful (16Gi, 110 each; every pod requests 1Gi)."""
    nodes = [("A", 4.0), ("B", 4.0), ("C", 8.0)] + ([("D", 8.0)] if with_tainted_spare else [])
    pods = [("A", 2.0, "ReplicaSet"), ("A", 1.5, "ReplicaSet"), ("B", 3.0, "StatefulSet"), ("C", 1.0, "ReplicaSet")]
    pods += [(n, 0.25, "DaemonSet") for n, _ in nodes[:3]]
    node_frame = pl.DataFrame({
        "node": [n for n, _ in nodes], "cpu_allocatable_cores": [c for _, c in nodes],
        "memory_allocatable_bytes": [16 * GiB] * len(nodes), "pods_allocatable": [110] * len(nodes),
        "taints": [json.dumps(BATCH if n == "D" else []) for n, _ in nodes],
    })
    pod_frame = pl.DataFrame({
        "namespace": ["ns"] * len(pods), "pod": [f"p{i}" for i in range(len(pods))], "node": [p[0] for p in pods],
        "cpu_request_cores": [p[1] for p in pods], "memory_request_bytes": [float(GiB)] * len(pods),
        "workload_kind": [p[2] for p in pods],
    })
    return node_state(node_frame, pod_frame), pod_frame


def test_n_minus_1_per_resource() -> None:
    state, pods = loss_cluster()
    r = {x["resource"]: x for x in n_minus_1(state, pods).iter_rows(named=True)}
    # cpu: allocatable 4 + 4 + 8 = 16, requests 3.75 + 3.25 + 1.25 = 8.25; lose C (8): 8 left,
    # C's DaemonSet pod (0.25) goes with it: 8.0 to hold -> holds with 0 spare
    assert r["cpu"]["largest_node"] == "C"
    assert r["cpu"]["allocatable_without_largest"] == pytest.approx(8.0)
    assert r["cpu"]["requests_to_hold"] == pytest.approx(8.0)
    assert r["cpu"]["holds"] and r["cpu"]["spare_after"] == pytest.approx(0.0)
    # memory: 48Gi, 7 pods x 1Gi; all nodes equal -> the first by name, A, with a DaemonSet pod: 6Gi in 32Gi
    assert r["memory"]["largest_node"] == "A" and r["memory"]["requests_to_hold"] == 6 * GiB
    assert r["memory"]["allocatable_without_largest"] == 32 * GiB
    # pods: 330 slots, 7 pods; lose A (110): 6 to hold in 220
    assert r["pods"]["requests_to_hold"] == 6 and r["pods"]["spare_after"] == 214


def test_n_minus_1_fails_when_the_rest_is_too_small() -> None:
    state, pods = loss_cluster()
    # add 0.5 core to C's app: requests 8.75, without C 8.0 to hold 8.5 -> does not hold, 0.5 short
    pods = pods.with_columns(pl.when(pl.col("pod") == "p3").then(1.5).otherwise(pl.col("cpu_request_cores")).alias("cpu_request_cores"))
    state = node_state(state.select("node", "cpu_allocatable_cores", "memory_allocatable_bytes", "pods_allocatable", "taints"), pods)
    cpu = n_minus_1(state, pods).filter(pl.col("resource") == "cpu").row(0, named=True)
    assert not cpu["holds"] and cpu["spare_after"] == pytest.approx(-0.5)


def test_node_loss_pod_by_pod() -> None:
    state, pods = loss_cluster()
    r = {x["node"]: x for x in node_loss(state, pods).iter_rows(named=True)}
    # free: A 0.25, B 0.75, C 6.75. Lose A: 2.0 -> C (4.75 left), 1.5 -> C: survives
    assert r["A"]["pods_to_move"] == 2 and r["A"]["cpu_to_move_cores"] == pytest.approx(3.5) and r["A"]["survives"]
    assert r["B"]["survives"]                       # 3.0 -> C
    # lose C: its 1-core pod fits neither A (0.25) nor B (0.75), although the N-1 total holds
    assert r["C"]["unplaceable_pods"] == 1 and not r["C"]["survives"]


def test_node_loss_respects_taints() -> None:
    state, pods = loss_cluster(with_tainted_spare=True)
    r = {x["node"]: x for x in node_loss(state, pods).iter_rows(named=True)}
    # D has 8 free cores but a NoSchedule taint the pods from C never needed: still stranded
    assert r["C"]["unplaceable_pods"] == 1
    assert r["D"]["pods_to_move"] == 0 and r["D"]["survives"]


# --- imbalance ------------------------------------------------------------------------------

def test_imbalance_thresholds_are_the_descheduler_s() -> None:
    # allocatable 10 cores, 100Gi, 100 pods
    state = state_frame([
        ("at-low", 10.0, 100 * GiB, 100, 2.0, 20 * GiB, 20, None),     # 20/20/20: all <= 20 -> under
        ("just-above-low", 10.0, 100 * GiB, 100, 2.01, 1 * GiB, 1, None),  # cpu 20.1 -> not under
        ("at-high", 10.0, 100 * GiB, 100, 5.0, 10 * GiB, 5, None),     # cpu 50 is not above 50 -> ok
        ("pods-over", 10.0, 100 * GiB, 100, 1.0, 1 * GiB, 51, None),   # pods 51 > 50 -> over
        ("memory-over", 10.0, 100 * GiB, 100, 1.0, 60 * GiB, 1, None), # memory 60 -> over
    ])
    t = imbalance(state, 20, 50)
    got = dict(zip(t["node"], t["utilization_class"], strict=True))
    assert got == {"at-low": "under", "just-above-low": "ok", "at-high": "ok", "pods-over": "over", "memory-over": "over"}
    assert t.filter(pl.col("node") == "just-above-low")["cpu_request_pct"][0] == pytest.approx(20.1)
    assert "1 nodes under 20%" in imbalance_note(t, 20, 50) and "would move pods" in imbalance_note(t, 20, 50)
    only_ok = imbalance(state.filter(pl.col("node").is_in(["at-low", "at-high"])), 20, 50)
    assert "would not" in imbalance_note(only_ok, 20, 50)           # nothing over: the descheduler does nothing
    with pytest.raises(UsageError):
        imbalance(state, 60, 50)


# --- memory-pressure risk -------------------------------------------------------------------

def hourly_series(node_name: str, peaks_mib: list[float], partial_day: list[float] | None = None) -> list[dict]:
    """24 hourly samples a day at 500Mi with the day's peak at 15:00; then a partial day."""
    rows = []
    for d, peak in enumerate(peaks_mib):
        for h in range(24):
            rows.append({"node": node_name, "ts": T0 + timedelta(days=d, hours=h),
                         "memory_bytes": float((peak if h == 15 else 500) * MiB)})
    for h, v in enumerate(partial_day or []):
        rows.append({"node": node_name, "ts": T0 + timedelta(days=len(peaks_mib), hours=h), "memory_bytes": float(v * MiB)})
    return rows


def test_memory_pressure_share_fit_and_ranking() -> None:
    # allocatable 1000Mi -> threshold 900Mi (minus the 100Mi hard eviction threshold)
    x_peaks, y_peaks, z_peaks = [850, 880, 910, 870, 905], [600, 610, 605, 620, 615], [850, 860, 855, 865, 870]
    series = pl.DataFrame(hourly_series("x", x_peaks, partial_day=[950, 950, 950])
                          + hourly_series("y", y_peaks) + hourly_series("z", z_peaks) + hourly_series("w", [950, 800]))
    nodes = pl.DataFrame({"node": ["w", "x", "y", "z"], "memory_allocatable_bytes": [1000 * MiB] * 4})
    daily = daily_memory(series, nodes)
    x_daily = daily.filter(pl.col("node") == "x")
    assert x_daily["memory_max_bytes"].to_list() == [p * MiB for p in x_peaks] + [950 * MiB]
    assert x_daily["points"].to_list() == [24] * 5 + [3]
    risk = memory_pressure(daily, nodes)
    r = {row["node"]: row for row in risk.iter_rows(named=True)}
    # x: 910 and 905 breach on full days, the partial day's 3 samples too: 5 of 123 samples
    assert r["x"]["breach_points"] == 5 and r["x"]["breach_share"] == pytest.approx(5 / 123)
    assert (r["x"]["days"], r["x"]["breach_days"]) == (5, 2)       # the partial day is not fitted
    loc, scale = stats.gumbel_r.fit(np.array(x_peaks, dtype=float))
    assert r["x"]["breach_day_probability"] == pytest.approx(stats.gumbel_r.sf(900, loc, scale), rel=1e-3)
    assert r["x"]["gumbel_loc_bytes"] == pytest.approx(loc * MiB, rel=1e-3)
    # least-squares slope of the full days' maxima: sum((i-2)(x-883)) / sum((i-2)^2) = 100 / 10 = 10Mi a day
    assert r["x"]["daily_max_slope_bytes_per_day"] == pytest.approx(10 * MiB)
    # z never breached, but its peaks come close: ranked above y, whose peaks stay ~300Mi below
    assert r["z"]["breach_points"] == 0 and r["z"]["breach_day_probability"] > r["y"]["breach_day_probability"]
    # most at risk first: w (0.5, from its days), x (fit ~0.22), z (~0.001), y (~1e-20)
    assert risk["node"].to_list() == ["w", "x", "z", "y"]
    # w: two days only -> the share of days that breached, 1 of 2
    assert r["w"]["breach_day_probability"] == pytest.approx(0.5) and r["w"]["gumbel_loc_bytes"] is None


def test_breach_probability_without_spread() -> None:
    assert breach_day_probability(np.array([5.0, 5.0, 5.0]), 4.0)[0] == 1.0
    assert breach_day_probability(np.array([5.0, 5.0, 5.0]), 6.0)[0] == 0.0
    assert breach_day_probability(np.array([]), 6.0)[0] is None


# --- namespaces -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hand_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    nodes, pods, containers, usage = hand_cluster()
    quotas = [
        {"namespace": "web", "quota": "q1", "resource": "requests.cpu", "hard": 4.0},
        {"namespace": "web", "quota": "q2", "resource": "cpu", "hard": 3.0},          # same resource: the min counts
        {"namespace": "web", "quota": "q1", "resource": "requests.memory", "hard": float(8 * GiB)},
        {"namespace": "web", "quota": "q1", "resource": "limits.cpu", "hard": 2.0},
        {"namespace": "web", "quota": "q1", "resource": "pods", "hard": 10.0},
    ]
    return build_store(tmp_path_factory.mktemp("ns") / "ns.duckdb", nodes, pods, containers, usage, quotas)


def test_namespaces_with_usage_and_quota(hand_db: Path) -> None:
    con = store.open_db(hand_db, read_only=True)
    try:
        t = namespaces_report(con)
        only_web = namespaces_report(con, namespaces=["web"])
    finally:
        con.close()
    r = {x["namespace"]: x for x in t.iter_rows(named=True)}
    web = r["web"]
    # p1 (1 core, 2Gi), p2 (0.5, 1Gi), p4 Pending without a node (0.25, 256Mi); the Succeeded pod not
    assert web["pods"] == 3
    assert web["cpu_requests_cores"] == pytest.approx(1.75)
    assert web["memory_requests_bytes"] == pytest.approx(3.25 * GiB)
    assert math.isinf(web["cpu_limits_cores"]) and web["cpu_unlimited_containers"] == 2
    # web's usage sums to 1..5 cores: p95 4.8 -> 4.8 / 1.75 of its requests
    assert web["cpu_usage_p95_cores"] == pytest.approx(4.8)
    assert web["cpu_usage_request_ratio"] == pytest.approx(4.8 / 1.75)
    assert web["quota_cpu_requests_cores"] == 3.0 and web["quota_cpu_requests_used_ratio"] == pytest.approx(1.75 / 3)
    assert web["quota_memory_requests_used_ratio"] == pytest.approx(3.25 / 8)
    assert web["quota_pods"] == 10 and web["quota_pods_used_ratio"] == pytest.approx(0.3)
    assert math.isinf(web["quota_cpu_limits_used_ratio"])
    assert r["data"]["cpu_requests_cores"] == pytest.approx(2.5) and r["data"]["quota_cpu_requests_cores"] is None
    assert r["monitoring"]["pods"] == 2 and r["monitoring"]["cpu_usage_p95_cores"] == pytest.approx(0.05, rel=1e-6)
    assert only_web["namespace"].to_list() == ["web"]


# --- the sample -----------------------------------------------------------------------------

def test_sample_fit_matches_brute_force_and_report_sections(sample_db_readonly: Path) -> None:
    from capplan.report import ReportOptions

    con = store.open_db(sample_db_readonly, read_only=True)
    try:
        table = fit_report(con, 0.5, 1 * GiB)
        snap = load_snapshot(con)
        sections = {s.key: s for s in report_section(ReportResults(con, ReportOptions()))}
    finally:
        con.close()
    state = node_state(snap.nodes, snap.pods)
    assert table.filter(pl.col("node") == "TOTAL")["fits"][0] == brute_force_fit(state, 500, GiB)
    assert {"n_minus_1", "imbalance", "memory_pressure", "namespaces"} <= set(sections)
    # what the sample is built to show: node-8's working set reaches its capacity at the daily peak
    pressure = sections["memory_pressure"].frame
    assert pressure["node"][0] == "node-8" and pressure["breach_points"][0] > 0
    assert "node-5" in sections["imbalance"].frame.filter(pl.col("utilization_class") == "under")["node"].to_list()


def test_a_cordoned_node_is_never_under() -> None:
    cordon = [{"key": "node.kubernetes.io/unschedulable", "value": "", "effect": "NoSchedule"}]
    state = state_frame([("idle", 10.0, 100 * GiB, 100, 0.0, 0.0, 0, None),
                         ("cordoned", 10.0, 100 * GiB, 100, 0.0, 0.0, 0, cordon)])
    assert dict(zip(*imbalance(state, 20, 50).select("node", "utilization_class"), strict=True)) == {"idle": "under", "cordoned": "ok"}


def test_quota_only_namespace_shows() -> None:
    from capplan.analysis.pods import POD_RESOURCE_SCHEMA

    pods = pl.DataFrame(schema={**POD_RESOURCE_SCHEMA, "namespace": pl.Utf8})
    quotas = pl.DataFrame({"namespace": ["empty"], "quota": ["q"], "resource": ["pods"], "hard": [5.0]})
    r = namespace_table(pods, None, quotas).row(0, named=True)
    assert (r["namespace"], r["pods"], r["quota_pods"], r["quota_pods_used_ratio"]) == ("empty", 0, 5.0, 0.0)


def test_cluster_report_has_totals_and_n_minus_1(hand_db: Path) -> None:

    con = store.open_db(hand_db, read_only=True)
    try:
        r = {x["resource"]: x for x in cluster_report(con).iter_rows(named=True)}
    finally:
        con.close()
    # hand cluster: cpu allocatable 3.9 + 3.9 + 2 = 9.8, requests 4.2; node-a and node-b tie at 3.9 -> node-a;
    # without it 5.9 holds 4.2 (node-a runs no DaemonSet pod): 1.7 spare
    assert (r["cpu"]["allocatable"], r["cpu"]["requests"]) == (9.8, 4.2)
    assert r["cpu"]["largest_node"] == "node-a" and r["cpu"]["n1_holds"] and r["cpu"]["n1_spare"] == pytest.approx(1.7)
    # memory: 35Gi allocatable, without node-a (14Gi) 21Gi for 7.5Gi + 256Mi
    assert r["memory"]["allocatable_without_largest"] == 21 * GiB and r["memory"]["n1_holds"]
    assert r["pods"]["requests"] == 5


def test_unknown_pods_allocatable_does_not_limit() -> None:
    state = state_frame([("n", 2.0, 4 * GiB, None, 0.5, 1 * GiB, 3, None)])
    r = fit_rows(fit_pods(state, 0.5, 0))
    assert (r["n"]["fits"], r["n"]["limited_by"], r["n"]["fits_by_pods"]) == (3, "cpu", None)  # 1.5 / 0.5
    assert r["TOTAL"]["fits_by_pods"] is None
    with pytest.raises(UsageError):
        fit_pods(state, 0.0, 0)


def test_quota_room_binding_resource() -> None:

    row = {"pods": 8, "cpu_requests_cores": 2.0, "memory_requests_bytes": 4.0 * GiB,
           "quota_cpu_requests_cores": 10.0, "quota_memory_requests_bytes": 16.0 * GiB, "quota_pods": 10.0}
    # cpu: (10 - 2) / 1 = 8; memory: (16 - 4) / 2 = 6; pods: 10 - 8 = 2 -> pods binds
    assert quota_room(row, 1.0, 2 * GiB) == (2, "pods")
    assert quota_room({**row, "quota_pods": None}, 1.0, 2 * GiB) == (6, "requests.memory")
    assert quota_room({**row, "quota_cpu_requests_cores": 1.5}, 1.0, 2 * GiB) == (0, "requests.cpu")  # over quota
    assert quota_room(None, 1.0, 0) == (None, None)
