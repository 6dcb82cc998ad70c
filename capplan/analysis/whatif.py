"""What-if consolidation: after right-sizing (or as things are), how many nodes of each pool
could be given back, which ones, and would the nodes that stay hold (N-1 and memory pressure)?

Pipeline: the nodes and pods at the window's end -> requests replaced by a strategy's
recommendation (`apply`) -> per pool, drain emptiest nodes first while their pods fit elsewhere
(capplan.analysis.packing) -> checks on the nodes that stay: losing the largest strands nothing
(N-1), and the pods placed together never used more memory than the node's allocatable at their
worst common moment in the window (observed working set, not requests: right-sizing must not
create a node the kubelet would have to relieve by evicting).

What the store does not know, and how it is treated: tolerations (a pod only moves to nodes
whose blocking taints its current node also has), node selectors and affinity (pods stay in
their pool: pools are what selectors usually target), local storage (not known; say so), bare
pods without a controller (cannot move: their node is pinned).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from capplan import store
from capplan.analysis.day_slices import day_slices
from capplan.analysis.nodes import snapshot_window
from capplan.analysis.packing import (
    Consolidation,
    NodeBins,
    PodItems,
    consolidate,
    lower_bound_nodes,
    node_loss_holds,
)
from capplan.analysis.pods import load_current_containers, load_current_nodes, pod_resources
from capplan.analysis.rollup_span import raw_only, rollup_span, stored_bounds
from capplan.analysis.sizing import HOURS_PER_MONTH
from capplan.analysis.taints import blocking_set, parse_taints
from capplan.errors import NoDataError, UsageError

CURRENT = "current"
# Labels that name a node's pool, most specific first: Karpenter NodePool, GKE node pool, EKS
# managed node group, AKS agent pool; then the instance type (kubernetes.io well-known labels).
POOL_LABELS = (
    "karpenter.sh/nodepool", "cloud.google.com/gke-nodepool", "eks.amazonaws.com/nodegroup",
    "kubernetes.azure.com/agentpool", "agentpool",
    "node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type",
)
INSTANCE_TYPE_LABELS = ("node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type")
ALL_POOL = "all"
UNKNOWN_TYPE = "unknown"
# Kinds whose pods a controller recreates elsewhere when their node is drained.
CONTROLLED_KINDS = ("ReplicaSet", "Deployment", "StatefulSet", "Job", "CronJob", "DaemonSet",
                    "ReplicationController")

WHATIF_COLUMNS = [
    "pool", "nodes_now", "nodes_needed", "nodes_removable", "cpu_request_ratio_after",
    "memory_request_ratio_after", "n_minus_1_holds", "pressure_ok", "monthly_savings",
]
EXTRA_COLUMNS = [
    "nodes_lower_bound", "pinned_nodes", "overfull_nodes", "removable_nodes", "n_minus_1_holds_now", "cpu_request_ratio_now", "memory_request_ratio_now",
    "cpu_requests_cores_after", "memory_requests_bytes_after", "memory_peak_ratio_after", "monthly_cost_now",
]
NODE_COLUMNS = [
    "pool", "node", "instance_type", "action", "drain_order", "pods_now", "pods_after",
    "cpu_allocatable_cores", "memory_allocatable_bytes", "cpu_request_ratio_after", "memory_request_ratio_after",
    "memory_peak_bytes_after", "memory_peak_at", "pressure_ok", "fits_after",
]


@dataclass(frozen=True)
class WhatIfOptions:
    """`apply`: a recommend strategy name or "current"; `pool_label`: None = the first of
    POOL_LABELS the nodes carry; `prices`: instance type -> price per hour."""

    apply: str = "auto"
    window: timedelta = timedelta(days=14)
    pool_label: str | None = None
    prices: dict[str, float] | None = None
    namespaces: list[str] | None = None
    shapes: list[str] | None = None
    shapes_file: Path | None = None
    # recommend()'s rows for `apply` when the caller has them already (the report does)
    recommendations: pl.DataFrame | None = None


@dataclass
class WhatIfResult:
    pools: pl.DataFrame
    nodes: pl.DataFrame
    moves: pl.DataFrame
    apply: str
    pool_label: str | None
    at: datetime
    notes: list[str] = field(default_factory=list)
    sizing: pl.DataFrame | None = None


def node_labels(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def choose_pool_label(labels: list[dict[str, str]], requested: str | None) -> str | None:
    """The label that names pools: the one asked for, else the first well-known one any node has."""
    if requested:
        return requested
    for label in POOL_LABELS:
        if any(label in lab for lab in labels):
            return label
    return None


def instance_type(labels: dict[str, str]) -> str:
    for label in INSTANCE_TYPE_LABELS:
        if labels.get(label):
            return labels[label]
    return UNKNOWN_TYPE


def apply_recommendation(containers: pl.DataFrame, recommendations: pl.DataFrame) -> pl.DataFrame:
    """Containers with their requests replaced by the recommended ones, matched by namespace,
    workload and container; where nothing is recommended the current request stays."""
    rec = recommendations.select(
        "namespace", pl.col("owner_kind").alias("workload_kind"), pl.col("owner_name").alias("workload_name"),
        "container", pl.col("cpu_request_recommended").cast(pl.Float64).alias("_cpu"),
        pl.col("memory_request_recommended").cast(pl.Float64).alias("_mem"),
    ).unique(["namespace", "workload_kind", "workload_name", "container"], keep="first")
    keys = ["namespace", "workload_kind", "workload_name", "container"]
    return containers.join(rec, on=keys, how="left", nulls_equal=False).with_columns(
        pl.coalesce(pl.col("_cpu"), pl.col("cpu_request_cores").cast(pl.Float64)).alias("cpu_request_cores"),
        pl.coalesce(pl.col("_mem"), pl.col("memory_request_bytes").cast(pl.Float64)).alias("memory_request_bytes"),
    ).drop("_cpu", "_mem")


def _bins(nodes: pl.DataFrame) -> NodeBins:
    return NodeBins(
        names=nodes["node"].to_list(),
        cpu_millicores=(nodes["cpu_allocatable_cores"].cast(pl.Float64).fill_null(0) * 1000).round(0).cast(pl.Int64).to_numpy(),
        memory_bytes=nodes["memory_allocatable_bytes"].cast(pl.Float64).fill_null(0).round(0).cast(pl.Int64).to_numpy(),
        pods=nodes["pods_allocatable"].cast(pl.Int64).fill_null(0).to_numpy(),
        taints=[blocking_set(parse_taints(t)) for t in nodes["taints"].to_list()],
    )


def _items(pods: pl.DataFrame, names: list[str]) -> PodItems:
    index = {n: i for i, n in enumerate(names)}
    owner = pods["owner_kind"].fill_null("") if "owner_kind" in pods.columns else pl.Series([""] * pods.height)
    workload = pods["workload_kind"].fill_null("") if "workload_kind" in pods.columns else owner
    return PodItems(
        node=np.array([index[n] for n in pods["node"].to_list()], dtype=np.int64),
        cpu_millicores=(pods["cpu_request_cores"].fill_null(0) * 1000).round(0).cast(pl.Int64).to_numpy(),
        memory_bytes=pods["memory_request_bytes"].fill_null(0).round(0).cast(pl.Int64).to_numpy(),
        movable=owner.is_in(CONTROLLED_KINDS).to_numpy(),
        daemonset=(workload == "DaemonSet").to_numpy() | (owner == "DaemonSet").to_numpy(),
    )


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def peak_memory(con: duckdb.DuckDBPyConnection, placement: pl.DataFrame, start: datetime, end: datetime) -> pl.DataFrame:
    """Per node of `placement` (namespace, pod, node): the largest summed working set of the pods
    placed there at one timestamp of [start, end], and the first time it was reached
    (queries/whatif_peak_memory.sql, a slice of days at a time: the (node, timestamp) sums of the
    whole window were 11 M groups and 1.3 GiB at the bench's L; the peak of the slices' peaks is
    the same answer; a slice without rolled-up samples from usage_raw alone, as
    capplan.analysis.rollup_span explains)."""
    ids = placement.select("node").unique().sort("node").with_row_index("node_id")
    con.register("whatif_placement", placement.join(ids, on="node").to_arrow())
    try:
        rollups = rollup_span(con, start, end)
        parts = store.bounded_memory(con, lambda: [
            store.query(con, "whatif_peak_memory", stored_bounds(lo, hi), raw=raw_only(rollups, lo, hi))
            for lo, hi in day_slices(con, start, end)])
    finally:
        con.unregister("whatif_placement")
    schema = pl.Schema({"node": pl.Utf8(), "peak_memory_bytes": pl.Int64(), "peak_at": pl.Datetime("us")})
    if not parts:
        return pl.DataFrame(schema=schema)
    best = pl.concat(parts).with_columns(pl.col("node_id").cast(pl.UInt32)).sort(
        ["node_id", "peak_memory_bytes", "peak_at"], descending=[False, True, False], nulls_last=True,
    ).group_by("node_id", maintain_order=True).first()
    return best.join(ids, on="node_id").select(
        "node", pl.col("peak_memory_bytes").cast(pl.Int64), pl.col("peak_at").cast(pl.Datetime("us"))).sort("node")


def _pool_row(pool: str, bins: NodeBins, items: PodItems, plan: Consolidation, nodes: pl.DataFrame,
              peaks: dict[str, int] | None, prices: dict[str, float] | None) -> tuple[dict, list[dict]]:
    n = len(bins)
    kept = plan.kept(n)
    on_kept = plan.placement >= 0
    cpu_after = float(items.cpu_millicores[on_kept].sum()) / 1000
    mem_after = float(items.memory_bytes[on_kept].sum())
    cpu_alloc_kept = float(bins.cpu_millicores[kept].sum()) / 1000
    mem_alloc_kept = float(bins.memory_bytes[kept].sum())
    holds, _ = node_loss_holds(bins, items, plan.placement, kept)
    holds_now, _ = node_loss_holds(bins, items, items.node.astype(np.int64), list(range(n)))
    types = nodes["instance_type"].to_list()
    drained_order = {node: k + 1 for k, node in enumerate(plan.drained)}
    node_rows = []
    pressure: list[bool | None] = []
    peak_ratios = []
    for i, name in enumerate(bins.names):
        here = plan.placement == i
        before = items.node == i
        peak = peaks.get(name) if peaks is not None else None
        alloc_mem = int(bins.memory_bytes[i])
        ok = None if peaks is None else (peak or 0) <= alloc_mem
        if i in drained_order:
            action, ok, peak = "drain", None, None
        else:
            action = "pinned" if i in plan.pinned else "keep"
            pressure.append(ok)
            if peaks is not None and alloc_mem > 0:
                peak_ratios.append((peak or 0) / alloc_mem)
        node_rows.append({
            "pool": pool, "node": name, "instance_type": types[i], "action": action,
            "drain_order": drained_order.get(i), "pods_now": int(before.sum()),
            "pods_after": int(here.sum()),
            "cpu_allocatable_cores": float(bins.cpu_millicores[i]) / 1000, "memory_allocatable_bytes": alloc_mem,
            "cpu_request_ratio_after": None if action == "drain" else _ratio(
                float(items.cpu_millicores[here].sum()), float(bins.cpu_millicores[i])),
            "memory_request_ratio_after": None if action == "drain" else _ratio(
                float(items.memory_bytes[here].sum()), float(bins.memory_bytes[i])),
            "memory_peak_bytes_after": peak, "pressure_ok": ok,
            "fits_after": None if action == "drain" else i not in plan.overfull,
        })
    savings = cost_now = None
    if prices is not None:
        if all(types[i] in prices for i in range(n)):
            cost_now = sum(prices[t] for t in types) * HOURS_PER_MONTH
            savings = sum(prices[types[i]] for i in plan.drained) * HOURS_PER_MONTH
    row = {
        "pool": pool, "nodes_now": n, "nodes_needed": n - len(plan.drained), "nodes_removable": len(plan.drained),
        "cpu_request_ratio_after": _ratio(cpu_after, cpu_alloc_kept),
        "memory_request_ratio_after": _ratio(mem_after, mem_alloc_kept),
        "n_minus_1_holds": holds,
        "pressure_ok": None if peaks is None else all(bool(p) for p in pressure),
        "monthly_savings": savings,
        "nodes_lower_bound": lower_bound_nodes(bins, items), "pinned_nodes": len(plan.pinned),
        "overfull_nodes": len(plan.overfull), "n_minus_1_holds_now": holds_now,
        "removable_nodes": " ".join(bins.names[i] for i in plan.drained),
        "cpu_request_ratio_now": _ratio(float(items.cpu_millicores.sum()), float(bins.cpu_millicores.sum())),
        "memory_request_ratio_now": _ratio(float(items.memory_bytes.sum()), float(bins.memory_bytes.sum())),
        "cpu_requests_cores_after": cpu_after, "memory_requests_bytes_after": mem_after,
        "memory_peak_ratio_after": max(peak_ratios) if peak_ratios else None,
        "monthly_cost_now": cost_now,
    }
    return row, node_rows


def _total_row(rows: list[dict]) -> dict:
    def total(key: str) -> float:
        return float(sum(r[key] or 0 for r in rows))

    cpu_alloc = sum(r["cpu_requests_cores_after"] / r["cpu_request_ratio_after"] for r in rows
                    if r["cpu_request_ratio_after"])
    mem_alloc = sum(r["memory_requests_bytes_after"] / r["memory_request_ratio_after"] for r in rows
                    if r["memory_request_ratio_after"])
    pressures = [r["pressure_ok"] for r in rows]
    peaks = [r["memory_peak_ratio_after"] for r in rows if r["memory_peak_ratio_after"] is not None]
    return {
        "pool": "TOTAL", "nodes_now": int(total("nodes_now")), "nodes_needed": int(total("nodes_needed")),
        "nodes_removable": int(total("nodes_removable")),
        "cpu_request_ratio_after": _ratio(total("cpu_requests_cores_after"), cpu_alloc),
        "memory_request_ratio_after": _ratio(total("memory_requests_bytes_after"), mem_alloc),
        "n_minus_1_holds": all(r["n_minus_1_holds"] for r in rows),
        "pressure_ok": None if any(p is None for p in pressures) else all(pressures),
        "monthly_savings": None if any(r["monthly_savings"] is None for r in rows) else total("monthly_savings"),
        "nodes_lower_bound": int(total("nodes_lower_bound")), "pinned_nodes": int(total("pinned_nodes")),
        "overfull_nodes": int(total("overfull_nodes")),
        "n_minus_1_holds_now": all(r["n_minus_1_holds_now"] for r in rows),
        "removable_nodes": " ".join(r["removable_nodes"] for r in rows if r["removable_nodes"]),
        "cpu_request_ratio_now": None, "memory_request_ratio_now": None,
        "cpu_requests_cores_after": total("cpu_requests_cores_after"),
        "memory_requests_bytes_after": total("memory_requests_bytes_after"),
        "memory_peak_ratio_after": max(peaks) if peaks else None,
        "monthly_cost_now": None if any(r["monthly_cost_now"] is None for r in rows) else total("monthly_cost_now"),
    }


POOL_SCHEMA = {
    "pool": pl.Utf8, "nodes_now": pl.Int64, "nodes_needed": pl.Int64, "nodes_removable": pl.Int64,
    "cpu_request_ratio_after": pl.Float64, "memory_request_ratio_after": pl.Float64,
    "n_minus_1_holds": pl.Boolean, "pressure_ok": pl.Boolean, "monthly_savings": pl.Float64,
    "nodes_lower_bound": pl.Int64, "pinned_nodes": pl.Int64, "overfull_nodes": pl.Int64,
    "n_minus_1_holds_now": pl.Boolean, "removable_nodes": pl.Utf8,
    "cpu_request_ratio_now": pl.Float64, "memory_request_ratio_now": pl.Float64,
    "cpu_requests_cores_after": pl.Float64, "memory_requests_bytes_after": pl.Float64,
    "memory_peak_ratio_after": pl.Float64, "monthly_cost_now": pl.Float64,
}
NODE_SCHEMA = {
    "pool": pl.Utf8, "node": pl.Utf8, "instance_type": pl.Utf8, "action": pl.Utf8, "drain_order": pl.Int64,
    "pods_now": pl.Int64, "pods_after": pl.Int64, "cpu_allocatable_cores": pl.Float64,
    "memory_allocatable_bytes": pl.Int64, "cpu_request_ratio_after": pl.Float64,
    "memory_request_ratio_after": pl.Float64, "memory_peak_bytes_after": pl.Int64, "pressure_ok": pl.Boolean,
    "fits_after": pl.Boolean,
}


def whatif(con: duckdb.DuckDBPyConnection, options: WhatIfOptions | None = None) -> WhatIfResult:
    """Consolidation per pool after applying `options.apply` (see the module docstring)."""
    options = options or WhatIfOptions()
    start, end = snapshot_window(con, options.window)
    nodes = load_current_nodes(con, end)
    if nodes.is_empty():
        raise NoDataError(f"no nodes were observed at {end:%Y-%m-%d %H:%M} UTC, the end of the window")
    containers = load_current_containers(con, end)
    notes: list[str] = []
    if options.apply != CURRENT:
        from capplan.analysis.recommend import recommend
        from capplan.analysis.strategies import get_strategy

        try:
            get_strategy(options.apply)
        except Exception as exc:  # the registry's own message names the strategies
            raise UsageError(f"--apply must be `current` or a strategy: {exc}") from exc
        if start is None:
            raise NoDataError("the database holds no usage samples to right-size from: use --apply current")
        recommendations = options.recommendations
        if recommendations is None:
            recommendations = recommend(con, options.apply, options.window, options.namespaces)
        containers = apply_recommendation(containers, recommendations)
    pods = pod_resources(containers).filter(pl.col("node").is_in(nodes["node"].implode()))
    labels = [node_labels(t) for t in nodes["labels"].to_list()]
    label = choose_pool_label(labels, options.pool_label)
    if label is None:
        notes.append("no node carries a pool or instance-type label: all nodes form one pool")
    nodes = nodes.with_columns(
        pl.Series("pool", [lab.get(label, "") or "(none)" if label else ALL_POOL for lab in labels]),
        pl.Series("instance_type", [instance_type(lab) for lab in labels]),
    )
    prices = options.prices
    if prices is not None:
        missing = sorted(set(nodes["instance_type"].to_list()) - set(prices))
        if missing:
            notes.append(f"no price for instance type {', '.join(missing)}: monthly_savings left empty")
    pool_rows: list[dict] = []
    node_rows: list[dict] = []
    moves: list[dict] = []
    placements: list[pl.DataFrame] = []
    plans: list[tuple[str, NodeBins, PodItems, Consolidation, pl.DataFrame, pl.DataFrame]] = []
    for (pool,), pool_nodes in nodes.sort("node").group_by(["pool"], maintain_order=True):
        pool_pods = pods.filter(pl.col("node").is_in(pool_nodes["node"].implode()))
        bins = _bins(pool_nodes)
        items = _items(pool_pods, bins.names)
        plan = consolidate(bins, items)
        plans.append((str(pool), bins, items, plan, pool_nodes, pool_pods))
        kept_pods = plan.placement >= 0
        placements.append(pl.DataFrame({
            "namespace": pool_pods["namespace"].filter(pl.Series(kept_pods)),
            "pod": pool_pods["pod"].filter(pl.Series(kept_pods)),
            "node": [bins.names[j] for j in plan.placement[kept_pods]],
        }, schema={"namespace": pl.Utf8, "pod": pl.Utf8, "node": pl.Utf8}))
        for k in np.flatnonzero(plan.placement != items.node):
            if plan.placement[k] >= 0:
                moves.append({"namespace": pool_pods["namespace"][int(k)], "pod": pool_pods["pod"][int(k)],
                              "from_node": bins.names[int(items.node[k])], "to_node": bins.names[int(plan.placement[k])]})
    peaks: dict[str, int] | None = None
    peak_at: dict[str, datetime] = {}
    if start is not None:
        peak_frame = peak_memory(con, pl.concat(placements), start, end)
        peaks = {n: int(v) for n, v in zip(peak_frame["node"].to_list(), peak_frame["peak_memory_bytes"].to_list(), strict=True)}
        peak_at = dict(zip(peak_frame["node"].to_list(), peak_frame["peak_at"].to_list(), strict=True))
    else:
        notes.append("no usage samples: the memory-pressure check is unknown")
    for pool, bins, items, plan, pool_nodes, _ in plans:
        row, rows = _pool_row(pool, bins, items, plan, pool_nodes, peaks, prices)
        pool_rows.append(row)
        for r in rows:
            r["memory_peak_at"] = peak_at.get(r["node"]) if r["action"] != "drain" else None
        node_rows.extend(rows)
    pool_rows.append(_total_row(pool_rows))
    sizing = None
    if options.shapes:
        from capplan.analysis.sizing import read_shapes, resolve_shapes, shapes_from_nodes, size_pools, workload_from_pods

        shapes = resolve_shapes(options.shapes, shapes_from_nodes(nodes),
                                read_shapes(options.shapes_file) if options.shapes_file else {}, prices)
        sizing = size_pools(workload_from_pods(pods), shapes)
    notes.append("pods stay in their pool; tolerations, node affinity and local storage are not in the "
                 "store: a pod only moves among nodes with the same blocking taints as its own")
    return WhatIfResult(
        pools=pl.DataFrame(pool_rows, schema=POOL_SCHEMA),
        nodes=pl.DataFrame(node_rows, schema={**NODE_SCHEMA, "memory_peak_at": pl.Datetime("us")}).select(NODE_COLUMNS),
        moves=pl.DataFrame(moves, schema={"namespace": pl.Utf8, "pod": pl.Utf8, "from_node": pl.Utf8, "to_node": pl.Utf8}),
        apply=options.apply, pool_label=label, at=end, notes=notes, sizing=sizing,
    )
