"""Pod requests and limits as the scheduler counts them (component-helpers resource/helpers.go
PodRequests/PodLimits): hand-worked pods, and a literal port of aggregateContainerResourcesByFn
as the independent second implementation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capplan.analysis.pods import pod_resources
from tests.analysis.cluster_builder import MiB, ctr, pod, pods_with_containers


def one(pods, containers) -> dict:
    out = pod_resources(pods_with_containers(pods, containers))
    assert out.height == len(pods)
    return out.row(0, named=True)


def test_app_containers_are_summed() -> None:
    r = one([pod("ns", "p", "n1")], [
        ctr("ns", "p", "a", 0.1, 0.2, 64 * MiB, 128 * MiB),
        ctr("ns", "p", "b", 0.2, 0.4, 128 * MiB, 256 * MiB),
    ])
    # 100m + 200m = 300m; 64Mi + 128Mi = 192Mi; limits 200m + 400m, 128Mi + 256Mi
    assert r["cpu_request_cores"] == pytest.approx(0.3)
    assert r["memory_request_bytes"] == 192 * MiB
    assert r["cpu_limit_cores"] == pytest.approx(0.6)
    assert r["memory_limit_bytes"] == 384 * MiB
    assert r["containers"] == 2 and r["cpu_unlimited_containers"] == 0


def test_a_larger_init_container_sets_the_pod_request() -> None:
    r = one([pod("ns", "p", "n1")], [
        ctr("ns", "p", "app", 0.3, None, 100 * MiB, None),
        ctr("ns", "p", "migrate", 1.0, None, 50 * MiB, None, init=True, order=0),
    ])
    # cpu: max(0.3 app, 1.0 init) = 1.0; memory: max(100Mi, 50Mi) = 100Mi (each resource on its own)
    assert r["cpu_request_cores"] == pytest.approx(1.0)
    assert r["memory_request_bytes"] == 100 * MiB
    # a regular init container is not running: its missing limits make nothing unbounded
    assert r["cpu_unlimited_containers"] == 1 and r["containers"] == 1


@pytest.mark.parametrize("sidecar_order,init_order,expected_cpu", [
    # sidecar declared before the init container: the init runs beside it: 0.35 + 0.1 = 0.45 > 0.4
    (0, 1, 0.45),
    # sidecar declared after: the init runs alone, 0.35 < running 0.3 + 0.1 = 0.4
    (1, 0, 0.40),
])
def test_sidecar_declared_before_an_init_container_counts_during_it(sidecar_order, init_order, expected_cpu) -> None:
    r = one([pod("ns", "p", "n1")], [
        ctr("ns", "p", "app", 0.3, 0.3, 64 * MiB, 64 * MiB),
        ctr("ns", "p", "proxy", 0.1, 0.1, 16 * MiB, 16 * MiB, sidecar=True, order=sidecar_order),
        ctr("ns", "p", "setup", 0.35, 0.35, 8 * MiB, 8 * MiB, init=True, order=init_order),
    ])
    assert r["cpu_request_cores"] == pytest.approx(expected_cpu)
    assert r["cpu_limit_cores"] == pytest.approx(expected_cpu)  # limits follow the same formula
    # memory: running 64Mi + 16Mi = 80Mi beats either init moment (8Mi or 8Mi + 16Mi)
    assert r["memory_request_bytes"] == 80 * MiB
    assert r["containers"] == 2  # app + sidecar run


def test_interleaved_sidecars_and_inits_each_resource_on_its_own() -> None:
    # declaration order: s1, i1, s2, i2; app container beside them
    r = one([pod("ns", "p", "n1")], [
        ctr("ns", "p", "s1", 0.1, None, 10 * MiB, None, sidecar=True, order=0),
        ctr("ns", "p", "i1", 0.5, None, 120 * MiB, None, init=True, order=1),
        ctr("ns", "p", "s2", 0.2, None, 20 * MiB, None, sidecar=True, order=2),
        ctr("ns", "p", "i2", 0.35, None, 95 * MiB, None, init=True, order=3),
        ctr("ns", "p", "app", 0.25, None, 50 * MiB, None),
    ])
    # running: 0.25 + 0.1 + 0.2 = 0.55 cores; 50 + 10 + 20 = 80Mi
    # i1 moment: 0.5 + 0.1 (s1) = 0.6; 120 + 10 = 130Mi
    # i2 moment: 0.35 + 0.1 + 0.2 = 0.65; 95 + 10 + 20 = 125Mi
    assert r["cpu_request_cores"] == pytest.approx(0.65)   # from i2
    assert r["memory_request_bytes"] == 130 * MiB          # from i1
    assert r["cpu_unlimited_containers"] == 3              # app, s1, s2 run without limits


def test_unknown_init_order_assumes_sidecars_start_first() -> None:
    r = one([pod("ns", "p", "n1")], [
        ctr("ns", "p", "app", 0.1, None, 10 * MiB, None),
        ctr("ns", "p", "side", 0.2, None, 10 * MiB, None, sidecar=True, order=None),
        ctr("ns", "p", "init", 0.5, None, 10 * MiB, None, init=True, order=None),
    ])
    # the larger of the possible orders: 0.5 + 0.2 = 0.7 (running is 0.3)
    assert r["cpu_request_cores"] == pytest.approx(0.7)


def test_overhead_adds_to_requests_and_only_to_set_limits() -> None:
    r = one([pod("ns", "p", "n1", overhead_cpu=0.25, overhead_memory=120 * MiB)], [
        ctr("ns", "p", "app", 0.5, 1.0, 256 * MiB, None),
    ])
    assert r["cpu_request_cores"] == pytest.approx(0.75)      # 0.5 + 0.25
    assert r["memory_request_bytes"] == 376 * MiB             # 256Mi + 120Mi
    assert r["cpu_limit_cores"] == pytest.approx(1.25)        # 1.0 + 0.25: the limit is set
    assert r["memory_limit_bytes"] == 0                       # no memory limit: PodLimits adds no overhead
    assert r["memory_unlimited_containers"] == 1


def test_request_defaults_to_limit_as_the_apiserver_does() -> None:
    r = one([pod("ns", "p", "n1")], [ctr("ns", "p", "app", None, 0.5, None, 256 * MiB)])
    assert r["cpu_request_cores"] == pytest.approx(0.5)
    assert r["memory_request_bytes"] == 256 * MiB


def test_pods_without_containers_give_an_empty_frame_with_the_columns() -> None:
    from tests.analysis.cluster_builder import containers_frame

    out = pod_resources(containers_frame([]))
    assert out.height == 0
    assert {"node", "cpu_request_cores", "memory_limit_bytes", "cpu_unlimited_containers"} <= set(out.columns)


# --- a literal port of helpers.go as the second implementation -----------------------------

def helpers_go(app: list[float | None], init: list[tuple[float | None, bool]]) -> float:
    """aggregateContainerResourcesByFn for one resource, line by line; None = not set."""
    result = sum(v for v in app if v is not None)
    restartable_sum = 0.0
    init_max = 0.0
    for value, restartable in init:
        v = value or 0.0
        if restartable:
            result += v
            restartable_sum += v
            moment = restartable_sum
        else:
            moment = v + restartable_sum
        init_max = max(init_max, moment)
    return max(result, init_max)


values = st.one_of(st.none(), st.integers(0, 4000).map(lambda m: m / 1000))


@settings(max_examples=150, deadline=None)
@given(app=st.lists(values, min_size=1, max_size=4),
       init=st.lists(st.tuples(values, st.booleans()), min_size=0, max_size=5))
def test_matches_a_literal_port_of_helpers_go(app, init) -> None:
    containers = [ctr("ns", "p", f"app{i}", v, None, None, None) for i, v in enumerate(app)]
    containers += [ctr("ns", "p", f"init{i}", v, None, None, None, init=not r, sidecar=r, order=i)
                   for i, (v, r) in enumerate(init)]
    r = one([pod("ns", "p", "n1")], containers)
    assert r["cpu_request_cores"] == pytest.approx(helpers_go(app, init), abs=1e-9)
