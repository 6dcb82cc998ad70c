"""The cluster after losing a node: N-1 totals per resource, and node by node whether its pods
can be placed elsewhere (`capplan cluster`)."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import numpy as np
import polars as pl

from capplan.analysis.nodes import (
    cluster_summary,
    load_node_inputs,
    node_overcommit,
)
from capplan.analysis.snapshot import millicores, node_state
from capplan.analysis.taints import blocking_set, parse_taints


def _is_daemonset(pods: pl.DataFrame) -> pl.Expr:
    kind = "workload_kind" if "workload_kind" in pods.columns else "owner_kind"
    if kind not in pods.columns:
        return pl.lit(False)
    return pl.col(kind).fill_null("") == "DaemonSet"


def n_minus_1(state: pl.DataFrame, pods: pl.DataFrame) -> pl.DataFrame:
    """Per resource: does the cluster still hold all requests after losing its largest node
    (by that resource's allocatable)? The DaemonSet pods of the lost node go with it and need
    no room; everything else must fit in the allocatable of the remaining nodes (a total,
    ignoring fragmentation and taints: see node_loss for the pod-by-pod placement)."""
    ds = pods.filter(pl.col("node").is_not_null() & _is_daemonset(pods)).group_by("node").agg(
        pl.len().cast(pl.Float64).alias("ds_pods"),
        pl.col("cpu_request_cores").sum().alias("ds_cpu"),
        pl.col("memory_request_bytes").sum().alias("ds_memory"),
    )
    s = state.join(ds, on="node", how="left").with_columns(pl.col("ds_pods", "ds_cpu", "ds_memory").fill_null(0.0))
    rows = []
    for resource, unit, alloc_col, req_col, ds_col in (
        ("cpu", "cores", "cpu_allocatable_cores", "cpu_requests_cores", "ds_cpu"),
        ("memory", "bytes", "memory_allocatable_bytes", "memory_requests_bytes", "ds_memory"),
        ("pods", "pods", "pods_allocatable", "pods", "ds_pods"),
    ):
        if s.is_empty():
            continue
        allocatable = float(s[alloc_col].cast(pl.Float64).sum())
        requests = float(s[req_col].cast(pl.Float64).sum())
        largest = s.sort([alloc_col, "node"], descending=[True, False]).row(0, named=True)
        after = allocatable - float(largest[alloc_col])
        need = requests - float(largest[ds_col])
        digits = 9 if resource == "cpu" else 0  # sums of millicores / bytes: no float noise
        allocatable, requests, after, need = (round(v, digits) for v in (allocatable, requests, after, need))
        rows.append({
            "resource": resource, "unit": unit, "allocatable": allocatable, "requests": requests,
            "largest_node": largest["node"], "largest_allocatable": float(largest[alloc_col]),
            "allocatable_without_largest": after, "requests_to_hold": need,
            "holds": need <= after, "spare_after": round(after - need, digits),
            "request_ratio_after": need / after if after > 0 else None,
        })
    return pl.DataFrame(rows, schema={
        "resource": pl.Utf8, "unit": pl.Utf8, "allocatable": pl.Float64, "requests": pl.Float64,
        "largest_node": pl.Utf8, "largest_allocatable": pl.Float64, "allocatable_without_largest": pl.Float64,
        "requests_to_hold": pl.Float64, "holds": pl.Boolean, "spare_after": pl.Float64,
        "request_ratio_after": pl.Float64,
    })


def node_loss(state: pl.DataFrame, pods: pl.DataFrame) -> pl.DataFrame:
    """For each node: if it were lost, could its pods (DaemonSet pods excluded: they go with
    it) be placed on the other nodes' free requests, first-fit, largest first? A pod may only
    move to a node whose blocking taints it already tolerated where it ran (tolerations are not
    stored, so a pod from an untainted node only goes to untainted nodes)."""
    names = state["node"].to_list()
    index = {n: i for i, n in enumerate(names)}
    free_cpu = np.array([millicores(a) - millicores(r) for a, r in
                         zip(state["cpu_allocatable_cores"].to_list(), state["cpu_requests_cores"].to_list(), strict=True)], dtype=np.int64)
    free_mem = (state["memory_allocatable_bytes"] - state["memory_requests_bytes"]).round(0).to_numpy().astype(np.int64)
    free_pods = (state["pods_allocatable"] - state["pods"]).to_numpy().astype(np.int64)
    taint_sets = [blocking_set(parse_taints(t)) for t in state["taints"].to_list()]
    movable = pods.filter(pl.col("node").is_in(names) & ~_is_daemonset(pods)).select(
        "node", (pl.col("cpu_request_cores") * 1000).round(0).cast(pl.Int64).alias("cpu_m"),
        pl.col("memory_request_bytes").round(0).cast(pl.Int64).alias("mem_b"),
    ).sort(["node", "cpu_m", "mem_b"], descending=[False, True, True])
    by_node = {n: g for (n,), g in movable.group_by(["node"], maintain_order=True)}
    rows = []
    for name in names:
        i = index[name]
        group = by_node.get(name)
        allowed = np.array([ts <= taint_sets[i] for ts in taint_sets]) if any(taint_sets) else np.ones(len(names), bool)
        allowed[i] = False
        fc, fm, fp = free_cpu.copy(), free_mem.copy(), free_pods.copy()
        unplaced = 0
        count = cpu = mem = 0
        if group is not None:
            for c, m in zip(group["cpu_m"].to_list(), group["mem_b"].to_list(), strict=True):
                count += 1
                cpu += c
                mem += m
                ok = allowed & (fc >= c) & (fm >= m) & (fp >= 1)
                j = int(np.argmax(ok))
                if not ok[j]:
                    unplaced += 1
                    continue
                fc[j] -= c
                fm[j] -= m
                fp[j] -= 1
        rows.append({"node": name, "pods_to_move": count, "cpu_to_move_cores": cpu / 1000,
                     "memory_to_move_bytes": float(mem), "unplaceable_pods": unplaced, "survives": unplaced == 0})
    return pl.DataFrame(rows, schema={
        "node": pl.Utf8, "pods_to_move": pl.Int64, "cpu_to_move_cores": pl.Float64,
        "memory_to_move_bytes": pl.Float64, "unplaceable_pods": pl.Int64, "survives": pl.Boolean,
    })


def cluster_report(con: duckdb.DuckDBPyConnection, window: timedelta = timedelta(days=14)) -> pl.DataFrame:
    """`capplan cluster`: cluster totals per resource (cluster_summary) with the N-1 check."""
    inputs = load_node_inputs(con, window)
    summary = cluster_summary(node_overcommit(inputs.nodes, inputs.pods, inputs.usage))
    n1 = n_minus_1(node_state(inputs.nodes, inputs.pods), inputs.pods).select(
        "resource", "largest_node", "allocatable_without_largest", "requests_to_hold",
        pl.col("holds").alias("n1_holds"), pl.col("spare_after").alias("n1_spare"),
    )
    return summary.join(n1, on="resource", how="left", maintain_order="left")
