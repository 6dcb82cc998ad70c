"""Per-node overcommit and headroom: requests, limits and real usage against allocatable."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb
import polars as pl

from capplan import store
from capplan.analysis.node_series import (
    DAILY_SCHEMA,
    USAGE_SCHEMA,
    load_daily_memory,
    load_node_usage,
)
from capplan.analysis.pods import (
    load_current_containers,
    load_current_nodes,
    pod_resources,
)
from capplan.analysis.taints import format_taints
from capplan.errors import NoDataError
from capplan.reservation import RESERVE_SLACK, recommended_reservation


def ratio(num: str, den: str) -> pl.Expr:
    """num / den as a polars expression, null where the denominator is zero or unknown."""
    return pl.when(pl.col(den) > 0).then(pl.col(num) / pl.col(den)).otherwise(None)


@dataclass
class NodeInputs:
    """What the per-node analysis reads from the store. `start` is None when the store holds
    specs but no usage samples (usage and daily are then empty)."""

    nodes: pl.DataFrame
    pods: pl.DataFrame
    usage: pl.DataFrame
    start: datetime | None
    end: datetime
    daily: pl.DataFrame  # node, day, points, memory_max_bytes, breach_points (node_series.DAILY_SCHEMA); `with_daily` only


def snapshot_window(con: duckdb.DuckDBPyConnection, window: timedelta) -> tuple[datetime | None, datetime]:
    """The analysis window `(start, end)`; without usage samples, `(None, newest node
    observation)` so that spec-only stores (e.g. an imported trace of pod specs) still answer.
    NoDataError when there are neither samples nor nodes."""
    try:
        return store.analysis_window(con, window)
    except NoDataError:
        end = store.analysis_end(con)  # --end: the nodes observed by then
        row = con.execute("SELECT max(valid_to) FROM nodes WHERE valid_from <= $end",
                          {"end": end or datetime.max}).fetchone()
        if row is None or row[0] is None:
            raise
        return None, min(row[0], end) if end is not None else row[0]


def load_node_inputs(con: duckdb.DuckDBPyConnection, window: timedelta, *, with_daily: bool = False) -> NodeInputs:
    """Nodes and pods at the window's end, and node usage percentiles over the window (and, with
    `with_daily`, each node's daily memory maxima and breaches for the memory-pressure risk)."""
    start, end = snapshot_window(con, window)
    nodes = load_current_nodes(con, end)
    if nodes.is_empty():
        raise NoDataError(f"no nodes were observed at {end:%Y-%m-%d %H:%M} UTC, the end of the window")
    pods = pod_resources(load_current_containers(con, end))
    usage = pl.DataFrame(schema=USAGE_SCHEMA) if start is None else load_node_usage(con, start, end)
    daily = (load_daily_memory(con, start, end, nodes) if start is not None and with_daily
             else pl.DataFrame(schema=DAILY_SCHEMA))
    return NodeInputs(nodes=nodes, pods=pods, usage=usage, start=start, end=end, daily=daily)


