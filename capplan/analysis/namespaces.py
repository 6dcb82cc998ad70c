"""Per namespace (`capplan namespaces`): pods, requests, limits, usage and ResourceQuota use."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, time, timedelta

import duckdb
import polars as pl

from capplan import store
from capplan.analysis.batches import batches
from capplan.analysis.day_slices import day_runs, day_slices
from capplan.analysis.nodes import (
    ratio,
    snapshot_window,
)
from capplan.analysis.pods import (
    CURRENT_TOLERANCE,
    load_current_containers,
    pod_resources,
)
from capplan.errors import NoDataError

# ResourceQuota resource names -> capplan column; `cpu`/`memory` are the same as `requests.*`
# (kubernetes/kubernetes pkg/quota/v1/evaluator/core/pods.go counts both from PodRequests).
QUOTA_COLUMNS = {
    "requests.cpu": "quota_cpu_requests_cores", "cpu": "quota_cpu_requests_cores",
    "requests.memory": "quota_memory_requests_bytes", "memory": "quota_memory_requests_bytes",
    "limits.cpu": "quota_cpu_limits_cores", "limits.memory": "quota_memory_limits_bytes",
    "pods": "quota_pods",
}
NAMESPACE_USAGE_SCHEMA = {
    "namespace": pl.Utf8, "usage_points": pl.Int64, "cpu_usage_p95_cores": pl.Float64, "cpu_usage_max_cores": pl.Float64,
    "memory_usage_p95_bytes": pl.Float64, "memory_usage_max_bytes": pl.Float64,
}


def namespace_table(pods: pl.DataFrame, usage: pl.DataFrame | None = None,
                    quotas: pl.DataFrame | None = None) -> pl.DataFrame:
    """Per namespace: pods, requests, limits (unbounded when a running container has none),
    usage p95 of the namespace's summed usage, usage/requests ratios, and ResourceQuota hard
    values (the smallest where several quotas name a resource) with the share used."""
    usage = usage if usage is not None else pl.DataFrame(schema=NAMESPACE_USAGE_SCHEMA)
    agg = pods.group_by("namespace").agg(
        pl.len().cast(pl.Int64).alias("pods"),
        pl.col("cpu_request_cores").sum().alias("cpu_requests_cores"),
        pl.col("cpu_limit_cores").sum().alias("cpu_limits_set_cores"),
        pl.col("memory_request_bytes").sum().alias("memory_requests_bytes"),
        pl.col("memory_limit_bytes").sum().alias("memory_limits_set_bytes"),
        pl.col("cpu_unlimited_containers").sum().cast(pl.Int64).alias("cpu_unlimited_containers"),
        pl.col("memory_unlimited_containers").sum().cast(pl.Int64).alias("memory_unlimited_containers"),
    )
    # namespaces with usage in the window or a quota but no pod alive at its end still show
    name_frames = [agg.select("namespace"), usage.select("namespace")]
    if quotas is not None and not quotas.is_empty():
        name_frames.append(quotas.select("namespace"))
    names = pl.concat(name_frames).unique()
    # A namespace with usage but no pod spec in the store (usage imported without requests, or
    # collected without kube-state-metrics): its pods, requests and limits are unknown (null),
    # never zero. Without usage either (only a quota), there really are no pods: zero.
    known = pl.col("namespace").is_in(agg["namespace"].implode()) | pl.col("usage_points").fill_null(0).eq(0)
    spec_columns = ["pods", "cpu_unlimited_containers", "memory_unlimited_containers", "cpu_requests_cores",
                    "cpu_limits_set_cores", "memory_requests_bytes", "memory_limits_set_bytes"]
    out = names.join(agg, on="namespace", how="left").join(usage, on="namespace", how="left").with_columns(
        pl.col("pods", "cpu_unlimited_containers", "memory_unlimited_containers").fill_null(0),
        pl.col("cpu_requests_cores", "cpu_limits_set_cores", "memory_requests_bytes", "memory_limits_set_bytes").fill_null(0.0),
    ).with_columns(*[pl.when(known).then(pl.col(c)).otherwise(None).alias(c) for c in spec_columns])
    out = out.with_columns(
        pl.when(pl.col("cpu_unlimited_containers") > 0).then(float("inf")).otherwise(pl.col("cpu_limits_set_cores")).alias("cpu_limits_cores"),
        pl.when(pl.col("memory_unlimited_containers") > 0).then(float("inf")).otherwise(pl.col("memory_limits_set_bytes")).alias("memory_limits_bytes"),
    )
    out = out.with_columns(
        ratio("cpu_usage_p95_cores", "cpu_requests_cores").alias("cpu_usage_request_ratio"),
        ratio("memory_usage_p95_bytes", "memory_requests_bytes").alias("memory_usage_request_ratio"),
    )
    quota_cols = sorted(set(QUOTA_COLUMNS.values()))
    if quotas is not None and not quotas.is_empty():
        q = quotas.filter(pl.col("resource").is_in(list(QUOTA_COLUMNS))).with_columns(
            pl.col("resource").replace_strict(QUOTA_COLUMNS, return_dtype=pl.Utf8).alias("column")
        ).group_by("namespace", "column").agg(pl.col("hard").min())
        wide = q.pivot(on="column", index="namespace", values="hard") if q.height else pl.DataFrame(schema={"namespace": pl.Utf8})
        out = out.join(wide, on="namespace", how="left")
    for c in quota_cols:
        if c not in out.columns:
            out = out.with_columns(pl.lit(None, dtype=pl.Float64).alias(c))
    out = out.with_columns(
        ratio("cpu_requests_cores", "quota_cpu_requests_cores").alias("quota_cpu_requests_used_ratio"),
        ratio("memory_requests_bytes", "quota_memory_requests_bytes").alias("quota_memory_requests_used_ratio"),
        ratio("cpu_limits_cores", "quota_cpu_limits_cores").alias("quota_cpu_limits_used_ratio"),
        ratio("memory_limits_bytes", "quota_memory_limits_bytes").alias("quota_memory_limits_used_ratio"),
        ratio("pods", "quota_pods").alias("quota_pods_used_ratio"),
    )
    return out.select(
        "namespace", "pods",
        "cpu_requests_cores", "cpu_limits_cores", "cpu_usage_p95_cores", "cpu_usage_request_ratio",
        "memory_requests_bytes", "memory_limits_bytes", "memory_usage_p95_bytes", "memory_usage_request_ratio",
        "cpu_unlimited_containers", "memory_unlimited_containers", "cpu_usage_max_cores", "memory_usage_max_bytes",
        "quota_cpu_requests_cores", "quota_cpu_requests_used_ratio",
        "quota_memory_requests_bytes", "quota_memory_requests_used_ratio",
        "quota_cpu_limits_cores", "quota_cpu_limits_used_ratio",
        "quota_memory_limits_bytes", "quota_memory_limits_used_ratio",
        "quota_pods", "quota_pods_used_ratio",
    ).sort("namespace")


MOMENTS_SCHEMA = {"namespace_id": pl.Int32, "cpu_cores": pl.Float64, "memory_bytes": pl.Int64}
# Sums per percentile query: DuckDB's quantile states hold every value (three numbers a row), so
# the percentiles are taken of a batch of whole namespaces at a time (bench L: 7 M sums, +350 MiB
# in one query).
PERCENTILE_BATCH_ROWS = 1_000_000


def load_namespace_usage(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> pl.DataFrame:
    """Per namespace: count, p95 and max of its summed usage per sample time over [start, end].
    The sums are read from the store (namespace_usage, schema 008: bench L 0.3 s of CPU, where
    summing the samples took 6.5 s), except on days a write left pending, which are summed from the
    samples a slice of days at a time (queries/namespace_usage_moments.sql), all under
    store.bounded_memory: held as three numbers a row they are 114 MB at the bench's L (810
    namespaces x 8,640 times). The percentiles of a namespace do not depend on where its sums came
    from, nor on the slices or the batches."""
    stale = sorted(store.scope_usage_pending_days(con, start, end))
    one_cluster = store.active_cluster(con) is not None or len(store.clusters(con)) <= 1
    if one_cluster and not stale:
        # every sum is stored: the percentiles straight from the table, a batch of namespaces at a time
        def percentiles() -> pl.DataFrame:
            counts = store.query(con, "namespace_usage_counts", {"start": start, "end": end})
            names = counts["namespace"].to_list()
            return pl.concat([store.query(con, "namespace_usage_percentiles_stored", {
                "start": start, "end": end, **({"lo": names[lo], "hi": names[hi - 1]} if hi > lo else {"lo": "b", "hi": "a"})})
                for lo, hi in batches(counts["sums"].to_list(), PERCENTILE_BATCH_ROWS) or [(0, 0)]]).sort("namespace")

        return store.bounded_memory(con, percentiles)
    ids = con.execute("SELECT DISTINCT namespace, CAST(dense_rank() OVER (ORDER BY namespace) AS INTEGER) AS namespace_id "
                      "FROM series").pl()
    # a store of several clusters read whole: a namespace's sums add its clusters'
    stored = "namespace_usage_stored" if one_cluster else "namespace_usage_stored_clusters"

    def sums() -> pl.DataFrame:
        parts = [store.query(con, stored, {"start": start, "end": end, "stale": stale})]
        for first, last in day_runs(stale):
            lo = max(start, datetime.combine(first, time.min))
            hi = min(end, datetime.combine(last, time.max))  # midnight belongs to the next day
            parts += [store.query(con, "namespace_usage_moments", {"start": a, "end": b})
                      for a, b in day_slices(con, lo, hi)]
        return pl.concat([p.select([pl.col(c).cast(t) for c, t in MOMENTS_SCHEMA.items()]) for p in parts])

    moments = store.bounded_memory(con, sums)
    # batches of whole namespaces by id range (a sorted copy of the sums would double them)
    per_id = moments["namespace_id"].value_counts().sort("namespace_id")
    id_list, counts = per_id["namespace_id"].to_list(), per_id["count"].to_list()
    con.register("_namespace_ids", ids.to_arrow())
    con.register("_namespace_moments", moments.to_arrow())
    try:
        results = [store.query(con, "namespace_usage_percentiles",
                               {"lo": id_list[lo], "hi": id_list[hi - 1]} if hi > lo else {"lo": 1, "hi": 0})
                   for lo, hi in batches(counts, PERCENTILE_BATCH_ROWS) or [(0, 0)]]
    finally:
        con.unregister("_namespace_moments")
        con.unregister("_namespace_ids")
    return pl.concat(results).sort("namespace")


def namespaces_report(con: duckdb.DuckDBPyConnection, window: timedelta = timedelta(days=14),
                      namespaces: Iterable[str] | None = None) -> pl.DataFrame:
    """`capplan namespaces`: namespace_table from the store."""
    start, end = snapshot_window(con, window)
    pods = pod_resources(load_current_containers(con, end))
    usage = load_namespace_usage(con, start, end) if start is not None else pl.DataFrame(schema=NAMESPACE_USAGE_SCHEMA)
    quotas = store.query(con, "current_resource_quotas", {"at": end, "tolerance": CURRENT_TOLERANCE})
    out = namespace_table(pods, usage, quotas)
    wanted = list(namespaces or [])
    if wanted:
        out = out.filter(pl.col("namespace").is_in(wanted))
        if out.is_empty():
            raise NoDataError(f"no pods or usage in namespace(s) {', '.join(wanted)}")
    return out
