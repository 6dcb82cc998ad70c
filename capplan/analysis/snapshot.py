"""The cluster at one moment (nodes and effective pod requests at the end of the window) and
per-node request sums: the input of fit, N-1 and imbalance."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb
import polars as pl

from capplan.analysis.nodes import (
    snapshot_window,
)
from capplan.analysis.pods import (
    load_current_containers,
    load_current_nodes,
    pod_resources,
)
from capplan.errors import NoDataError

# --- node state ---------------------------------------------------------------------------

def node_state(nodes: pl.DataFrame, pods: pl.DataFrame) -> pl.DataFrame:
    """Per node: allocatable, the sums of pod requests, pod count and the raw taints; the input
    of fit, N-1 and imbalance. `nodes` as queries/current_nodes.sql, `pods` as pod_resources()."""
    sums = pods.filter(pl.col("node").is_not_null()).group_by("node").agg(
        pl.len().cast(pl.Int64).alias("pods"),
        pl.col("cpu_request_cores").sum().alias("cpu_requests_cores"),
        pl.col("memory_request_bytes").sum().alias("memory_requests_bytes"),
    )
    taints = nodes["taints"] if "taints" in nodes.columns else pl.Series([None] * nodes.height, dtype=pl.Utf8)
    return nodes.select(
        "node",
        pl.col("cpu_allocatable_cores").cast(pl.Float64),
        pl.col("memory_allocatable_bytes").cast(pl.Float64),
        pl.col("pods_allocatable").cast(pl.Int64),
    ).with_columns(taints.alias("taints")).join(sums, on="node", how="left").with_columns(
        pl.col("pods").fill_null(0),
        pl.col("cpu_requests_cores", "memory_requests_bytes").fill_null(0.0),
    ).sort("node")


def millicores(cores: float) -> int:
    # The scheduler compares CPU in millicores (resource.Quantity.MilliValue); sums of millicore
    # requests are whole numbers up to float noise.
    return int(round(cores * 1000))


@dataclass
class Snapshot:
    """Nodes and pods at the end of the window (no usage)."""

    nodes: pl.DataFrame
    pods: pl.DataFrame
    at: datetime


def load_snapshot(con: duckdb.DuckDBPyConnection, window: timedelta = timedelta(days=14)) -> Snapshot:
    """Nodes and effective pod resources at the end of the window (or at the newest node
    observation of a spec-only store). NoDataError without nodes."""
    _, end = snapshot_window(con, window)
    nodes = load_current_nodes(con, end)
    if nodes.is_empty():
        raise NoDataError(f"no nodes were observed at {end:%Y-%m-%d %H:%M} UTC, the end of the window")
    return Snapshot(nodes=nodes, pods=pod_resources(load_current_containers(con, end)), at=end)
