"""The node-level usage series: each node's summed container usage per sample time, read from the
store's materialised sums (schema 006) as per-node aggregates computed in DuckDB.

At 10,000 containers the series is 11 M rows (1,296 nodes x 8,640 five-minute steps); analyses
ask for its percentiles, daily maxima or peaks, never for the rows (issue 14: peak memory must not
grow with the samples). `node_usage_percentiles` and `daily_memory` compute the same from a frame
of the series: the reference the store path is tested against, and what tests build by hand.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import polars as pl

from capplan import store
from capplan.analysis.batches import batches
from capplan.reservation import HARD_EVICTION_BYTES

USAGE_SCHEMA = {
    "node": pl.Utf8, "usage_points": pl.Int64,
    "cpu_usage_p50_cores": pl.Float64, "cpu_usage_p95_cores": pl.Float64,
    "cpu_usage_p99_cores": pl.Float64, "cpu_usage_max_cores": pl.Float64,
    "memory_usage_p50_bytes": pl.Float64, "memory_usage_p95_bytes": pl.Float64,
    "memory_usage_p99_bytes": pl.Float64, "memory_usage_max_bytes": pl.Float64,
}
SERIES_SCHEMA = pl.Schema({"node": pl.Utf8(), "ts": pl.Datetime("us"), "cpu_cores": pl.Float64(), "memory_bytes": pl.Float64()})
DAILY_SCHEMA = pl.Schema({"node": pl.Utf8(), "day": pl.Datetime("us"), "points": pl.Int64(),
                          "memory_max_bytes": pl.Float64(), "breach_points": pl.Int64()})


def node_usage_percentiles(series: pl.DataFrame) -> pl.DataFrame:
    """Per node: p50/p95/p99/max of the node's summed container usage (one value per
    timestamp), with linear interpolation between samples (numpy's default, DuckDB's
    quantile_cont)."""
    if series.is_empty():
        return pl.DataFrame(schema=USAGE_SCHEMA)
    aggs = [pl.len().cast(pl.Int64).alias("usage_points")]
    for column, resource, unit in (("cpu_cores", "cpu", "cores"), ("memory_bytes", "memory", "bytes")):
        value = pl.col(column).cast(pl.Float64)
        aggs += [value.quantile(q, interpolation="linear").alias(f"{resource}_usage_p{round(q * 100)}_{unit}")
                 for q in (0.50, 0.95, 0.99)]
        aggs.append(value.max().alias(f"{resource}_usage_max_{unit}"))
    return series.group_by("node").agg(aggs).select(list(USAGE_SCHEMA)).sort("node")


def memory_thresholds(nodes: pl.DataFrame, eviction_bytes: float = HARD_EVICTION_BYTES) -> pl.DataFrame:
    """node, threshold_bytes: allocatable minus the hard eviction threshold (memory.available<100Mi)."""
    return nodes.select("node", (pl.col("memory_allocatable_bytes").cast(pl.Float64) - eviction_bytes).alias("threshold_bytes"))


def daily_memory(series: pl.DataFrame, nodes: pl.DataFrame,
                 eviction_bytes: float = HARD_EVICTION_BYTES) -> pl.DataFrame:
    """Per node and UTC day: samples, the maximum of the node's summed working set, and the
    samples in breach (working set > allocatable - eviction_bytes, allocatable from `nodes`).
    `series` as load_node_series (node, ts, memory_bytes)."""
    threshold = memory_thresholds(nodes, eviction_bytes).rename({"threshold_bytes": "t"})
    return series.join(threshold, on="node", how="inner").group_by("node", pl.col("ts").dt.truncate("1d").alias("day")).agg(
        pl.len().cast(pl.Int64).alias("points"),
        pl.col("memory_bytes").max().cast(pl.Float64).alias("memory_max_bytes"),
        (pl.col("memory_bytes") > pl.col("t")).sum().cast(pl.Int64).alias("breach_points"),
    ).sort("node", "day")


def _on_spark() -> bool:
    """`--engine spark` sums the node series from the samples of its lake (queries/node_usage_*.sql);
    DuckDB reads the stored sums (queries/node_sums_*.sql)."""
    return store.engine_for("node_usage_series") is not None


def load_node_series(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime,
                     nodes: list[str] | None = None) -> pl.DataFrame:
    """Each node's summed container usage per timestamp over [start, end] (of `nodes` only when
    given): one row per node and timestamp, so for a few nodes (charts) or small stores only."""
    if _on_spark():
        series = store.query(con, "node_usage_series", {"start": start, "end": end})
        series = series.filter(pl.col("node").is_in(nodes)) if nodes is not None else series
    else:
        series = store.query(con, "node_sums_series", {**store.node_usage_params(con, start, end), "nodes": nodes})
    return series.with_columns(pl.col("ts").cast(pl.Datetime("us")), pl.col("cpu_cores", "memory_bytes").cast(pl.Float64))


# Node sums per percentile query (queries/node_sums_percentiles.sql): DuckDB's quantile states keep
# every value, per thread. Bench L (11.2 M sums): one query +430 MiB of peak RSS; batches of at
# most 3 M (four) +200 MiB for 0.8 s more CPU (each batch reads the sums again); M is one batch.
PERCENTILE_BATCH_ROWS = 3_000_000
# DuckDB's memory limit while the sums are read (store.bounded_memory): each block of node_usage read
# stays in the buffer pool up to the limit, and none is read twice. Bench L (30 days, 11.2 M sums),
# `nodes` in-process: peak RSS 395-400 -> 305-331 MiB at the same CPU (3.7-4.1 s); M 246 -> 232 MiB
# (L/M 1.62x -> 1.4x). 32 MiB: the lowest that did not cost CPU (16 MiB: +0.7 s at L).
NODE_SUMS_MEMORY_LIMIT_BYTES = 32 * 2**20


def load_node_usage(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> pl.DataFrame:
    """node_usage_percentiles of the node series over [start, end], computed in DuckDB (or Spark)."""
    if _on_spark():
        usage = store.query(con, "node_usage_percentiles", {"start": start, "end": end})
    else:
        usage = store.bounded_memory(con, lambda: _stored_percentiles(con, start, end), NODE_SUMS_MEMORY_LIMIT_BYTES)
    return usage.select(pl.col(name).cast(dtype) for name, dtype in USAGE_SCHEMA.items())


def _stored_percentiles(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> pl.DataFrame:
    params = store.node_usage_params(con, start, end)
    counts = store.query(con, "node_sums_counts", params)
    parts = []
    for lo, hi in batches(counts["points"].to_list(), PERCENTILE_BATCH_ROWS) or [(0, 0)]:
        con.register("_node_batch", counts.slice(lo, hi - lo).select("node").to_arrow())
        try:
            parts.append(store.query(con, "node_sums_percentiles", params))
        finally:
            con.unregister("_node_batch")
    return pl.concat(parts)


def load_daily_memory(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, nodes: pl.DataFrame,
                      eviction_bytes: float = HARD_EVICTION_BYTES) -> pl.DataFrame:
    """daily_memory of the node series over [start, end], computed in DuckDB from the stored sums
    (one row per node and day); with `--engine spark`, from the series Spark sums."""
    if _on_spark():
        return daily_memory(load_node_series(con, start, end), nodes, eviction_bytes)
    con.register("_memory_thresholds", memory_thresholds(nodes, eviction_bytes).to_arrow())
    try:
        params = store.node_usage_params(con, start, end)
        daily = store.bounded_memory(con, lambda: store.query(con, "node_daily_memory", params),
                                     NODE_SUMS_MEMORY_LIMIT_BYTES)
    finally:
        con.unregister("_memory_thresholds")
    return daily.select(pl.col(name).cast(dtype) for name, dtype in DAILY_SCHEMA.items())


def load_node_memory_peaks(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> pl.DataFrame:
    """node, peak_bytes: the largest summed working set of each node over [start, end]."""
    return store.query(con, "node_memory_peaks", store.node_usage_params(con, start, end))
