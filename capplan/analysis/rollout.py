"""Rollout headroom: can each Deployment roll out now, and could it go blue-green?

A rolling update creates up to maxSurge new pods beside the old ones before old ones go; a
blue-green rollout brings up the whole new version (all replicas) beside the old; Recreate stops
the old pods first and needs nothing extra. The question is whether those extra pods can be
*placed*: each must fit on one node's free allocatable (allocatable minus the requests of the
pods there, cpu in millicores and memory in bytes, as the scheduler's NodeResourcesFit filter
counts, plus a free pod slot). Free capacity that sums to enough but is spread over nodes that
each have too little does not help.

Rules and assumptions:
- Each Deployment is judged alone against today's free capacity (two rolling at once share it).
- maxSurge as collected (kube-state-metrics reports it as an absolute count); when not
  collected, the default 25% of replicas rounded up (kubernetes/kubernetes
  pkg/apis/apps/v1/defaults.go `SetDefaults_Deployment` sets 25%; pkg/controller/deployment/
  util/deployment_util.go `ResolveFenceposts` scales it with
  intstr.GetScaledValueFromIntOrPercent(..., roundUp=true)).
- The pod shape is the largest cpu and the largest memory request (pod_resources: sidecars,
  init containers, overhead) among the Deployment's current pods.
- Placement is first-fit over nodes in name order. For identical pods this places as many as
  any placement could (each node takes floor(free / shape) of them), so "cannot place" is exact
  for the nodes the pods may use.
- Tolerations and node affinity are not collected. A Deployment may use a node with NoSchedule/
  NoExecute taints only if its pods run now on nodes carrying those taints (so they evidently
  tolerate them); nodeSelector/affinity are assumed absent.
- A namespace ResourceQuota on requests.cpu/cpu, requests.memory/memory or pods must also have
  room for the extra pods (quota admission rejects a pod that would exceed it).
- `blocked_by` lists what stops each kind: `rolling:placement`, `rolling:quota`,
  `blue_green:placement`, `blue_green:quota`.
- maxUnavailable is not collected: a rolling update whose surge pods cannot be placed may still
  crawl forward when maxUnavailable > 0 lets old pods go first, at reduced capacity.
  `can_roll` is false in that case because the rollout cannot proceed as specified.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb
import polars as pl

from capplan import store
from capplan.analysis.nodes import snapshot_window
from capplan.analysis.pods import (
    CURRENT_TOLERANCE,
    load_current_containers,
    load_current_nodes,
    pod_resources,
)
from capplan.analysis.taints import BLOCKING_EFFECTS, parse_taints
from capplan.errors import NoDataError
from capplan.quantity import format_bytes, format_cpu

DEFAULT_MAX_SURGE_PERCENT = 25
_QUOTA_KEYS = {"cpu": ("requests.cpu", "cpu"), "memory": ("requests.memory", "memory"), "pods": ("pods",)}

ROLLOUT_SCHEMA = {
    "namespace": pl.Utf8, "deployment": pl.Utf8, "strategy": pl.Utf8, "replicas": pl.Int64, "max_surge": pl.Int64,
    "pods_observed": pl.Int64, "pod_cpu_request_cores": pl.Float64, "pod_memory_request_bytes": pl.Float64,
    "rolling_extra_pods": pl.Int64, "rolling_extra_cpu_cores": pl.Float64, "rolling_extra_memory_bytes": pl.Float64,
    "rolling_placeable_pods": pl.Int64, "can_roll": pl.Boolean,
    "blue_green_extra_pods": pl.Int64, "blue_green_extra_cpu_cores": pl.Float64,
    "blue_green_extra_memory_bytes": pl.Float64, "blue_green_placeable_pods": pl.Int64, "can_blue_green": pl.Boolean,
    "eligible_nodes": pl.Int64, "blocked_by": pl.Utf8, "reason": pl.Utf8,
}


def _number(value: object) -> float:
    """A numeric column's min or max (polars types it as any scalar) as a float."""
    if not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def max_surge_pods(replicas: int, collected: int | None, percent: int = DEFAULT_MAX_SURGE_PERCENT) -> int:
    """maxSurge in pods: the collected absolute value, else `percent` of replicas rounded up
    (intstr.GetScaledValueFromIntOrPercent with roundUp=true: ceil(replicas * percent / 100))."""
    if collected is not None:
        return max(int(collected), 0)
    return -(-max(int(replicas), 0) * percent // 100)


def _millicores(cores: float) -> int:
    # the scheduler counts cpu in millicores (resource.Quantity.MilliValue)
    return int(round(cores * 1000))


@dataclass(frozen=True)
class FreeNode:
    """A node's free allocatable: millicores, bytes, pod slots, and its blocking taints."""

    node: str
    cpu_m: int
    memory_b: int
    pods: int
    taints: frozenset[tuple[str, str, str]]


def free_nodes(nodes: pl.DataFrame, pods: pl.DataFrame) -> list[FreeNode]:
    """Free allocatable per node (allocatable minus the requests of its pods), nodes in name
    order. `nodes` as queries/current_nodes.sql, `pods` as pod_resources()."""
    sums = pods.filter(pl.col("node").is_not_null()).group_by("node").agg(
        pl.len().alias("pods"), pl.col("cpu_request_cores").fill_null(0.0).sum(),
        pl.col("memory_request_bytes").fill_null(0.0).sum(),
    )
    out = []
    joined = nodes.join(sums, on="node", how="left").sort("node")
    for r in joined.iter_rows(named=True):
        taints = frozenset((t.get("key", ""), t.get("value") or "", t.get("effect", ""))
                           for t in parse_taints(r.get("taints")) if t.get("effect") in BLOCKING_EFFECTS)
        out.append(FreeNode(
            node=r["node"],
            cpu_m=_millicores(r["cpu_allocatable_cores"] or 0.0) - _millicores(r["cpu_request_cores"] or 0.0),
            memory_b=int(round(r["memory_allocatable_bytes"] or 0)) - int(round(r["memory_request_bytes"] or 0.0)),
            pods=int(r["pods_allocatable"] or 0) - int(r["pods"] or 0),
            taints=taints,
        ))
    return out


def place(free: Sequence[FreeNode], cpu_cores: float, memory_bytes: float, count: int) -> dict[str, int]:
    """First-fit placement of `count` pods requesting `cpu_cores` and `memory_bytes` on the
    nodes' free allocatable, in the order given: node -> pods placed there (nodes taking none
    are left out). Fewer than `count` in total means the rest cannot be placed."""
    cpu_m = math.ceil(cpu_cores * 1000 - 1e-9)  # a fractional millicore counts as a whole one
    mem_b = math.ceil(memory_bytes)
    placed: dict[str, int] = {}
    left = count
    for n in free:
        if left <= 0:
            break
        fits = [max(n.pods, 0)]
        if cpu_m > 0:
            fits.append(max(n.cpu_m, 0) // cpu_m)
        if mem_b > 0:
            fits.append(max(n.memory_b, 0) // mem_b)
        take = min(min(fits), left)
        if take > 0:
            placed[n.node] = take
            left -= take
    return placed


def tolerated_taints(free: Sequence[FreeNode], running_on: set[str]) -> frozenset[tuple[str, str, str]]:
    """The blocking taints of the nodes a Deployment's pods run on now (taken as tolerated)."""
    tolerated: set[tuple[str, str, str]] = set()
    for n in free:
        if n.node in running_on:
            tolerated |= n.taints
    return frozenset(tolerated)


def eligible(free: Sequence[FreeNode], running_on: set[str]) -> list[FreeNode]:
    """The nodes a Deployment's new pods may use: those whose blocking taints are all carried by
    some node its pods run on now (taken as tolerated); untainted nodes always."""
    tolerated = tolerated_taints(free, running_on)
    return [n for n in free if n.taints <= tolerated]


def _why_not(free: Sequence[FreeNode], cpu_cores: float, memory_bytes: float, count: int, placed: int) -> str:
    """Why only `placed` of `count` pods fit, and whether the free capacity sums to enough (the
    fragmentation case: enough in all, too little on any one node)."""
    sum_cpu = sum(max(n.cpu_m, 0) for n in free) / 1000
    sum_mem = sum(max(n.memory_b, 0) for n in free)
    sum_pods = sum(max(n.pods, 0) for n in free)
    enough = sum_cpu >= cpu_cores * count - 1e-9 and sum_mem >= memory_bytes * count and sum_pods >= count
    # the node closest to taking one more pod: the one whose scarcer resource is least short
    best = max(free, key=lambda n: min(n.cpu_m / (cpu_cores * 1000) if cpu_cores else math.inf,
                                       n.memory_b / memory_bytes if memory_bytes else math.inf), default=None)
    text = (f"{placed} of {count} pods of {format_cpu(cpu_cores) or '0'} cpu / {format_bytes(memory_bytes) or '0'} "
            f"placeable; free {'sums to enough' if enough else 'in all'}: {sum_cpu:g} cores / {format_bytes(sum_mem) or '0'}")
    if best is not None:
        text += (f", roomiest node {best.node}: {max(best.cpu_m, 0) / 1000:g} cores / "
                 f"{format_bytes(max(best.memory_b, 0)) or '0'}")
    return text


def quota_room(quotas: pl.DataFrame, namespace_pods: pl.DataFrame) -> dict[str, dict[str, float]]:
    """Per namespace with a ResourceQuota: resource (cpu, memory, pods) -> hard minus used now
    (the tightest quota when several). `quotas` as queries/current_resource_quotas.sql,
    `namespace_pods` as pod_resources() of the current pods."""
    used = namespace_pods.group_by("namespace").agg(
        pl.col("cpu_request_cores").fill_null(0.0).sum().alias("cpu"),
        pl.col("memory_request_bytes").fill_null(0.0).sum().alias("memory"),
        pl.len().cast(pl.Float64).alias("pods"),
    )
    used_map = {r["namespace"]: r for r in used.iter_rows(named=True)}
    room: dict[str, dict[str, float]] = {}
    for (namespace,), group in quotas.group_by(["namespace"], maintain_order=True):
        for resource, keys in _QUOTA_KEYS.items():
            hard = group.filter(pl.col("resource").is_in(list(keys)))["hard"]
            if hard.len():
                room.setdefault(namespace, {})[resource] = _number(hard.min()) - float(
                    used_map.get(namespace, {}).get(resource) or 0.0)
    return room


def _quota_short(room: dict[str, float] | None, cpu: float, memory: float, pods: int) -> str | None:
    """What the namespace quota lacks for extra pods (None when it has room or no quota)."""
    if not room or pods <= 0:
        return None
    short = []
    if "cpu" in room and cpu > room["cpu"] + 1e-9:
        short.append(f"cpu needs {cpu:g} cores, {max(room['cpu'], 0):g} left")
    if "memory" in room and memory > room["memory"]:
        short.append(f"memory needs {format_bytes(memory)}, {format_bytes(max(room['memory'], 0)) or '0'} left")
    if "pods" in room and pods > room["pods"]:
        short.append(f"pods needs {pods}, {max(room['pods'], 0):g} left")
    return "; ".join(short) or None


def rollout_headroom(deployments: pl.DataFrame, pods: pl.DataFrame, nodes: pl.DataFrame,
                     quotas: pl.DataFrame | None = None) -> pl.DataFrame:
    """One row per Deployment (ROLLOUT_SCHEMA): the extra pods and requests a rolling update
    and a blue-green rollout need, how many of them first-fit places, `can_roll`,
    `can_blue_green` and a reason.

    `deployments`: namespace, deployment, replicas, strategy, max_surge_pods
    (queries/rollout_deployments.sql). `pods`: pod_resources() of the current pods with
    workload_kind/workload_name. `nodes`: queries/current_nodes.sql. `quotas`:
    queries/current_resource_quotas.sql or None.
    """
    free = free_nodes(nodes, pods)
    room = quota_room(quotas, pods) if quotas is not None and quotas.height else {}
    if "workload_kind" in pods.columns:
        owned = pods.filter(pl.col("workload_kind") == "Deployment")
    else:
        owned = pods.clear()
    # each Deployment's pods: how many, the largest requests and their nodes, in one pass (a filter
    # of the pods per Deployment, and the eligible nodes per Deployment, were 1.8 CPU-s of the
    # bench's L report); the eligible nodes depend only on the tolerated taints, so once per set
    shapes = {(r["namespace"], r["workload_name"]): r for r in owned.group_by("namespace", "workload_name").agg(
        pl.len().alias("pods"), pl.col("cpu_request_cores").fill_null(0.0).max().alias("cpu"),
        pl.col("memory_request_bytes").fill_null(0.0).max().alias("memory"), pl.col("node").alias("nodes"),
    ).iter_rows(named=True)}
    by_taints: dict[frozenset[tuple[str, str, str]], tuple[list[FreeNode], list[str]]] = {}
    taints_of = {n.node: n.taints for n in free}  # what tolerated_taints reads, by node
    rows = []
    for d in deployments.iter_rows(named=True):
        shape = shapes.get((d["namespace"], d["deployment"]))
        replicas = int(d["replicas"] or 0)
        strategy = d["strategy"] or "RollingUpdate"  # the API default
        surge = max_surge_pods(replicas, d["max_surge_pods"])
        row: dict[str, Any] = {"namespace": d["namespace"], "deployment": d["deployment"], "strategy": strategy,
                               "replicas": replicas, "max_surge": surge if strategy == "RollingUpdate" else None,
                               "pods_observed": shape["pods"] if shape else 0}
        if shape is None:
            row["reason"] = "no pods of this Deployment observed: pod shape unknown"
            rows.append(row)
            continue
        cpu = _number(shape["cpu"])
        memory = _number(shape["memory"])
        tolerated = frozenset().union(*(taints_of.get(n, frozenset()) for n in shape["nodes"] if n))
        if tolerated not in by_taints:
            where = [n for n in free if n.taints <= tolerated]
            eligible_names = {n.node for n in where}  # a set: `in` on node records was quadratic
            by_taints[tolerated] = (where, [n.node for n in free if n.node not in eligible_names])
        where, left_out = by_taints[tolerated]
        rolling = {"RollingUpdate": surge, "Recreate": 0}.get(strategy, replicas)  # BlueGreen: all again
        row.update(pod_cpu_request_cores=cpu, pod_memory_request_bytes=memory, eligible_nodes=len(where))
        reasons = []
        blocked: list[str] = []
        for kind, count in (("rolling", rolling), ("blue_green", replicas)):
            placed = sum(place(where, cpu, memory, count).values()) if count else 0
            short = _quota_short(room.get(d["namespace"]), cpu * count, memory * count, count)
            ok = placed >= count and short is None
            row.update({f"{kind}_extra_pods": count, f"{kind}_extra_cpu_cores": cpu * count,
                        f"{kind}_extra_memory_bytes": memory * count, f"{kind}_placeable_pods": placed})
            row["can_roll" if kind == "rolling" else "can_blue_green"] = ok
            label = "rolling update" if kind == "rolling" else "blue-green"
            if kind == "rolling" and strategy == "Recreate":
                reasons.append("Recreate: old pods stop first, no extra pods needed")
            elif kind == "rolling" and count == 0:
                reasons.append("maxSurge 0: no extra pods needed")
            if placed < count:
                reasons.append(f"{label}: " + _why_not(where, cpu, memory, count, placed)
                               + (f" (tainted, left out: {', '.join(left_out)})" if left_out else ""))
                blocked.append(f"{kind}:placement")
            if short:
                reasons.append(f"{label}: quota short ({short})")
                blocked.append(f"{kind}:quota")
        if row["can_roll"] and row["can_blue_green"] and not reasons:
            reasons.append("rolling update and blue-green both fit")
        row["reason"] = "; ".join(reasons)
        row["blocked_by"] = ",".join(blocked) or None
        rows.append(row)
    return pl.DataFrame(rows, schema=ROLLOUT_SCHEMA)


# --- loaders and report ---------------------------------------------------------------------

@dataclass
class RolloutInputs:
    """Deployments, pods, nodes and quotas at the end of the window."""

    deployments: pl.DataFrame
    pods: pl.DataFrame
    nodes: pl.DataFrame
    quotas: pl.DataFrame
    at: datetime


def load_rollout_inputs(con: duckdb.DuckDBPyConnection, window: timedelta = timedelta(days=14)) -> RolloutInputs:
    """What rollout_headroom needs, as seen at the end of the window."""
    _, at = snapshot_window(con, window)
    nodes = load_current_nodes(con, at)
    if nodes.is_empty():
        raise NoDataError(f"no nodes were observed at {at:%Y-%m-%d %H:%M} UTC, the end of the window")
    params = {"at": at, "tolerance": CURRENT_TOLERANCE}
    return RolloutInputs(
        deployments=store.query(con, "rollout_deployments", params),
        pods=pod_resources(load_current_containers(con, at)),
        nodes=nodes, quotas=store.query(con, "current_resource_quotas", params), at=at,
    )


def rollout_report(con: duckdb.DuckDBPyConnection, window: timedelta = timedelta(days=14),
                   namespaces: list[str] | None = None) -> pl.DataFrame:
    """`capplan rollout`: rollout headroom of every Deployment (or those of `namespaces`)."""
    inputs = load_rollout_inputs(con, window)
    deployments = inputs.deployments
    if namespaces:
        deployments = deployments.filter(pl.col("namespace").is_in(namespaces))
    return rollout_headroom(deployments, inputs.pods, inputs.nodes, inputs.quotas)