def node_overcommit(nodes: pl.DataFrame, pods: pl.DataFrame, usage: pl.DataFrame | None = None) -> pl.DataFrame:
    """One row per node: capacity, allocatable, sums of pod requests and limits, usage
    percentiles, ratios against allocatable, headroom (allocatable - requests), physical
    headroom (allocatable - p99 usage), unlimited containers, and whether the reservation
    (capacity - allocatable) meets the guideline."""
    if usage is None:
        usage = pl.DataFrame(schema=USAGE_SCHEMA)
    for name, dtype in USAGE_SCHEMA.items():
        if name not in usage.columns:
            usage = usage.with_columns(pl.lit(None, dtype=dtype).alias(name))
    sums = pods.filter(pl.col("node").is_not_null()).group_by("node").agg(
        pl.len().alias("pods"),
        pl.col("cpu_request_cores").sum().alias("cpu_requests_cores"),
        pl.col("cpu_limit_cores").sum().alias("cpu_limits_set_cores"),
        pl.col("memory_request_bytes").sum().alias("memory_requests_bytes"),
        pl.col("memory_limit_bytes").sum().alias("memory_limits_set_bytes"),
        pl.col("cpu_unlimited_containers").sum().alias("cpu_unlimited_containers"),
        pl.col("memory_unlimited_containers").sum().alias("memory_unlimited_containers"),
    )
    out = nodes.with_columns(
        pl.col("cpu_capacity_cores", "cpu_allocatable_cores").cast(pl.Float64),
        pl.col("memory_capacity_bytes", "memory_allocatable_bytes").cast(pl.Float64),
    ).join(sums, on="node", how="left").join(usage.select(list(USAGE_SCHEMA)), on="node", how="left").with_columns(
        pl.col("pods").fill_null(0).cast(pl.Int64),
        pl.col("cpu_requests_cores", "cpu_limits_set_cores", "memory_requests_bytes", "memory_limits_set_bytes").fill_null(0.0),
        pl.col("cpu_unlimited_containers", "memory_unlimited_containers").fill_null(0).cast(pl.Int64),
        pl.col("taints").map_elements(format_taints, return_dtype=pl.Utf8).fill_null("").alias("taints"),
    )
    # A container without a limit can use the whole node: the limit sum is unbounded (inf).
    out = out.with_columns(
        pl.when(pl.col("cpu_unlimited_containers") > 0).then(float("inf")).otherwise(pl.col("cpu_limits_set_cores")).alias("cpu_limits_cores"),
        pl.when(pl.col("memory_unlimited_containers") > 0).then(float("inf")).otherwise(pl.col("memory_limits_set_bytes")).alias("memory_limits_bytes"),
    )
    reserve = [recommended_reservation(c, m) for c, m in zip(out["cpu_capacity_cores"].to_list(), out["memory_capacity_bytes"].to_list(), strict=True)]
    out = out.with_columns(
        pl.Series("cpu_reserved_guideline_cores", [round(r[0], 6) for r in reserve], dtype=pl.Float64),
        pl.Series("memory_reserved_guideline_bytes", [float(round(r[1])) for r in reserve], dtype=pl.Float64),
        # rounded to the millicore: capacity and allocatable are written in millicores
        (pl.col("cpu_capacity_cores") - pl.col("cpu_allocatable_cores")).round(6).alias("cpu_reserved_cores"),
        (pl.col("memory_capacity_bytes") - pl.col("memory_allocatable_bytes")).alias("memory_reserved_bytes"),
    )
    out = out.with_columns(
        ratio("cpu_requests_cores", "cpu_allocatable_cores").alias("cpu_request_ratio"),
        ratio("cpu_limits_cores", "cpu_allocatable_cores").alias("cpu_limit_ratio"),
        ratio("memory_requests_bytes", "memory_allocatable_bytes").alias("memory_request_ratio"),
        ratio("memory_limits_bytes", "memory_allocatable_bytes").alias("memory_limit_ratio"),
        ratio("cpu_usage_p95_cores", "cpu_allocatable_cores").alias("cpu_usage_p95_ratio"),
        ratio("memory_usage_p95_bytes", "memory_allocatable_bytes").alias("memory_usage_p95_ratio"),
        (pl.col("cpu_allocatable_cores") - pl.col("cpu_requests_cores")).round(9).alias("cpu_headroom_cores"),
        (pl.col("memory_allocatable_bytes") - pl.col("memory_requests_bytes")).alias("memory_headroom_bytes"),
        (pl.col("cpu_allocatable_cores") - pl.col("cpu_usage_p99_cores")).alias("cpu_physical_headroom_cores"),
        (pl.col("memory_allocatable_bytes") - pl.col("memory_usage_p99_bytes")).alias("memory_physical_headroom_bytes"),
        ((pl.col("cpu_reserved_cores") > 0) & (pl.col("memory_reserved_bytes") > 0)
         & (pl.col("cpu_reserved_cores") >= pl.col("cpu_reserved_guideline_cores") * RESERVE_SLACK)
         & (pl.col("memory_reserved_bytes") >= pl.col("memory_reserved_guideline_bytes") * RESERVE_SLACK)).alias("reserved_ok"),
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
        "cpu_limits_set_cores", "memory_limits_set_bytes",
        "cpu_unlimited_containers", "memory_unlimited_containers",
        "cpu_reserved_cores", "memory_reserved_bytes", "cpu_reserved_guideline_cores", "memory_reserved_guideline_bytes",
        "reserved_ok", "pods_capacity", "usage_points", "taints",
    ).sort("node")


