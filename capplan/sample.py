"""A seeded generator of realistic synthetic clusters, and the sample format it writes.

The sample format is a folder of Parquet files named after the store's tables (see
data/samples/README.md): `nodes`, `pods`, `containers`, `owners`, `workloads`, `hpas`,
`resource_quotas` (spec intervals with valid_from/valid_to), `usage` (namespace, pod, container,
node, ts, cpu_cores, memory_bytes) and `restarts`. `capplan import FOLDER` loads it through the
same store writers the collector uses. `generate_cluster(seed, copies=k)` repeats the base
cluster k times (namespaces and nodes suffixed) for benchmarks at larger sizes.

The base cluster is built so that every analysis has something to find: eight nodes of two
instance types (one with allocatable == capacity, one tainted for batch), namespaces with
Deployments (via ReplicaSets), StatefulSets, a DaemonSet, CronJob-owned Jobs and bare pods,
all three QoS classes, sidecars and an init container, daily cycles, a slow memory leak, a
container OOM-killed at its limit, an idle over-provisioned workload, a CPU-starved one (pinned
at its limit), a growing namespace, a Deployment too large to roll out, and a node that comes
close to memory pressure at its daily peak.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from capplan.reservation import CPU_RESERVE_TIERS, MEMORY_RESERVE_TIERS, tiered_reservation

GiB = 2**30
MiB = 2**20
SAMPLE_START = datetime(2026, 11, 1, 0, 0, 0)


@dataclass
class ContainerSpec:
    """One container of a workload template, with its usage model."""

    name: str
    cpu_request: float | None
    cpu_limit: float | None
    memory_request: int | None
    memory_limit: int | None
    init: bool = False
    restartable: bool = False
    cpu_base: float = 0.05          # mean cores
    cpu_daily: float = 0.5          # relative amplitude of the daily cycle
    cpu_noise: float = 0.15         # relative noise
    memory_base: float = 100 * MiB  # bytes
    memory_daily: float = 0.1       # relative amplitude
    memory_leak_per_day: float = 0.0  # bytes per day
    memory_spike: float = 0.0       # bytes added at the daily peak hour (one-hour spike)


@dataclass
class Workload:
    """A workload template: its kind, owner chain and containers."""

    namespace: str
    kind: str  # Deployment, StatefulSet, DaemonSet, CronJob, Pod
    name: str
    replicas: int
    containers: list[ContainerSpec]
    priority_class: str | None = None
    strategy: str | None = None
    max_surge_pods: int | None = None
    tolerates: tuple[str, ...] = ()
    node_selector: str | None = None
    # replicas over time: (day offset, replicas) steps for growing workloads
    replicas_schedule: tuple[tuple[float, int], ...] = ()
    hpa_metric: str | None = None


@dataclass
class NodeSpec:
    """One node: capacity, allocatable, labels, taints."""

    name: str
    instance_type: str
    cpu_capacity: float
    memory_capacity: int
    pods_capacity: int
    cpu_allocatable: float
    memory_allocatable: int
    pods_allocatable: int
    taints: list[dict[str, str]] = field(default_factory=list)


@dataclass
class SampleCluster:
    """A generated cluster: spec frames, and the container models for usage generation."""

    frames: dict[str, pl.DataFrame]
    # one row per (namespace, pod, container) with its model and life span
    models: pl.DataFrame
    start: datetime
    end: datetime
    step: timedelta
    seed: int


def _node_types() -> dict[str, tuple[float, int]]:
    return {"m5.2xlarge": (8.0, 32 * GiB), "m5.xlarge": (4.0, 16 * GiB)}


def _reserved(cpu: float, memory: int) -> tuple[float, int]:
    # GKE's reservation table, the guideline capplan's `nodes` checks against (one copy of it,
    # in capplan.reservation); providers write allocatable rounded, so round here too.
    return (round(tiered_reservation(cpu, CPU_RESERVE_TIERS), 3),
            int(tiered_reservation(memory, MEMORY_RESERVE_TIERS)) + 100 * MiB)


def base_nodes(suffix: str = "") -> list[NodeSpec]:
    """Eight nodes: five m5.2xlarge (one tainted for batch), three m5.xlarge (one unreserved)."""
    nodes = []
    layout = [
        ("m5.2xlarge", True, []),
        ("m5.2xlarge", True, []),
        ("m5.2xlarge", True, []),
        ("m5.2xlarge", True, []),
        ("m5.2xlarge", True, [{"key": "dedicated", "value": "batch", "effect": "NoSchedule"}]),
        ("m5.xlarge", True, []),
        ("m5.xlarge", True, []),
        ("m5.xlarge", False, []),  # kubelet started without kube-reserved/system-reserved
    ]
    for i, (itype, reserved, taints) in enumerate(layout, start=1):
        cpu, mem = _node_types()[itype]
        rcpu, rmem = _reserved(cpu, mem) if reserved else (0.0, 0)
        nodes.append(
            NodeSpec(
                name=f"node-{i}{suffix}",
                instance_type=itype,
                cpu_capacity=cpu,
                memory_capacity=mem,
                pods_capacity=110,
                cpu_allocatable=round(cpu - rcpu, 3),
                memory_allocatable=mem - rmem,
                pods_allocatable=110,
                taints=taints,
            )
        )
    return nodes


def base_workloads(suffix: str = "") -> list[Workload]:
    """The base cluster's workloads (about 60 pods)."""
    C = ContainerSpec
    web, data, batch, mon, ml = (f"{n}{suffix}" for n in ("web", "data", "batch", "monitoring", "ml"))
    return [
        # Too big to roll: each replica asks for 5 cores; a surge pod fits in no node.
        Workload(ml, "Deployment", "inference", 2, [
            C("model-server", 5.0, 6.0, 6 * GiB, 8 * GiB, cpu_base=2.2, cpu_daily=0.5, memory_base=4.8 * GiB, memory_daily=0.05),
        ], priority_class="web-critical", strategy="RollingUpdate", max_surge_pods=1),
        Workload(web, "Deployment", "frontend", 6, [
            C("nginx", 0.2, 1.0, 256 * MiB, 512 * MiB, cpu_base=0.12, cpu_daily=0.7, memory_base=140 * MiB),
            C("log-shipper", 0.05, None, 64 * MiB, 128 * MiB, cpu_base=0.01, memory_base=40 * MiB, memory_daily=0.05),
        ], priority_class="web-critical", strategy="RollingUpdate", max_surge_pods=2),
        Workload(web, "Deployment", "api", 8, [
            C("api", 0.5, 2.0, 512 * MiB, 1 * GiB, cpu_base=0.35, cpu_daily=0.8, memory_base=380 * MiB, memory_daily=0.15),
        ], priority_class="web-critical", strategy="RollingUpdate", max_surge_pods=2, hpa_metric="cpu"),
        # CPU-starved: its limit is below what it wants, so it sits at the limit all day.
        Workload(web, "Deployment", "checkout", 3, [
            C("checkout", 0.1, 0.25, 256 * MiB, 256 * MiB, cpu_base=0.6, cpu_daily=0.3, cpu_noise=0.1, memory_base=170 * MiB),
        ], strategy="RollingUpdate", max_surge_pods=1),
        # Idle and over-provisioned: Guaranteed 2 cores / 4Gi, uses almost nothing.
        Workload(web, "Deployment", "legacy-admin", 2, [
            C("admin", 2.0, 2.0, 4 * GiB, 4 * GiB, cpu_base=0.004, cpu_daily=0.2, memory_base=210 * MiB, memory_daily=0.02),
        ], strategy="RollingUpdate", max_surge_pods=1),
        # OOM-killed: working set climbs to the 512Mi limit every afternoon.
        Workload(web, "Deployment", "image-resizer", 2, [
            C("resizer", 0.25, 1.0, 384 * MiB, 512 * MiB, cpu_base=0.15, cpu_daily=0.9, memory_base=300 * MiB,
              memory_daily=0.2, memory_spike=260 * MiB),
        ], strategy="RollingUpdate", max_surge_pods=1),
        Workload(data, "StatefulSet", "postgres", 3, [
            C("init-perms", 0.1, 0.1, 64 * MiB, 64 * MiB, init=True, cpu_base=0.0, memory_base=0),
            C("postgres", 1.0, 1.0, 4 * GiB, 4 * GiB, cpu_base=0.45, cpu_daily=0.5, memory_base=2.6 * GiB, memory_daily=0.08),
            C("exporter", 0.05, 0.05, 64 * MiB, 64 * MiB, cpu_base=0.01, memory_base=30 * MiB, memory_daily=0.02),
        ], priority_class="data-critical"),
        Workload(data, "StatefulSet", "redis", 3, [
            C("redis", 0.25, None, 1 * GiB, None, cpu_base=0.08, memory_base=700 * MiB, memory_daily=0.05),
            C("metrics-proxy", 0.02, None, 32 * MiB, None, init=True, restartable=True, cpu_base=0.005, memory_base=20 * MiB),
        ], priority_class="data-critical"),
        # A slow memory leak: +120Mi a day, no limit.
        Workload(data, "Deployment", "session-cache", 1, [
            C("cache", 0.2, None, 512 * MiB, None, cpu_base=0.05, memory_base=420 * MiB, memory_daily=0.03,
              memory_leak_per_day=120 * MiB),
        ], strategy="RollingUpdate", max_surge_pods=1),
        Workload(batch, "CronJob", "nightly-report", 1, [
            C("report", None, None, None, None, cpu_base=0.9, cpu_daily=0.0, memory_base=900 * MiB, memory_daily=0.0),
        ], tolerates=("dedicated",)),
        Workload(mon, "DaemonSet", "node-exporter", 0, [
            C("node-exporter", 0.1, 0.25, 64 * MiB, 128 * MiB, cpu_base=0.02, memory_base=35 * MiB, memory_daily=0.02),
        ], priority_class="system-node-critical", tolerates=("*",)),
        Workload(mon, "Pod", "debug-shell", 2, [
            C("shell", None, None, None, None, cpu_base=0.002, memory_base=15 * MiB, memory_daily=0.0),
        ]),
        # Growing: replicas rise from 3 to 8 over two weeks, and each pod's usage grows too.
        Workload(ml, "Deployment", "feature-store", 8, [
            C("store", 0.5, 2.0, 2 * GiB, 3 * GiB, cpu_base=0.3, cpu_daily=0.4, memory_base=1.4 * GiB, memory_daily=0.1,
              memory_leak_per_day=25 * MiB),
        ], strategy="RollingUpdate", max_surge_pods=1,
            replicas_schedule=((0, 3), (3, 4), (5, 5), (8, 6), (10, 7), (12, 8))),
        # Memory-hungry pods with small requests on the unreserved node: it nears pressure daily.
        Workload(ml, "Deployment", "trainer", 3, [
            C("trainer", 0.2, None, 1 * GiB, None, cpu_base=0.12, cpu_daily=0.6, memory_base=2.57 * GiB, memory_daily=0.26),
        ], strategy="Recreate", node_selector="node-8"),
    ]


