"""Pod QoS class and container oom_score_adj, computed as Kubernetes does.

QoS follows kubernetes/kubernetes pkg/apis/core/v1/helper/qos/qos.go (`GetPodQOS`, without
pod-level resources): over all containers, init containers included, only cpu and memory count;
a request or limit that is not positive is ignored; a missing request was defaulted to the limit
by the apiserver.
- BestEffort: no container has any cpu or memory request or limit.
- Guaranteed: every container has both a cpu and a memory limit, and the summed requests equal
  the summed limits for each resource. The comparison is of SUMS over the pod, not per container
  (`requests[name]` and `limits[name]` accumulate over `allContainers`), so two containers whose
  mismatches cancel out (cpu 1/2 and 2/1) make a Guaranteed pod: capplan keeps that quirk.
- Burstable: everything else.

oom_score_adj follows pkg/kubelet/qos/policy.go `GetContainerOOMScoreAdjust` (the version with
`guaranteedOOMScoreAdj = -997`, node-critical pods and sidecars), see `oom_score_adj`.
"""

from __future__ import annotations

import polars as pl

from capplan.analysis.row_groups import rows_by

QOS_ORDER = {"BestEffort": 0, "Burstable": 1, "Guaranteed": 2}

# pkg/kubelet/qos/policy.go constants.
GUARANTEED_OOM_SCORE_ADJ = -997
BESTEFFORT_OOM_SCORE_ADJ = 1000
# pkg/apis/scheduling/types.go: SystemCriticalPriority = 2 * HighestUserDefinablePriority (1e9);
# the built-in classes system-cluster-critical (2e9) and system-node-critical (2e9 + 1000).
SYSTEM_CRITICAL_PRIORITY = 2_000_000_000
SYSTEM_NODE_CRITICAL = "system-node-critical"
BUILTIN_PRIORITY_CLASSES = {"system-cluster-critical": 2_000_000_000, "system-node-critical": 2_000_001_000}


def qos_class(containers: list[dict]) -> str:
    """QoS class of one pod from its containers' cpu_request_cores, cpu_limit_cores,
    memory_request_bytes, memory_limit_bytes (None = unset)."""
    requests: dict[str, float] = {}
    limits: dict[str, float] = {}
    guaranteed = True
    for c in containers:
        limits_found = set()
        for resource in ("cpu", "memory"):
            unit = "cores" if resource == "cpu" else "bytes"
            limit = c.get(f"{resource}_limit_{unit}")
            request = c.get(f"{resource}_request_{unit}")
            if request is None and limit is not None:
                request = limit  # apiserver defaulting: a missing request takes the limit
            # qos.go: `quantity.Cmp(zeroQuantity) == 1`, only positive values count
            if request is not None and request > 0:
                requests[resource] = requests.get(resource, 0.0) + float(request)
            if limit is not None and limit > 0:
                limits_found.add(resource)
                limits[resource] = limits.get(resource, 0.0) + float(limit)
        if limits_found != {"cpu", "memory"}:
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed:
        for resource, value in requests.items():
            if resource not in limits or abs(limits[resource] - value) > 1e-9 * max(1.0, value):
                guaranteed = False
                break
    if guaranteed and len(requests) == len(limits):
        return "Guaranteed"
    return "Burstable"


def qos_classes(containers: pl.DataFrame) -> pl.DataFrame:
    """QoS class per pod (namespace, pod, qos_class) from a containers frame."""
    cols = ["cpu_request_cores", "cpu_limit_cores", "memory_request_bytes", "memory_limit_bytes"]
    rows = []
    for (namespace, pod), group in rows_by(containers.select("namespace", "pod", *cols), ["namespace", "pod"]).items():
        rows.append({"namespace": namespace, "pod": pod, "qos_class": qos_class(group)})
    return pl.DataFrame(rows, schema={"namespace": pl.Utf8, "pod": pl.Utf8, "qos_class": pl.Utf8})


def is_critical_pod(priority: int | None, static_pod: bool = False) -> bool:
    """pkg/kubelet/types/pod_update.go `IsCriticalPod`: a static or mirror pod, or one whose
    priority is at least SystemCriticalPriority. The kubelet's eviction manager refuses to evict
    these (pkg/kubelet/eviction/eviction_manager.go `evictPod`: "cannot evict a critical pod")."""
    return static_pod or (priority is not None and priority >= SYSTEM_CRITICAL_PRIORITY)


def is_node_critical_pod(priority_class: str | None, priority: int | None, static_pod: bool = False) -> bool:
    """pkg/kubelet/types/pod_update.go `IsNodeCriticalPod`: critical and of class system-node-critical."""
    return is_critical_pod(priority, static_pod) and priority_class == SYSTEM_NODE_CRITICAL


