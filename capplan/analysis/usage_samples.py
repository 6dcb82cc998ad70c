"""Raw usage samples of one workload's container over a window: what a usage distribution is
drawn from (the recommendations themselves work on aggregates in DuckDB)."""

from __future__ import annotations

from datetime import datetime

import duckdb
import polars as pl

from capplan import store


def workload_container_samples(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, namespace: str,
                               owner_name: str, container: str) -> pl.DataFrame:
    """ts, cpu_cores, memory_bytes of every sample of `container` in the pods of workload
    `owner_name` (pods roll up to their top owner) in `namespace` over [start, end]."""
    # the container's series ids bound the scan: the samples are stored in series order, so DuckDB
    # skips the row groups of other series (bench L: 0.7 s of CPU and +400 MiB of buffer pool a
    # container when the join alone chose the rows)
    lo, hi = store.fetch_row(con, "SELECT min(series_id), max(series_id) FROM series "
                                  "WHERE namespace = $namespace AND container = $container",
                             {"namespace": namespace, "container": container})
    usage = store.query(con, "container_usage_samples", {"start": start, "end": end, "namespace": namespace,
                                                         "container": container, "lo": lo, "hi": hi})
    return usage.filter(pl.col("owner_name") == owner_name).select("ts", "cpu_cores", "memory_bytes")
