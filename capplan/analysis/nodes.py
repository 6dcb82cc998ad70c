"""Per-node overcommit and headroom: requests, limits and real usage against allocatable."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb
import polars as pl

from capplan import store
from capplan.analysis.pods import load_current_containers, load_current_nodes, pod_resources

GiB = 2**30
MiB = 2**20
HARD_EVICTION_BYTES = 100 * MiB

# GKE's node reservation guideline (cloud.google.com/kubernetes-engine/docs/concepts/plan-node-sizes):
# tiers of (size, share reserved).
CPU_RESERVE_TIERS = ((1.0, 0.06), (1.0, 0.01), (2.0, 0.005), (math.inf, 0.0025))
MEMORY_RESERVE_TIERS = ((4 * GiB, 0.25), (4 * GiB, 0.20), (8 * GiB, 0.10), (112 * GiB, 0.06), (math.inf, 0.02))


def tiered_reservation(total: float, tiers: tuple[tuple[float, float], ...]) -> float:
    """Sum of share x slice over the tiers a total spans (GKE's reservation table)."""
    left, reserved = float(total), 0.0
    for size, share in tiers:
        take = min(left, size)
        reserved += take * share
        left -= take
        if left <= 0:
            break
    return reserved


def recommended_reservation(cpu_capacity_cores: float, memory_capacity_bytes: float) -> tuple[float, float]:
    """The guideline's cpu cores and memory bytes to keep back (memory incl. the 100Mi hard
    eviction threshold)."""
    return (
        tiered_reservation(cpu_capacity_cores, CPU_RESERVE_TIERS),
        tiered_reservation(memory_capacity_bytes, MEMORY_RESERVE_TIERS) + HARD_EVICTION_BYTES,
    )


@dataclass
class NodeInputs:
    """What the per-node analysis reads from the store."""

    nodes: pl.DataFrame
    pods: pl.DataFrame
    usage: pl.DataFrame
    start: datetime
    end: datetime


def load_node_inputs(con: duckdb.DuckDBPyConnection, window: timedelta) -> NodeInputs:
    """Nodes and pods at the window's end, and node usage percentiles over the window."""
    start, end = store.analysis_window(con, window)
    nodes = load_current_nodes(con, end)
    pods = pod_resources(load_current_containers(con, end))
    usage = store.query(con, "node_usage_percentiles", {"start": start, "end": end})
    return NodeInputs(nodes=nodes, pods=pods, usage=usage, start=start, end=end)


def node_overcommit(nodes: pl.DataFrame, pods: pl.DataFrame, usage: pl.DataFrame) -> pl.DataFrame:
    """One row per node: capacity, allocatable, sums of pod requests and limits, usage
    percentiles, ratios against allocatable, headroom, and whether the reservation is enough."""
    sums = pods.filter(pl.col("node").is_not_null()).group_by("node").agg(
        pl.len().alias("pods"),
        pl.col("cpu_request_cores").sum().alias("cpu_requests_cores"),
        pl.col("cpu_limit_cores").sum().alias("cpu_limits_set_cores"),
        pl.col("memory_request_bytes").sum().alias("memory_requests_bytes"),
        pl.col("memory_limit_bytes").sum().alias("memory_limits_set_bytes"),
        pl.col("cpu_unlimited_containers").sum().alias("cpu_unlimited_containers"),
        pl.col("memory_unlimited_containers").sum().alias("memory_unlimited_containers"),
    )
    out = nodes.join(sums, on="node", how="left").join(usage, on="node", how="left").with_columns(
        pl.col("pods").fill_null(0),
        pl.col("cpu_requests_cores", "cpu_limits_set_cores", "memory_requests_bytes", "memory_limits_set_bytes").fill_null(0.0),
        pl.col("cpu_unlimited_containers", "memory_unlimited_containers").fill_null(0),
    )
    # A container without a limit can use the whole node: the limit sum is unbounded (inf).
    out = out.with_columns(
        pl.when(pl.col("cpu_unlimited_containers") > 0).then(float("inf")).otherwise(pl.col("cpu_limits_set_cores")).alias("cpu_limits_cores"),
        pl.when(pl.col("memory_unlimited_containers") > 0).then(float("inf")).otherwise(pl.col("memory_limits_set_bytes")).alias("memory_limits_bytes"),
    )
    reserve = [recommended_reservation(c, m) for c, m in zip(out["cpu_capacity_cores"].to_list(), out["memory_capacity_bytes"].to_list())]
    out = out.with_columns(
        pl.Series("cpu_reserved_guideline_cores", [r[0] for r in reserve], dtype=pl.Float64),
        pl.Series("memory_reserved_guideline_bytes", [r[1] for r in reserve], dtype=pl.Float64),
        (pl.col("cpu_capacity_cores") - pl.col("cpu_allocatable_cores")).alias("cpu_reserved_cores"),
        (pl.col("memory_capacity_bytes") - pl.col("memory_allocatable_bytes")).alias("memory_reserved_bytes"),
    )
    ratio = lambda num, den: pl.when(pl.col(den) > 0).then(pl.col(num) / pl.col(den)).otherwise(None)  # noqa: E731
    out = out.with_columns(
        ratio("cpu_requests_cores", "cpu_allocatable_cores").alias("cpu_request_ratio"),
        ratio("cpu_limits_cores", "cpu_allocatable_cores").alias("cpu_limit_ratio"),
        ratio("memory_requests_bytes", "memory_allocatable_bytes").alias("memory_request_ratio"),
        ratio("memory_limits_bytes", "memory_allocatable_bytes").alias("memory_limit_ratio"),
        ratio("cpu_usage_p95_cores", "cpu_allocatable_cores").alias("cpu_usage_p95_ratio"),
        ratio("memory_usage_p95_bytes", "memory_allocatable_bytes").alias("memory_usage_p95_ratio"),
        (pl.col("cpu_allocatable_cores") - pl.col("cpu_requests_cores")).alias("cpu_headroom_cores"),
        (pl.col("memory_allocatable_bytes") - pl.col("memory_requests_bytes")).alias("memory_headroom_bytes"),
        (pl.col("cpu_allocatable_cores") - pl.col("cpu_usage_p99_cores")).alias("cpu_physical_headroom_cores"),
        (pl.col("memory_allocatable_bytes") - pl.col("memory_usage_p99_bytes")).alias("memory_physical_headroom_bytes"),
        ((pl.col("cpu_reserved_cores") > 0) & (pl.col("memory_reserved_bytes") > 0)
         & (pl.col("cpu_reserved_cores") >= pl.col("cpu_reserved_guideline_cores") * 0.99)
         & (pl.col("memory_reserved_bytes") >= pl.col("memory_reserved_guideline_bytes") * 0.99)).alias("reserved_ok"),
    )
    return out.select(
        "node",
        "cpu_capacity_cores", "cpu_allocatable_cores", "cpu_requests_cores", "cpu_limits_cores",
        "cpu_usage_p50_cores", "cpu_usage_p95_cores", "cpu_usage_p99_cores", "cpu_usage_max_cores",
        "memory_capacity_bytes", "memory_allocatable_bytes", "memory_requests_bytes", "memory_limits_bytes",
        "memory_usage_p50_bytes", "memory_usage_p95_bytes", "memory_usage_p99_bytes", "memory_usage_max_bytes",
        "pods", "pods_allocatable",
        "cpu_request_ratio", "cpu_limit_ratio", "memory_request_ratio", "memory_limit_ratio",
        "cpu_usage_p95_ratio", "memory_usage_p95_ratio",
        "cpu_headroom_cores", "memory_headroom_bytes", "cpu_physical_headroom_cores", "memory_physical_headroom_bytes",
        "cpu_unlimited_containers", "memory_unlimited_containers",
        "cpu_reserved_cores", "memory_reserved_bytes", "cpu_reserved_guideline_cores", "memory_reserved_guideline_bytes",
        "reserved_ok",
    ).sort("node")


def nodes_report(con: duckdb.DuckDBPyConnection, window: timedelta = timedelta(days=14),
                 nodes: list[str] | None = None) -> pl.DataFrame:
    """`capplan nodes`: per-node overcommit and headroom over the window."""
    inputs = load_node_inputs(con, window)
    out = node_overcommit(inputs.nodes, inputs.pods, inputs.usage)
    if nodes:
        out = out.filter(pl.col("node").is_in(nodes))
    return out


def cluster_summary(node_table: pl.DataFrame) -> pl.DataFrame:
    """Cluster totals from the per-node table, one row per resource."""
    rows = []
    for resource, unit in (("cpu", "cores"), ("memory", "bytes")):
        capacity = node_table[f"{resource}_capacity_{unit}"].sum()
        allocatable = node_table[f"{resource}_allocatable_{unit}"].sum()
        requests = node_table[f"{resource}_requests_{unit}"].sum()
        limits = node_table[f"{resource}_limits_{unit}"].sum()
        usage = node_table[f"{resource}_usage_p95_{unit}"].sum()
        rows.append({
            "resource": resource, "unit": unit, "capacity": float(capacity), "allocatable": float(allocatable),
            "requests": float(requests), "limits": float(limits), "usage_p95_sum": float(usage),
            "request_ratio": requests / allocatable if allocatable else None,
            "limit_ratio": limits / allocatable if allocatable else None,
            "usage_ratio": usage / allocatable if allocatable else None,
        })
    return pl.DataFrame(rows)