def _hash_name(text: str) -> str:
    # low-order FNV bits: they change with every byte of the name
    return f"{hash_stable(text):016x}"[::-1][:10]


def hash_stable(text: str) -> int:
    """A process-independent hash (Python's hash() is salted per process)."""
    value = 1469598103934665603
    for byte in text.encode():
        value = ((value ^ byte) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return value


def _schedule(nodes: list[NodeSpec], free: dict[str, list[float]], cpu: float, mem: float,
              tolerates: tuple[str, ...], selector: str | None, preferred: str | None = None) -> str:
    """Least-requested placement by requests, honouring NoSchedule taints and a node selector."""
    candidates = []
    for node in nodes:
        if selector and not node.name.startswith(selector):
            continue
        if node.taints and "*" not in tolerates and not all(t["key"] in tolerates for t in node.taints):
            continue
        f = free[node.name]
        if f[0] + 1e-9 >= cpu and f[1] >= mem:
            score = min(f[0] / node.cpu_allocatable, f[1] / node.memory_allocatable)
            candidates.append((score, node.name))
    if not candidates:
        raise RuntimeError(f"sample generator: no room for a pod of {cpu} cores / {mem} bytes")
    if preferred and any(n == preferred for _, n in candidates):
        return preferred
    candidates.sort(key=lambda c: (-c[0], c[1]))
    return candidates[0][1]


def generate_cluster(seed: int = 7, days: int = 14, step: timedelta = timedelta(minutes=5),
                     copies: int = 1, start: datetime = SAMPLE_START) -> SampleCluster:
    """Generate the sample cluster (repeated `copies` times) over `days` at `step`."""
    rng = np.random.default_rng(seed)
    end = start + timedelta(days=days) - step
    Rows = list[dict[str, Any]]
    node_rows: Rows = []
    pod_rows: Rows = []
    ctr_rows: Rows = []
    owner_rows: Rows = []
    wl_rows: Rows = []
    hpa_rows: Rows = []
    quota_rows: Rows = []
    model_rows: Rows = []
    for copy in range(copies):
        suffix = "" if copies == 1 else f"-{copy + 1}"
        nodes = base_nodes(suffix)
        free = {n.name: [n.cpu_allocatable, float(n.memory_allocatable), n.pods_allocatable] for n in nodes}
        for n in nodes:
            node_rows.append({
                "node": n.name, "valid_from": start, "valid_to": end,
                "cpu_capacity_cores": n.cpu_capacity, "memory_capacity_bytes": n.memory_capacity,
                "pods_capacity": n.pods_capacity, "cpu_allocatable_cores": n.cpu_allocatable,
                "memory_allocatable_bytes": n.memory_allocatable, "pods_allocatable": n.pods_allocatable,
                "labels": json.dumps({"kubernetes.io/hostname": n.name,
                                      "node.kubernetes.io/instance-type": n.instance_type}, sort_keys=True),
                "taints": json.dumps(n.taints),
            })
        for wl in base_workloads(suffix):
            _expand_workload(wl, nodes, free, start, end, days, step, rng, suffix,
                             pod_rows, ctr_rows, owner_rows, wl_rows, hpa_rows, model_rows)
        ns_ml = f"ml{suffix}"
        quota_rows += [
            {"namespace": ns_ml, "quota": "ml-quota", "resource": "requests.cpu", "valid_from": start, "valid_to": end, "hard": 24.0},
            {"namespace": ns_ml, "quota": "ml-quota", "resource": "requests.memory", "valid_from": start, "valid_to": end, "hard": float(48 * GiB)},
        ]
    frames = {
        "nodes": pl.DataFrame(node_rows),
        "pods": pl.DataFrame(pod_rows, infer_schema_length=None),
        "containers": pl.DataFrame(ctr_rows, infer_schema_length=None),
        "owners": pl.DataFrame(owner_rows),
        "workloads": pl.DataFrame(wl_rows, infer_schema_length=None),
        "hpas": pl.DataFrame(hpa_rows),
        "resource_quotas": pl.DataFrame(quota_rows),
    }
    models = pl.DataFrame(model_rows, infer_schema_length=None)
    cluster = SampleCluster(frames=frames, models=models, start=start, end=end, step=step, seed=seed)
    cluster.frames["restarts"] = _restarts(cluster)
    return cluster


def _expand_workload(wl: Workload, nodes: list[NodeSpec], free: dict[str, list[float]], start: datetime,
                     end: datetime, days: int, step: timedelta, rng: np.random.Generator, suffix: str,
                     pod_rows: list, ctr_rows: list, owner_rows: list, wl_rows: list, hpa_rows: list,
                     model_rows: list) -> None:
    ns = wl.namespace
    app_containers = [c for c in wl.containers if not c.init or c.restartable]

    def pod_request(attr: str) -> float:
        total = sum(getattr(c, attr) or 0 for c in app_containers)
        inits = [getattr(c, attr) or 0 for c in wl.containers if c.init and not c.restartable]
        return max([total] + inits)

    cpu_req, mem_req = pod_request("cpu_request"), pod_request("memory_request")
    pods: list[tuple[str, str, str, datetime, datetime, str | None]] = []  # name, owner_kind, owner_name, from, to, node
    if wl.kind == "Deployment":
        rs = f"{wl.name}-{_hash_name(ns + wl.name)[:9]}"
        owner_rows.append({"namespace": ns, "kind": "ReplicaSet", "name": rs, "valid_from": start, "valid_to": end,
                           "owner_kind": "Deployment", "owner_name": wl.name})
        schedule = wl.replicas_schedule or ((0, wl.replicas),)
        for i in range(wl.replicas):
            born_day = next(d for d, r in schedule if r > i)
            born = start + timedelta(days=born_day)
            pods.append((f"{rs}-{_hash_name(rs + str(i))[:5]}", "ReplicaSet", rs, born, end, None))
        for d, r in schedule:
            wl_rows.append({"namespace": ns, "kind": "Deployment", "name": wl.name,
                            "valid_from": start + timedelta(days=d), "replicas": r,
                            "strategy": wl.strategy, "max_surge_pods": wl.max_surge_pods})
        # close each replicas interval where the next begins
        mine = [row for row in wl_rows if row["namespace"] == ns and row["name"] == wl.name and "valid_to" not in row]
        for a, b in zip(mine, mine[1:] + [None], strict=True):
            a["valid_to"] = (b["valid_from"] - step) if b else end
        if wl.hpa_metric:
            hpa_rows.append({"namespace": ns, "hpa": wl.name, "metric_name": wl.hpa_metric, "valid_from": start,
                             "valid_to": end, "target_kind": "Deployment", "target_name": wl.name})
    elif wl.kind == "StatefulSet":
        for i in range(wl.replicas):
            pods.append((f"{wl.name}-{i}", "StatefulSet", wl.name, start, end, None))
    elif wl.kind == "DaemonSet":
        for spec in nodes:
            pods.append((f"{wl.name}-{_hash_name(spec.name + wl.name)[:5]}", "DaemonSet", wl.name, start, end, spec.name))
    elif wl.kind == "CronJob":
        for day in range(days):
            job = f"{wl.name}-{29400000 + day * 1440}"
            owner_rows.append({"namespace": ns, "kind": "Job", "name": job,
                               "valid_from": start + timedelta(days=day, hours=1),
                               "valid_to": start + timedelta(days=day, hours=3), "owner_kind": "CronJob",
                               "owner_name": wl.name})
            pods.append((f"{job}-{_hash_name(job)[:5]}", "Job", job, start + timedelta(days=day, hours=1),
                         start + timedelta(days=day, hours=3), None))
    else:  # bare pods
        for i in range(wl.replicas):
            pods.append((f"{wl.name}-{i}", "", "", start, end, None))

    for pod_index, (pod, owner_kind, owner_name, born, dies, pinned) in enumerate(pods):
        if pinned:
            node = pinned
        elif wl.kind == "CronJob":
            node = next(n.name for n in nodes if n.taints) if any(n.taints for n in nodes) else nodes[0].name
        else:
            node = _schedule(nodes, free, cpu_req, mem_req, wl.tolerates,
                             wl.node_selector + suffix if wl.node_selector else None)
        if wl.kind != "CronJob":
            free[node][0] -= cpu_req
            free[node][1] -= mem_req
        qos = _qos(wl.containers)
        pod_rows.append({"namespace": ns, "pod": pod, "valid_from": born, "valid_to": dies, "node": node,
                         "owner_kind": owner_kind or None, "owner_name": owner_name or None,
                         "priority_class": wl.priority_class, "qos_class": qos,
                         "phase": "Succeeded" if wl.kind == "CronJob" else "Running",
                         "overhead_cpu_cores": None, "overhead_memory_bytes": None})
        init_order = 0
        for c in wl.containers:
            ctr_rows.append({"namespace": ns, "pod": pod, "container": c.name, "valid_from": born, "valid_to": dies,
                             "init_container": c.init, "restartable": c.restartable,
                             "init_order": init_order if c.init else None,
                             "cpu_request_cores": c.cpu_request, "cpu_limit_cores": c.cpu_limit,
                             "memory_request_bytes": c.memory_request, "memory_limit_bytes": c.memory_limit})
            if c.init:
                init_order += 1
            if c.init and not c.restartable:
                continue  # init containers run to completion before the window's samples
            jitter = float(rng.uniform(0.85, 1.15))
            model_rows.append({
                "namespace": ns, "pod": pod, "container": c.name, "node": node, "born": born, "dies": dies,
                "cpu_base": c.cpu_base * jitter, "cpu_daily": c.cpu_daily, "cpu_noise": c.cpu_noise,
                "cpu_limit": c.cpu_limit if c.cpu_limit is not None else float("nan"),
                "memory_base": c.memory_base * jitter, "memory_daily": c.memory_daily,
                "memory_leak_per_day": c.memory_leak_per_day,
                # only the first replica of a spiking workload spikes, so one container is OOM-killed
                "memory_spike": c.memory_spike if pod_index == 0 else 0.0,
                "memory_limit": float(c.memory_limit) if c.memory_limit is not None else float("nan"),
                "phase_hours": float(rng.uniform(-1.0, 1.0)),
            })


def _qos(containers: list[ContainerSpec]) -> str:
    """QoS as the apiserver computes it (for the pods' reported qos_class)."""
    any_set = any(v is not None for c in containers for v in (c.cpu_request, c.cpu_limit, c.memory_request, c.memory_limit))
    if not any_set:
        return "BestEffort"
    guaranteed = all(
        c.cpu_limit is not None and c.memory_limit is not None
        and (c.cpu_request is None or c.cpu_request == c.cpu_limit)
        and (c.memory_request is None or c.memory_request == c.memory_limit)
        for c in containers
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _timestamps(cluster: SampleCluster, start: datetime, end: datetime) -> np.ndarray:
    first = cluster.start + math.ceil((start - cluster.start) / cluster.step) * cluster.step
    count = int((min(end, cluster.end) - first) / cluster.step) + 1
    return np.array([first + i * cluster.step for i in range(max(count, 0))], dtype="datetime64[us]")


def usage_matrix(cluster: SampleCluster, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CPU cores and memory bytes for every modelled container (rows) at times `ts` (columns),
    and the alive mask. Deterministic for a seed and a time, whatever the chunking."""
    m = cluster.models
    hours = (ts - np.datetime64(cluster.start, "us")).astype("timedelta64[s]").astype(np.float64) / 3600.0
    phase = m["phase_hours"].to_numpy()[:, None]
    # daily cycle peaking at 15:00; weekends quieter
    day_angle = 2 * np.pi * ((hours[None, :] - phase - 9.0) / 24.0)
    daily = np.sin(day_angle)
    dow = ((hours // 24) + cluster.start.weekday()) % 7
    weekend = np.where(dow >= 5, 0.7, 1.0)[None, :]
    n_rows, n_cols = len(m), len(ts)
    # noise seeded per time step so any chunking gives the same values
    steps = np.round(hours * 3600 / cluster.step.total_seconds()).astype(np.int64)
    noise_cpu = np.empty((n_rows, n_cols))
    noise_mem = np.empty((n_rows, n_cols))
    for j, s in enumerate(steps):
        g = np.random.default_rng([cluster.seed, int(s)])
        noise_cpu[:, j] = g.standard_normal(n_rows)
        noise_mem[:, j] = g.standard_normal(n_rows)
    cpu = m["cpu_base"].to_numpy()[:, None] * (1 + m["cpu_daily"].to_numpy()[:, None] * daily) * weekend
    cpu = cpu * (1 + m["cpu_noise"].to_numpy()[:, None] * noise_cpu)
    cpu_limit = m["cpu_limit"].to_numpy()[:, None]
    cpu = np.where(np.isnan(cpu_limit), cpu, np.minimum(cpu, cpu_limit))
    cpu = np.clip(cpu, 0.0005, None)
    days = hours[None, :] / 24.0
    mem = m["memory_base"].to_numpy()[:, None] * (1 + m["memory_daily"].to_numpy()[:, None] * daily)
    mem = mem + m["memory_leak_per_day"].to_numpy()[:, None] * days
    growth = np.where(m["namespace"].str.starts_with("ml").to_numpy()[:, None], 1 + 0.02 * days, 1.0)
    cpu = cpu * growth
    mem = mem * (1 + 0.01 * noise_mem)
    hour_of_day = (hours[None, :] - phase) % 24
    spike = m["memory_spike"].to_numpy()[:, None] * ((hour_of_day >= 14.5) & (hour_of_day < 15.5))
    mem = mem + spike
    mem_limit = m["memory_limit"].to_numpy()[:, None]
    mem = np.where(np.isnan(mem_limit), mem, np.minimum(mem, mem_limit))
    born = m["born"].cast(pl.Datetime("us")).to_numpy()[:, None]
    dies = m["dies"].cast(pl.Datetime("us")).to_numpy()[:, None]
    alive = (ts[None, :] >= born) & (ts[None, :] <= dies)
    return cpu, np.maximum(mem, 1 * MiB), alive


def usage_frames(cluster: SampleCluster, chunk: timedelta = timedelta(days=1)) -> Iterator[pl.DataFrame]:
    """Usage samples (namespace, pod, container, node, ts, cpu_cores, memory_bytes) in time chunks."""
    m = cluster.models
    t = cluster.start
    while t <= cluster.end:
        ts = _timestamps(cluster, t, t + chunk - cluster.step)
        t += chunk
        if len(ts) == 0:
            continue
        cpu, mem, alive = usage_matrix(cluster, ts)
        rows, cols = np.nonzero(alive)
        yield pl.DataFrame({
            "namespace": m["namespace"].to_numpy()[rows],
            "pod": m["pod"].to_numpy()[rows],
            "container": m["container"].to_numpy()[rows],
            "node": m["node"].to_numpy()[rows],
            "ts": ts[cols],
            "cpu_cores": cpu[rows, cols].astype(np.float32),
            "memory_bytes": mem[rows, cols].astype(np.int64),
        }).with_columns(pl.col("namespace", "pod", "container", "node").cast(pl.Utf8))


def _restarts(cluster: SampleCluster) -> pl.DataFrame:
    """A restart with reason OOMKilled each time a container's working set reaches its limit."""
    m = cluster.models
    limited = m.with_row_index("row").filter(pl.col("memory_limit").is_not_nan() & (pl.col("memory_spike") > 0))
    rows = []
    if limited.is_empty():
        return pl.DataFrame(schema={"namespace": pl.Utf8, "pod": pl.Utf8, "container": pl.Utf8,
                                    "ts": pl.Datetime("us"), "restarts_total": pl.Int64, "reason": pl.Utf8})
    ts = _timestamps(cluster, cluster.start, cluster.end)
    sub = SampleCluster(frames={}, models=limited.drop("row"), start=cluster.start, end=cluster.end,
                        step=cluster.step, seed=cluster.seed)
    # noise must match the full matrix: recompute on the full model set, then take the rows
    _, mem, alive = usage_matrix(cluster, ts)
    for row in limited.iter_rows(named=True):
        at_limit = (mem[row["row"]] >= row["memory_limit"]) & alive[row["row"]]
        # one kill per contiguous stretch at the limit
        starts = np.nonzero(at_limit & ~np.concatenate([[False], at_limit[:-1]]))[0]
        for n, j in enumerate(starts, start=1):
            rows.append({"namespace": row["namespace"], "pod": row["pod"], "container": row["container"],
                         "ts": ts[j].astype(datetime), "restarts_total": n, "reason": "OOMKilled"})
    del sub
    return pl.DataFrame(rows).with_columns(pl.col("ts").cast(pl.Datetime("us")))


def write_sample(cluster: SampleCluster, folder: str | Path) -> dict[str, int]:
    """Write the cluster in the sample format; returns rows per file."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, frame in cluster.frames.items():
        frame.write_parquet(out / f"{name}.parquet", compression="zstd")
        counts[name] = frame.height
    usage = pl.concat(list(usage_frames(cluster)))
    usage = usage.sort("namespace", "pod", "container", "ts")
    usage.write_parquet(out / "usage.parquet", compression="zstd", compression_level=19, statistics=False)
    counts["usage"] = usage.height
    (out / "meta.json").write_text(json.dumps({
        "format": "capplan-sample", "version": 1, "seed": cluster.seed,
        "start": cluster.start.replace(tzinfo=UTC).isoformat(),
        "end": cluster.end.replace(tzinfo=UTC).isoformat(),
        "step_seconds": int(cluster.step.total_seconds()), "rows": counts,
    }, indent=1) + "\n")
    return counts


if __name__ == "__main__":  # `python -m capplan.sample FOLDER [SEED]`
    import sys

    target = sys.argv[1] if len(sys.argv) > 1 else "data/samples/cluster"
    seed_arg = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    print(write_sample(generate_cluster(seed=seed_arg), target))