def nodes_report(con: duckdb.DuckDBPyConnection, window: timedelta = timedelta(days=14),
                 nodes: list[str] | None = None) -> pl.DataFrame:
    """`capplan nodes`: per-node overcommit and headroom over the window."""
    inputs = load_node_inputs(con, window)
    out = node_overcommit(inputs.nodes, inputs.pods, inputs.usage)
    if nodes:
        out = out.filter(pl.col("node").is_in(nodes))
    return out


def _round_finite(value: float | None, digits: int) -> float | None:
    if value is None:
        return None
    return _round_total(value, digits)


def _round_total(value: float, digits: int) -> float:
    return round(float(value), digits) if math.isfinite(value) else value


def cluster_summary(node_table: pl.DataFrame) -> pl.DataFrame:
    """Cluster totals from the per-node table, one row per resource (cpu, memory, pods).
    Limits are unbounded (inf) when any node's are; usage_p95_sum is the sum of the nodes' p95."""
    rows = []
    for resource, unit in (("cpu", "cores"), ("memory", "bytes"), ("pods", "pods")):
        capacity: float | None
        limits: float | None
        usage: float | None
        if resource == "pods":
            capacity = float(node_table["pods_capacity"].cast(pl.Float64).sum()) if "pods_capacity" in node_table.columns else None
            allocatable = float(node_table["pods_allocatable"].cast(pl.Float64).sum())
            requests = float(node_table["pods"].cast(pl.Float64).sum())
            limits = usage = None
        else:
            capacity = float(node_table[f"{resource}_capacity_{unit}"].sum())
            allocatable = float(node_table[f"{resource}_allocatable_{unit}"].sum())
            requests = float(node_table[f"{resource}_requests_{unit}"].sum())
            limits = float(node_table[f"{resource}_limits_{unit}"].sum())
            usage_col = node_table[f"{resource}_usage_p95_{unit}"]
            usage = float(usage_col.sum()) if usage_col.null_count() < node_table.height else None
        # cpu sums of millicore values to the nanocore, memory and pods to whole units: no float noise
        digits = 9 if resource == "cpu" else 0
        capacity, limits, usage = (_round_finite(v, digits) for v in (capacity, limits, usage))
        allocatable, requests = (_round_total(v, digits) for v in (allocatable, requests))
        rows.append({
            "resource": resource, "unit": unit, "nodes": node_table.height,
            "capacity": capacity, "allocatable": allocatable,
            "requests": requests, "limits": limits, "usage_p95_sum": usage,
            "request_ratio": requests / allocatable if allocatable else None,
            "limit_ratio": limits / allocatable if allocatable and limits is not None else None,
            "usage_ratio": usage / allocatable if allocatable and usage is not None else None,
            "headroom": allocatable - requests,
        })
    return pl.DataFrame(rows, schema={
        "resource": pl.Utf8, "unit": pl.Utf8, "nodes": pl.Int64, "capacity": pl.Float64, "allocatable": pl.Float64,
        "requests": pl.Float64, "limits": pl.Float64, "usage_p95_sum": pl.Float64, "request_ratio": pl.Float64,
        "limit_ratio": pl.Float64, "usage_ratio": pl.Float64, "headroom": pl.Float64,
    })
