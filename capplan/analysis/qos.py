"""Pod QoS class, computed as Kubernetes does.

Follows kubernetes/kubernetes pkg/apis/core/v1/helper/qos/qos.go (`GetPodQOS`, without pod-level
resources): over all containers, init containers included, only cpu and memory count;
a zero request is ignored; a missing request was defaulted to the limit by the apiserver.
- BestEffort: no container has any cpu or memory request or limit.
- Guaranteed: every container has both a cpu and a memory limit, and the summed requests equal
  the summed limits for each resource.
- Burstable: everything else.
"""

from __future__ import annotations

import polars as pl

QOS_ORDER = {"BestEffort": 0, "Burstable": 1, "Guaranteed": 2}


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
            if request is not None and request != 0:
                requests[resource] = requests.get(resource, 0.0) + float(request)
            if limit is not None and limit != 0:
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
    for (namespace, pod), group in containers.group_by(["namespace", "pod"], maintain_order=True):
        rows.append({"namespace": namespace, "pod": pod, "qos_class": qos_class(group.select(cols).to_dicts())})
    return pl.DataFrame(rows, schema={"namespace": pl.Utf8, "pod": pl.Utf8, "qos_class": pl.Utf8})
