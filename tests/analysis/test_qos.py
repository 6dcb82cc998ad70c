"""QoS classes (GetPodQOS) and oom_score_adj (GetContainerOOMScoreAdjust), values worked out by hand."""

from __future__ import annotations

import polars as pl
import pytest

from capplan.analysis.qos import (
    container_oom_scores,
    is_critical_pod,
    is_node_critical_pod,
    oom_score_adj,
    qos_class,
    qos_classes,
)

GiB = 2**30
MiB = 2**20


def c(cpu_req=None, cpu_lim=None, mem_req=None, mem_lim=None) -> dict:
    return {"cpu_request_cores": cpu_req, "cpu_limit_cores": cpu_lim,
            "memory_request_bytes": mem_req, "memory_limit_bytes": mem_lim}


# --- QoS -------------------------------------------------------------------------------------

def test_guaranteed_when_every_container_has_equal_requests_and_limits() -> None:
    assert qos_class([c(1, 1, GiB, GiB), c(0.5, 0.5, MiB, MiB)]) == "Guaranteed"


def test_missing_requests_default_to_limits() -> None:
    # requests unset, limits set: the apiserver copies limits into requests -> Guaranteed
    assert qos_class([c(None, 1, None, GiB)]) == "Guaranteed"
    # only the memory request is missing: still equal after defaulting
    assert qos_class([c(1, 1, None, GiB)]) == "Guaranteed"


def test_init_container_counts() -> None:
    app = c(1, 1, GiB, GiB)
    # an init container with requests but no limits breaks Guaranteed
    assert qos_class([app, c(0.1, None, 64 * MiB, None)]) == "Burstable"
    # an init container with its own equal limits keeps it
    assert qos_class([app, c(0.1, 0.1, 64 * MiB, 64 * MiB)]) == "Guaranteed"
    # a BestEffort app container with an init container that asks for memory is Burstable
    assert qos_class([c(), c(None, None, 64 * MiB, None)]) == "Burstable"


def test_besteffort_only_without_any_cpu_or_memory_value() -> None:
    assert qos_class([c(), c()]) == "BestEffort"
    # zero values are ignored (qos.go compares with zeroQuantity)
    assert qos_class([c(0, None, 0, None)]) == "BestEffort"


def test_summed_requests_quirk_confirmed_in_qos_go() -> None:
    # GetPodQOS adds requests and limits over all containers and compares the sums, so
    # cpu 1/2 and 2/1 sum to 3/3: Guaranteed, although neither container has request == limit.
    assert qos_class([c(1, 2, GiB, GiB), c(2, 1, GiB, GiB)]) == "Guaranteed"
    # the sums differ: Burstable
    assert qos_class([c(1, 2, GiB, GiB), c(1, 1, GiB, GiB)]) == "Burstable"


def test_zero_request_with_limit_is_burstable() -> None:
    # cpu request 0 is ignored, cpu limit 1 counts: requests={memory}, limits={cpu, memory}
    # -> len(requests) != len(limits) -> Burstable
    assert qos_class([c(0, 1, GiB, GiB)]) == "Burstable"


def test_missing_cpu_limit_is_burstable() -> None:
    assert qos_class([c(1, None, GiB, GiB)]) == "Burstable"


def test_qos_classes_frame() -> None:
    frame = pl.DataFrame([
        {"namespace": "a", "pod": "p", **c(1, 1, GiB, GiB)},
        {"namespace": "a", "pod": "q", **c()},
        {"namespace": "a", "pod": "r", **c(1, None, None, None)},
    ], schema={"namespace": pl.Utf8, "pod": pl.Utf8, "cpu_request_cores": pl.Float64, "cpu_limit_cores": pl.Float64,
               "memory_request_bytes": pl.Int64, "memory_limit_bytes": pl.Int64})
    assert dict(qos_classes(frame).select("pod", "qos_class").iter_rows()) == {
        "p": "Guaranteed", "q": "BestEffort", "r": "Burstable"}


# --- oom_score_adj ---------------------------------------------------------------------------

CAP = 1_000_000  # a 1,000,000-byte node makes 1000*request/capacity easy to work out


