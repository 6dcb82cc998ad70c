"""The kubelet's memory-pressure eviction order (rankMemoryPressure), relief, exposure and advice.

Small hand-made nodes with the arithmetic written out, priorities from a PriorityClass JSON, and
the bundled sample's node-8 checked against a second, plain-Python computation from the
generator's source frames.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from capplan import store
from capplan.analysis.eviction import (
    EvictionInputs,
    EvictionOptions,
    PriorityMap,
    eviction_analysis,
    eviction_report,
    load_priority_map,
    parse_priority_classes,
    rank_memory_pressure,
    threshold_bytes,
)
from capplan.errors import BadInputError
from capplan.report import ReportOptions
from capplan.report.eviction import eviction_sections as report_section
from capplan.report.eviction import node_note
from capplan.report.results import ReportResults

GiB = 2**30
MiB = 2**20


# --- ranking: each of the three keys decides ------------------------------------------------

def ranked_pods(rows: list[dict]) -> list[str]:
    frame = pl.DataFrame(rows, schema={"namespace": pl.Utf8, "pod": pl.Utf8, "memory_usage_bytes": pl.Int64,
                                       "memory_request_bytes": pl.Int64, "priority": pl.Int64})
    return rank_memory_pressure(frame)["pod"].to_list()


def pod(name: str, usage: int | None, request: int, priority: int) -> dict:
    return {"namespace": "ns", "pod": name, "memory_usage_bytes": usage, "memory_request_bytes": request,
            "priority": priority}


def test_exceeding_the_request_decides_first() -> None:
    # a: 210 > 200 exceeds (priority 1000, excess 10); b: 900 < 1000 does not (priority 0, excess -100)
    # exceedMemoryRequests comes before priority: a first although its priority is higher
    assert ranked_pods([pod("b", 900, 1000, 0), pod("a", 210, 200, 1000)]) == ["a", "b"]


def test_priority_decides_among_pods_that_exceed() -> None:
    # both exceed; a priority 0 excess 10, b priority 100 excess 1000 -> lower priority first
    assert ranked_pods([pod("b", 2000, 1000, 100), pod("a", 110, 100, 0)]) == ["a", "b"]


def test_usage_above_request_decides_last() -> None:
    # both exceed, same priority: b's excess 500 > a's 50 -> b first
    assert ranked_pods([pod("a", 150, 100, 0), pod("b", 600, 100, 0)]) == ["b", "a"]
    # neither exceeds, same priority: the smaller shortfall (-10 > -500) goes first
    assert ranked_pods([pod("a", 500, 1000, 0), pod("b", 990, 1000, 0)]) == ["b", "a"]


def test_usage_equal_to_request_does_not_exceed_and_no_stats_go_first() -> None:
    frame = pl.DataFrame([pod("equal", 100, 100, 0), pod("over", 101, 100, 5), pod("nostats", None, 100, 9)])
    out = rank_memory_pressure(frame)
    assert out["pod"].to_list() == ["nostats", "over", "equal"]  # cmpBool(!p1Found, !p2Found) puts no stats first
    assert out["exceeds_request"].to_list() == [False, True, False]  # Cmp == 1: strictly greater
    assert out["rank"].to_list() == [1, 2, 3]


def test_besteffort_with_any_usage_exceeds_its_zero_request() -> None:
    out = rank_memory_pressure(pl.DataFrame([pod("g", 50, 100, 0), pod("be", 1, 0, 0)]))
    assert out["pod"].to_list() == ["be", "g"]


def test_ranking_is_per_group() -> None:
    frame = pl.DataFrame([{**pod("a", 150, 100, 0), "node": "n1"}, {**pod("b", 600, 100, 0), "node": "n1"},
                          {**pod("c", 10, 100, 0), "node": "n2"}])
    out = rank_memory_pressure(frame, ["node"])
    assert list(zip(out["node"], out["pod"], out["rank"], strict=True)) == [("n1", "b", 1), ("n1", "a", 2), ("n2", "c", 1)]


# --- thresholds and priorities --------------------------------------------------------------

def test_thresholds() -> None:
    assert threshold_bytes("100Mi", 8 * GiB) == 104_857_600
    assert threshold_bytes("5%", 8 * GiB) == 429_496_729  # int(8589934592 * 0.05 = 429496729.6)
    assert threshold_bytes("1G", 8 * GiB) == 1_000_000_000
    for bad in ("abc", "150%", "x%", "-1Gi"):
        with pytest.raises(BadInputError):
            threshold_bytes(bad, 8 * GiB)


PRIORITY_CLASSES = {
    "apiVersion": "v1", "kind": "List",
    "items": [
        {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "web-critical"},
         "value": 1000, "globalDefault": False, "preemptionPolicy": "PreemptLowerPriority"},
        {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "data-critical"},
         "value": 100000},
        {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "default-low"},
         "value": -10, "globalDefault": True},
        {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "system-node-critical"},
         "value": 2000001000},
    ],
}


def test_priorities_from_a_priorityclass_json(tmp_path: Path) -> None:
    path = tmp_path / "pc.json"
    path.write_text(json.dumps(PRIORITY_CLASSES))
    pm = load_priority_map(path)
    assert pm.resolve("web-critical") == (1000, True)
    assert pm.resolve("data-critical") == (100000, True)
    assert pm.resolve(None) == (-10, True)                         # globalDefault for pods without a class
    assert pm.resolve("system-cluster-critical") == (2_000_000_000, True)  # built in, not in the file
    assert pm.resolve("nope") == (0, False)
    # --priority NAME=VALUE wins over the file
    assert load_priority_map(path, ["web-critical=5", "batch=-3"]).resolve("web-critical") == (5, True)
    assert load_priority_map(None, ["batch=-3"]).resolve("batch") == (-3, True)
    assert PriorityMap().resolve(None) == (0, True)                # no globalDefault: 0


@pytest.mark.parametrize("text", [
    "not json", json.dumps({"items": [{"metadata": {"name": "x"}}]}),
    json.dumps({"items": [{"metadata": {"name": "x"}, "value": 2**31}]}),
    json.dumps({"items": [{"metadata": {"name": "x"}, "value": "1000"}]}),
    json.dumps({"items": [{"value": 1}]}), json.dumps(42),
])
def test_bad_priority_classes_are_bad_input(text: str) -> None:
    with pytest.raises(BadInputError):
        parse_priority_classes(text)


@pytest.mark.parametrize("item", ["foo", "=1", "a=", "a=b", "a=1.5", f"a={2**31}"])
def test_bad_priority_overrides(item: str) -> None:
    with pytest.raises(BadInputError):
        load_priority_map(None, [item])


# --- a node whose worst moment needs exactly two evictions ---------------------------------

T0 = datetime(2026, 1, 1, 0, 0)
TS = [T0 + timedelta(minutes=5 * i) for i in range(4)]
CAP = 8 * GiB
# pod -> (working set at t0, t1, t2, t3) in MiB
USAGE_MIB = {
    "be":    (256, 512, 512, 512),
    "burst": (1024, 2048, 1536, 1024),
    "ds":    (64, 128, 128, 128),
    "calm":  (1024, 1920, 1408, 1408),
    "g":     (1728, 3072, 3072, 2048),
}
# node sums: t0 4096Mi, t1 7680Mi (the worst), t2 6656Mi, t3 5120Mi


def _container(pod_name: str, cls: str | None, cpu_req=None, cpu_lim=None, mem_req=None, mem_lim=None) -> dict:
    return {"namespace": "ns", "pod": pod_name, "node": "n1", "priority_class": cls, "qos_class_reported": None,
            "overhead_memory_bytes": None, "container": "main", "init_container": False, "restartable": False,
            "init_order": None, "cpu_request_cores": cpu_req, "cpu_limit_cores": cpu_lim,
            "memory_request_bytes": mem_req, "memory_limit_bytes": mem_lim}


def two_eviction_inputs() -> EvictionInputs:
    containers = pl.DataFrame([
        _container("be", None),
        _container("burst", "batch", 0.5, None, 1 * GiB, None),
        _container("ds", "system-node-critical", 0.1, 0.2, 64 * MiB, 128 * MiB),
        _container("calm", None, 0.5, None, 2 * GiB, None),
        _container("g", "data-critical", 1, 1, 4 * GiB, 4 * GiB),
    ], schema_overrides={"overhead_memory_bytes": pl.Float64, "init_order": pl.Int32, "cpu_request_cores": pl.Float64,
                         "cpu_limit_cores": pl.Float64, "memory_request_bytes": pl.Int64, "memory_limit_bytes": pl.Int64,
                         "qos_class_reported": pl.Utf8, "priority_class": pl.Utf8})
    pod_moments = pl.DataFrame([
        {"node": "n1", "ts": ts, "namespace": "ns", "pod": name, "working_set_bytes": usage[i] * MiB}
        for name, usage in USAGE_MIB.items() for i, ts in enumerate(TS)
    ])
    moments = pod_moments.group_by("node", "ts").agg(pl.col("working_set_bytes").sum()).sort("ts")
    pod_stats = pod_moments.group_by("node", "namespace", "pod").agg(
        pl.col("working_set_bytes").quantile(0.95, interpolation="linear").alias("working_set_p95_bytes"),
        pl.col("working_set_bytes").max().alias("working_set_peak_bytes"),
        pl.col("working_set_bytes").sort_by("ts").last().alias("working_set_latest_bytes"),
        pl.col("ts").max().alias("last_seen"))
    restarts = pl.DataFrame([{"namespace": "ns", "pod": "burst", "restarts": 3, "oom_kills": 2,
                              "oom_killed_containers": ["main"]}])
    nodes = pl.DataFrame([{"node": "n1", "memory_capacity_bytes": CAP}])
    return EvictionInputs(start=TS[0], end=TS[-1], nodes=nodes, containers=containers, moments=moments,
                          pod_stats=pod_stats, restarts=restarts, pod_moments=pod_moments)


def two_eviction_options(usage: str = "peak") -> EvictionOptions:
    return EvictionOptions(usage=usage, eviction_hard="2Gi", eviction_soft="50%",
                           priorities=load_priority_map(None, ["batch=100", "data-critical=1000"]))


def test_worst_moment_needs_exactly_two_evictions() -> None:
    result = eviction_analysis(two_eviction_inputs(), two_eviction_options())
    node = result.nodes.row(0, named=True)
    # worst moment t1: working set 7680Mi of 8192Mi -> available 512Mi < 2Gi hard -> need 1536Mi
    assert node["worst_moment"] == TS[1]
    assert node["working_set_at_worst_bytes"] == 7680 * MiB
    assert node["available_at_worst_bytes"] == 512 * MiB
    assert node["under_pressure"] is True
    pods = result.pods
    # exceeding: be (0 > request 0, priority 0), burst (2048 > 1024, priority 100), ds (128 > 64,
    # priority 2000001000); then not exceeding: calm (1920 < 2048, priority 0), g (3072 < 4096, 1000)
    assert pods["pod"].to_list() == ["be", "burst", "ds", "calm", "g"]
    assert pods["rank"].to_list() == [1, 2, 3, 4, 5]
    assert pods["exceeds_request"].to_list() == [True, True, True, False, False]
    assert pods["qos_class"].to_list() == ["BestEffort", "Burstable", "Burstable", "Burstable", "Guaranteed"]
    assert pods["priority"].to_list() == [0, 100, 2_000_001_000, 0, 1000]
    # ds is system-node-critical: the eviction manager cannot evict it, it frees nothing
    assert pods["evictable"].to_list() == [True, True, False, True, True]
    # freed: 512, +2048 = 2560, +0 = 2560, +1920 = 4480, +3072 = 7552 (MiB)
    assert pods["cumulative_freed_bytes"].to_list() == [512 * MiB, 2560 * MiB, 2560 * MiB, 4480 * MiB, 7552 * MiB]
    # 512 < 1536 -> evict burst too; 2560 >= 1536 -> relieved after exactly two
    assert pods["evicted_to_relieve"].to_list() == [True, True, False, False, False]
    assert node["evictions_to_relieve"] == 2
    assert node["freed_to_relieve_bytes"] == 2560 * MiB
    assert node["relievable"] is True
    # oom_score_adj: be 1000; burst 1000 - 1000*1Gi/8Gi = 875; ds node-critical -997;
    # calm 1000 - 250 = 750; g Guaranteed -997
    assert pods["oom_score_adj"].to_list() == [1000, 875, -997, 750, -997]


def test_exposure_shares_and_per_pod_evictions() -> None:
    result = eviction_analysis(two_eviction_inputs(), two_eviction_options())
    node = result.nodes.row(0, named=True)
    # available: t0 4096Mi, t1 512Mi, t2 1536Mi, t3 3072Mi
    # under hard 2Gi: t1, t2 -> 2/4; under soft 50% = 4096Mi: t1, t2, t3 (t0 is equal, not under) -> 3/4
    assert node["share_under_hard"] == pytest.approx(0.5)
    assert node["share_under_soft"] == pytest.approx(0.75)
    assert node["soft_threshold_bytes"] == 4096 * MiB
    # t2: need 2048 - 1536 = 512Mi; be (first) frees 512Mi -> relieved; burst is not needed
    share = dict(result.pods.select("pod", "evicted_share").iter_rows())
    moments = dict(result.pods.select("pod", "evicted_moments").iter_rows())
    assert moments == {"be": 2, "burst": 1, "ds": 0, "calm": 0, "g": 0}
    assert share == {"be": 1.0, "burst": 0.5, "ds": 0.0, "calm": 0.0, "g": 0.0}
    restarts = dict(result.pods.select("pod", "oom_kills").iter_rows())
    assert restarts["burst"] == 2 and restarts["be"] == 0


def test_latest_usage_basis() -> None:
    result = eviction_analysis(two_eviction_inputs(), two_eviction_options("latest"))
    pods = result.pods
    # latest t3: be 512 > 0 exceeds; burst 1024 == 1024 does not; ds 128 > 64 exceeds;
    # calm 1408 < 2048; g 2048 < 4096 -> be, ds (exceeding, by priority), then calm (0), burst (100), g (1000)
    assert pods["pod"].to_list() == ["be", "ds", "calm", "burst", "g"]
    assert pods["memory_usage_bytes"].to_list() == [512 * MiB, 128 * MiB, 1408 * MiB, 1024 * MiB, 2048 * MiB]
    # relief is still judged at the worst moment (need 1536Mi) with what each pod used then:
    # be 512, ds 0 (critical), calm 1920 -> 2432 >= 1536 after calm
    assert pods["cumulative_freed_bytes"].to_list() == [512 * MiB, 512 * MiB, 2432 * MiB, 4480 * MiB, 7552 * MiB]
    assert pods["evicted_to_relieve"].to_list() == [True, False, True, False, False]


def test_p95_usage_basis() -> None:
    result = eviction_analysis(two_eviction_inputs(), two_eviction_options("p95"))
    usage = dict(result.pods.select("pod", "memory_usage_bytes").iter_rows())
    # burst over (1024, 2048, 1536, 1024): sorted 1024,1024,1536,2048; p95 at rank 0.95*3 = 2.85
    # -> 1536 + 0.85 * 512 = 1971.2Mi
    assert usage["burst"] == round(1971.2 * MiB)


def test_advice_lines() -> None:
    result = eviction_analysis(two_eviction_inputs(), two_eviction_options())
    text = "\n".join(result.advice["advice"])
    assert "node n1 reaches 93.8% memory" not in text  # 7680/8192 = 0.9375 -> "94%"
    assert "node n1 reaches 94% memory" in text
    assert "the kubelet would evict 2 pod(s) to relieve it: ns/be, ns/burst" in text
    assert "BestEffort pod ns/be sits on node n1 that reaches 94% memory: give it a memory request" in text
    assert "Burstable pod ns/burst uses 2Gi against a 1Gi request" in text
    assert "Burstable pod ns/burst is OOM-killed (no limit: the node ran out) (2 times in the window" in text
    assert result.advice["severity"][0] == "high"


def test_namespace_and_node_filters() -> None:
    options = two_eviction_options()
    options.namespaces = ["other"]
    assert eviction_analysis(two_eviction_inputs(), options).pods.is_empty()
    options = two_eviction_options()
    options.nodes = ["n2"]
    result = eviction_analysis(two_eviction_inputs(), options)
    assert result.pods.is_empty() and result.nodes.is_empty()


def test_qos_disagreement_is_reported() -> None:
    inputs = two_eviction_inputs()
    inputs.containers = inputs.containers.with_columns(
        pl.when(pl.col("pod") == "g").then(pl.lit("Burstable")).otherwise(pl.col("qos_class_reported"))
        .alias("qos_class_reported"))
    result = eviction_analysis(inputs, two_eviction_options())
    g = result.pods.filter(pl.col("pod") == "g").row(0, named=True)
    assert g["qos_class"] == "Guaranteed" and g["qos_class_reported"] == "Burstable" and g["qos_mismatch"] is True
    assert result.pods.filter(pl.col("pod") != "g")["qos_mismatch"].to_list() == [False] * 4
    assert any("its containers make it Guaranteed but kube-state-metrics reports Burstable" in a
               for a in result.advice["advice"])


# --- the bundled sample: node-8 --------------------------------------------------------------

@pytest.fixture(scope="module")
def sample_result(sample_db_readonly: Path):
    con = store.open_db(sample_db_readonly, read_only=True)
    try:
        yield eviction_report(con), con
    finally:
        con.close()


def test_sample_node8_is_under_memory_pressure_checked_independently(sample_result, sample_cluster) -> None:
    result, _ = sample_result
    # second computation, from the generator's source frames with plain Python
    node_of = {}
    sums: dict[datetime, int] = {}
    per_pod: dict[tuple[datetime, str, str], int] = {}
    for frame in sample_cluster_usage(sample_cluster):
        for row in frame.filter(pl.col("node") == "node-8").iter_rows(named=True):
            mem = int(round(row["memory_bytes"] / 1024)) * 1024  # stored to the nearest KiB (schema 003)
            sums[row["ts"]] = sums.get(row["ts"], 0) + mem
            key = (row["ts"], row["namespace"], row["pod"])
            per_pod[key] = per_pod.get(key, 0) + mem
            node_of[(row["namespace"], row["pod"])] = "node-8"
    worst = max(sums, key=lambda ts: (sums[ts], ts))
    capacity = sample_cluster.frames["nodes"].filter(pl.col("node") == "node-8")["memory_capacity_bytes"][0]
    node8 = result.nodes.filter(pl.col("node") == "node-8").row(0, named=True)
    assert node8["worst_moment"] == worst
    assert node8["working_set_at_worst_bytes"] == sums[worst]
    assert node8["available_at_worst_bytes"] == capacity - sums[worst] < 100 * MiB
    assert node8["under_pressure"] is True
    # the share of samples under 100Mi, counted by hand
    under = sum(1 for v in sums.values() if capacity - v < 100 * MiB)
    assert node8["share_under_hard"] == pytest.approx(under / len(sums))
    # rankMemoryPressure again, as a plain sorted() over the source specs (requests defaulted to
    # limits, init containers as max(init, sum of app containers))
    containers = sample_cluster.frames["containers"]
    pods_spec = sample_cluster.frames["pods"].sort("valid_to").group_by("namespace", "pod").last()
    prio = {"system-node-critical": 2_000_001_000}
    expected = []
    for (ts, ns, name), usage in per_pod.items():
        if ts != worst:
            continue
        rows = containers.filter((pl.col("namespace") == ns) & (pl.col("pod") == name)).to_dicts()
        def req(r):
            return r["memory_request_bytes"] if r["memory_request_bytes"] is not None else (r["memory_limit_bytes"] or 0)
        app = sum(req(r) for r in rows if not r["init_container"])
        init = max([req(r) for r in rows if r["init_container"]], default=0)
        request = max(app, init)
        cls = pods_spec.filter((pl.col("namespace") == ns) & (pl.col("pod") == name))["priority_class"][0]
        p = prio.get(cls, 0)
        expected.append((not usage > request, p, -(usage - request), ns, name, usage, p >= 2_000_000_000))
    expected.sort()
    assert result.pods.filter(pl.col("node") == "node-8")["pod"].to_list() == [e[4] for e in expected]
    # walk down until memory.available >= 100Mi
    need, freed, victims = 100 * MiB - (capacity - sums[worst]), 0, []
    for e in expected:
        if freed >= need:
            break
        if not e[6]:
            victims.append(e[4])
            freed += e[5]
    got = result.pods.filter((pl.col("node") == "node-8") & pl.col("evicted_to_relieve"))["pod"].to_list()
    assert got == victims and len(victims) >= 1
    assert all(v.startswith("trainer-") for v in victims)
    # no other node of the sample reaches the hard threshold
    assert result.nodes.filter(pl.col("under_pressure"))["node"].to_list() == ["node-8"]


def sample_cluster_usage(cluster):
    from capplan.sample import usage_frames

    return usage_frames(cluster)


def test_sample_report_section_explains_node8(sample_result) -> None:
    _, con = sample_result
    sections = report_section(ReportResults(con, ReportOptions()))
    keys = [s.key for s in sections]
    assert keys[:2] == ["eviction_nodes", "eviction"]
    note = sections[0].note
    assert "node-8 is under memory pressure" in note
    assert "< 100Mi (hard eviction threshold)" in note
    assert "must evict 1 pod(s)" in note and "ml/trainer-" in note
    first = sections[1].frame
    assert first.filter(pl.col("evicted_to_relieve"))["node"].to_list() == ["node-8"]
    advice = sections[2].frame["advice"].to_list()
    assert any(a.startswith("Burstable pod web/image-resizer-") and "OOM-killed at its limit 512Mi" in a for a in advice)


def test_sample_priorities_change_the_order(sample_db_readonly: Path) -> None:
    con = store.open_db(sample_db_readonly, read_only=True)
    try:
        before = eviction_report(con, EvictionOptions(nodes=["node-8"])).pods
        # web-critical (web/api and web/frontend) below every other pod
        after = eviction_report(con, EvictionOptions(
            nodes=["node-8"], priorities=load_priority_map(None, ["web-critical=-5"]))).pods
    finally:
        con.close()
    def names(frame):
        return [re.sub(r"(-[0-9a-f]{5,})+$|-\d+$", "", p) for p in frame["pod"]]
    # without priorities every pod but node-exporter has 0: the excess (usage - request) decides
    assert names(before) == ["trainer", "trainer", "trainer", "image-resizer", "feature-store", "checkout", "api",
                             "frontend", "postgres", "node-exporter"]
    # exceeding pods still go first (exceedMemoryRequests before priority); among the others the
    # -5 pods now come before the 0 ones, and node-exporter (2000001000) stays last
    assert names(after) == ["trainer", "trainer", "trainer", "image-resizer", "api", "frontend", "feature-store",
                            "checkout", "postgres", "node-exporter"]
    assert after.filter(pl.col("pod").str.starts_with("api-"))["priority"].to_list() == [-5]
    assert after.filter(pl.col("evicted_to_relieve"))["pod"].to_list() == before.filter(
        pl.col("evicted_to_relieve"))["pod"].to_list()


def test_no_pressure_under_the_default_threshold() -> None:
    options = two_eviction_options()
    options.eviction_hard = "100Mi"
    result = eviction_analysis(two_eviction_inputs(), options)
    # available at worst 512Mi >= 100Mi: no pressure, nothing to evict, nobody evicted at any moment
    assert result.nodes["under_pressure"].to_list() == [False]
    assert result.nodes["evictions_to_relieve"].to_list() == [0]
    assert not result.pods["evicted_to_relieve"].any()
    assert result.pods["evicted_share"].null_count() == result.pods.height  # no pressure moments at all
    # the ranking itself does not depend on the threshold
    assert result.pods["pod"].to_list() == ["be", "burst", "ds", "calm", "g"]
    assert node_note(result) == "No node reaches memory.available < 100Mi in the window; the fullest is n1 at 94% of its memory."


def test_eviction_request_counts_init_containers_and_overhead_only_when_non_zero() -> None:
    from capplan.analysis.eviction import pod_specs

    rows = [
        # app 1Gi + sidecar-less regular init 3Gi -> PodRequests max(1Gi, 3Gi) = 3Gi; overhead 128Mi added
        {**_container("big-init", None, 0.1, None, 1 * GiB, None), "overhead_memory_bytes": 128.0 * MiB},
        {**_container("big-init", None, 0.1, None, 3 * GiB, None), "container": "init", "init_container": True,
         "init_order": 0, "overhead_memory_bytes": 128.0 * MiB},
        # BestEffort with an overhead: GetResourceRequestQuantity adds it only to a non-zero total
        {**_container("be", None), "overhead_memory_bytes": 128.0 * MiB},
    ]
    frame = pl.DataFrame(rows, schema_overrides={"overhead_memory_bytes": pl.Float64, "init_order": pl.Int32,
                                                 "cpu_request_cores": pl.Float64, "cpu_limit_cores": pl.Float64,
                                                 "memory_request_bytes": pl.Int64, "memory_limit_bytes": pl.Int64,
                                                 "qos_class_reported": pl.Utf8, "priority_class": pl.Utf8})
    specs = {r["pod"]: r for r in pod_specs(frame, PriorityMap()).iter_rows(named=True)}
    assert specs["big-init"]["memory_request_bytes"] == 3 * GiB + 128 * MiB
    assert specs["big-init"]["qos_class"] == "Burstable"
    assert specs["be"]["memory_request_bytes"] == 0
    assert specs["be"]["qos_class"] == "BestEffort"


# --- a second implementation: the Go comparators of helpers.go, ported one to one ------------

def _cmp_bool(a: bool, b: bool) -> int:  # cmpBool: true before false
    return 0 if a == b else (-1 if not b else 1)


def _go_rank(pods: list[dict]) -> list[str]:
    import functools

    def exceed(p1, p2):
        f1, f2 = p1["memory_usage_bytes"] is not None, p2["memory_usage_bytes"] is not None
        if not f1 or not f2:
            return _cmp_bool(not f1, not f2)
        return _cmp_bool(p1["memory_usage_bytes"] > p1["memory_request_bytes"],
                         p2["memory_usage_bytes"] > p2["memory_request_bytes"])

    def priority(p1, p2):
        return 0 if p1["priority"] == p2["priority"] else (1 if p1["priority"] > p2["priority"] else -1)

    def memory(p1, p2):
        f1, f2 = p1["memory_usage_bytes"] is not None, p2["memory_usage_bytes"] is not None
        if not f1 or not f2:
            return _cmp_bool(not f1, not f2)
        d1 = p1["memory_usage_bytes"] - p1["memory_request_bytes"]
        d2 = p2["memory_usage_bytes"] - p2["memory_request_bytes"]
        return (d2 > d1) - (d2 < d1)  # p2Memory.Cmp(p1Memory)

    def by_name(p1, p2):  # capplan's tie-break (Go's sort.Sort leaves ties unordered)
        return (p1["pod"] > p2["pod"]) - (p1["pod"] < p2["pod"])

    def ordered(p1, p2):
        for cmp in (exceed, priority, memory, by_name):
            result = cmp(p1, p2)
            if result:
                return result
        return 0

    return [p["pod"] for p in sorted(pods, key=functools.cmp_to_key(ordered))]


def test_ranking_matches_the_go_comparators_on_random_pods() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    pod_strategy = st.fixed_dictionaries({
        "memory_usage_bytes": st.one_of(st.none(), st.integers(0, 2000)),
        "memory_request_bytes": st.sampled_from([0, 100, 500, 1000]),
        "priority": st.sampled_from([-10, 0, 1000, 2_000_001_000]),
    })

    @settings(max_examples=200, deadline=None)
    @given(st.lists(pod_strategy, min_size=1, max_size=12))
    def check(pods: list[dict]) -> None:
        rows = [{"namespace": "ns", "pod": f"p{i:02d}", **p} for i, p in enumerate(pods)]
        frame = pl.DataFrame(rows, schema={"namespace": pl.Utf8, "pod": pl.Utf8, "memory_usage_bytes": pl.Int64,
                                           "memory_request_bytes": pl.Int64, "priority": pl.Int64})
        assert rank_memory_pressure(frame)["pod"].to_list() == _go_rank(rows)

    check()