def oom_score_adj(qos: str, memory_request_bytes: int | None, memory_capacity_bytes: int, *,
                  node_critical: bool = False, sidecar: bool = False,
                  min_regular_memory_request_bytes: int | None = None) -> int:
    """The oom_score_adj the kubelet gives a container.

    pkg/kubelet/qos/policy.go `GetContainerOOMScoreAdjust` (without pod-level resources):
    node-critical pod -> -997; Guaranteed -> -997; BestEffort -> 1000; Burstable ->
    1000 - (1000 * request) / capacity in int64 arithmetic (Go division truncates); a sidecar
    (restartable init container) takes the lower of its own value and that of the smallest
    regular container's request (`minRegularContainerMemory`, pkg/kubelet/qos/helpers.go); then
    values under 1000 + (-997) = 3 become 3, and exactly 1000 becomes 999 so Burstable stays
    ahead of BestEffort. `memory_request_bytes` is the container's request after apiserver
    defaulting (None/0 = no request); `memory_capacity_bytes` the node's memory capacity.
    """
    if node_critical:
        return GUARANTEED_OOM_SCORE_ADJ
    if qos == "Guaranteed":
        return GUARANTEED_OOM_SCORE_ADJ
    if qos == "BestEffort":
        return BESTEFFORT_OOM_SCORE_ADJ
    capacity = int(memory_capacity_bytes)
    if capacity <= 0:
        raise ValueError("memory capacity must be positive")
    request = int(memory_request_bytes or 0)
    adjust = 1000 - _go_div(1000 * request, capacity)
    if sidecar and min_regular_memory_request_bytes is not None:
        min_adjust = 1000 - _go_div(1000 * int(min_regular_memory_request_bytes), capacity)
        if adjust > min_adjust:
            adjust = min_adjust
    if adjust < 1000 + GUARANTEED_OOM_SCORE_ADJ:
        return 1000 + GUARANTEED_OOM_SCORE_ADJ
    if adjust == BESTEFFORT_OOM_SCORE_ADJ:
        return adjust - 1
    return adjust


def _go_div(a: int, b: int) -> int:
    """Go's integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def defaulted_memory_request(request: float | None, limit: float | None) -> int:
    """A container's memory request as the API server stores it: a missing request takes the
    limit (pkg/apis/core/v1/defaults.go `SetDefaults_Pod`); 0 when neither is set."""
    if request is not None:
        return int(request)
    if limit is not None:
        return int(limit)
    return 0


def container_oom_scores(containers: pl.DataFrame, pods: pl.DataFrame, capacities: dict[str, int]) -> pl.DataFrame:
    """oom_score_adj per running container (app containers and sidecars; regular init
    containers have exited and are left out).

    `containers`: namespace, pod, container, init_container, restartable, memory_request_bytes,
    memory_limit_bytes. `pods`: namespace, pod, node, qos_class, node_critical.
    `capacities`: node -> memory capacity bytes. A pod on an unknown node gets null for
    Burstable containers (the value depends on the capacity).
    """
    pod_info = {(r["namespace"], r["pod"]): r for r in pods.iter_rows(named=True)}
    rows = []
    for (namespace, pod), records in rows_by(containers, ["namespace", "pod"]).items():
        info = pod_info.get((namespace, pod))
        if info is None:
            continue
        regular = [defaulted_memory_request(r["memory_request_bytes"], r["memory_limit_bytes"])
                   for r in records if not r.get("init_container")]
        min_regular = min(regular) if regular else None
        capacity = capacities.get(info.get("node") or "")
        for r in records:
            init, restartable = bool(r.get("init_container")), bool(r.get("restartable"))
            if init and not restartable:
                continue
            request = defaulted_memory_request(r["memory_request_bytes"], r["memory_limit_bytes"])
            if info["qos_class"] == "Burstable" and not info.get("node_critical") and not capacity:
                score = None
            else:
                score = oom_score_adj(info["qos_class"], request, capacity or 1,
                                      node_critical=bool(info.get("node_critical")),
                                      sidecar=init and restartable, min_regular_memory_request_bytes=min_regular)
            rows.append({"node": info.get("node"), "namespace": namespace, "pod": pod, "container": r["container"],
                         "sidecar": init and restartable, "qos_class": info["qos_class"],
                         "memory_request_bytes": request, "memory_limit_bytes": r["memory_limit_bytes"],
                         "node_memory_capacity_bytes": capacity, "oom_score_adj": score})
    schema = {"node": pl.Utf8, "namespace": pl.Utf8, "pod": pl.Utf8, "container": pl.Utf8, "sidecar": pl.Boolean,
              "qos_class": pl.Utf8, "memory_request_bytes": pl.Int64, "memory_limit_bytes": pl.Int64,
              "node_memory_capacity_bytes": pl.Int64, "oom_score_adj": pl.Int64}
    return pl.DataFrame(rows, schema=schema)