@pytest.mark.parametrize(("request_bytes", "expected"), [
    (0, 999),          # 1000 - 0 = 1000 == besteffort -> 999
    (999, 999),        # 1000*999 // 1e6 = 0 -> 1000 -> 999
    (1000, 999),       # 1000*1000 // 1e6 = 1 -> 999 (the formula's own 999)
    (2000, 998),       # 2 -> 998
    (500_000, 500),    # half the node -> 500
    (996_000, 4),      # 996 -> 4
    (997_000, 3),      # 997 -> 3, exactly the floor, not clamped
    (997_999, 3),      # 997.999 truncates to 997 -> 3
    (998_000, 3),      # 998 -> 2 < 3 -> clamped to 1000 + (-997) = 3
    (2_000_000, 3),    # request above capacity: 1000 - 2000 = -1000 -> 3
])
def test_burstable_formula_and_clamps(request_bytes: int, expected: int) -> None:
    assert oom_score_adj("Burstable", request_bytes, CAP) == expected


def test_burstable_truncates_like_go_int64() -> None:
    # 1Gi on a 16Gi node: 1000 * 2^30 / 2^34 = 62.5 -> 62 -> 938
    assert oom_score_adj("Burstable", GiB, 16 * GiB) == 938
    # 64Mi on 16Gi: 1000 * 2^26 / 2^34 = 3.90625 -> 3 -> 997
    assert oom_score_adj("Burstable", 64 * MiB, 16 * GiB) == 997


def test_guaranteed_besteffort_and_node_critical() -> None:
    assert oom_score_adj("Guaranteed", GiB, CAP) == -997
    assert oom_score_adj("BestEffort", None, CAP) == 1000
    # IsNodeCriticalPod is checked before the QoS switch
    assert oom_score_adj("Burstable", 64 * MiB, 16 * GiB, node_critical=True) == -997
    assert oom_score_adj("BestEffort", None, CAP, node_critical=True) == -997


def test_sidecar_takes_the_lower_score_of_the_smallest_regular_container() -> None:
    # sidecar 64Mi alone: 997; smallest regular container 1Gi: 938 -> the sidecar gets 938
    assert oom_score_adj("Burstable", 64 * MiB, 16 * GiB, sidecar=True, min_regular_memory_request_bytes=GiB) == 938
    # a sidecar that asks more than the regular containers keeps its own (lower) value:
    # 4Gi -> 1000 - 250 = 750 vs regular 1Gi 938 -> 750
    assert oom_score_adj("Burstable", 4 * GiB, 16 * GiB, sidecar=True, min_regular_memory_request_bytes=GiB) == 750


def test_critical_pods() -> None:
    assert is_critical_pod(2_000_000_000) and is_critical_pod(2_000_001_000)
    assert not is_critical_pod(1_000_000_000) and not is_critical_pod(None)
    assert is_node_critical_pod("system-node-critical", 2_000_001_000)
    assert not is_node_critical_pod("system-cluster-critical", 2_000_000_000)  # critical, but not node-critical
    assert not is_node_critical_pod("system-node-critical", 1000)  # the name without the priority


def test_container_oom_scores_frame() -> None:
    containers = pl.DataFrame([
        {"namespace": "a", "pod": "p", "container": "init", "init_container": True, "restartable": False,
         "memory_request_bytes": 8 * GiB, "memory_limit_bytes": None},
        {"namespace": "a", "pod": "p", "container": "proxy", "init_container": True, "restartable": True,
         "memory_request_bytes": 64 * MiB, "memory_limit_bytes": None},
        {"namespace": "a", "pod": "p", "container": "app", "init_container": False, "restartable": False,
         "memory_request_bytes": None, "memory_limit_bytes": 2 * GiB},   # request defaulted to the 2Gi limit
        {"namespace": "a", "pod": "p", "container": "small", "init_container": False, "restartable": False,
         "memory_request_bytes": 512 * MiB, "memory_limit_bytes": None},
    ])
    pods = pl.DataFrame([{"namespace": "a", "pod": "p", "node": "n", "qos_class": "Burstable", "node_critical": False}])
    out = container_oom_scores(containers, pods, {"n": 16 * GiB})
    got = dict(out.select("container", "oom_score_adj").iter_rows())
    # the regular init container has exited: no score
    # app: 1000 - 1000*2Gi/16Gi = 1000 - 125 = 875
    # small: 1000 - 1000*512Mi/16Gi = 1000 - 31 (31.25) = 969
    # proxy (sidecar): own 997, smallest regular (512Mi) 969 -> 969
    assert got == {"proxy": 969, "app": 875, "small": 969}
