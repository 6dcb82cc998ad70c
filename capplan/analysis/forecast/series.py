"""The daily series the forecast fits, per scope (cluster, node pool, namespace): requests
from the pods alive each day, usage from the summed samples of full days."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta

import duckdb
import polars as pl

from capplan import store
from capplan.analysis.day_slices import SLICE_SAMPLES, day_runs, day_slices
from capplan.analysis.forecast.model import (
    DAILY_SCHEMA,
    DEFAULT_POOL_LABEL,
    FULL_DAY_SHARE,
    NO_POOL,
    REQUEST_COLUMN,
    RESOURCES,
)
from capplan.analysis.pods import pod_resources
from capplan.errors import BadInputError

# --- daily series -----------------------------------------------------------------------------

def node_pools(node_labels: pl.DataFrame, pool_label: str = DEFAULT_POOL_LABEL) -> pl.DataFrame:
    """node -> pool: the value of the node label `pool_label` (NO_POOL when the node lacks it).
    `node_labels` has columns node, labels (a JSON object)."""
    pools = []
    for node, text in zip(node_labels["node"].to_list(), node_labels["labels"].to_list(), strict=True):
        try:
            labels = json.loads(text) if text else {}
        except json.JSONDecodeError as exc:
            raise BadInputError(f"labels of node {node} are not JSON: {str(text)[:80]!r}") from exc
        value = labels.get(pool_label) if isinstance(labels, dict) else None
        pools.append(str(value) if value not in (None, "") else NO_POOL)
    return pl.DataFrame({"node": node_labels["node"].cast(pl.Utf8), "pool": pools},
                        schema={"node": pl.Utf8, "pool": pl.Utf8})


def _scoped(frame: pl.DataFrame, pools: pl.DataFrame) -> pl.DataFrame:
    """`frame` (with node, namespace) repeated per scope: the cluster and pools take the rows
    bound to a node, namespaces all of them."""
    with_pool = frame.join(pools, on="node", how="left")
    bound = with_pool.filter(pl.col("node").is_not_null() & (pl.col("node") != ""))
    return pl.concat([
        bound.with_columns(scope_kind=pl.lit("cluster"), scope_name=pl.lit("cluster")),
        bound.filter(pl.col("pool").is_not_null()).with_columns(scope_kind=pl.lit("pool"), scope_name=pl.col("pool")),
        with_pool.with_columns(scope_kind=pl.lit("namespace"), scope_name=pl.col("namespace")),
    ], how="vertical_relaxed")


def _fill_days(daily: pl.DataFrame, days: list[date]) -> pl.DataFrame:
    """Every scope gets every day; a day the scope had nothing is 0 (a namespace created
    mid-window grew from nothing)."""
    if daily.is_empty() or not days:
        return daily.filter(pl.col("day").is_in(days)) if not daily.is_empty() else pl.DataFrame(schema=DAILY_SCHEMA)
    scopes = daily.select("scope_kind", "scope_name", "resource", "basis").unique()
    grid = scopes.join(pl.DataFrame({"day": days}, schema={"day": pl.Date}), how="cross")
    return grid.join(daily, on=["scope_kind", "scope_name", "resource", "basis", "day"], how="left").with_columns(
        pl.col("value").fill_null(0.0)
    ).select(list(DAILY_SCHEMA)).sort("scope_kind", "scope_name", "resource", "basis", "day")


def pod_day_requests(pod_day_containers: pl.DataFrame) -> pl.DataFrame:
    """Effective requests of each pod on each day (pod_resources per day), with the day's span.

    `pod_day_containers` has the columns of queries/forecast_pod_days.sql."""
    out = []
    for (day,), part in pod_day_containers.partition_by("day", as_dict=True, maintain_order=True).items():
        spans = part.group_by("namespace", "pod").agg(pl.col("span_start").min(), pl.col("span_end").max())
        pods = pod_resources(part).select("namespace", "pod", "node", "cpu_request_cores", "memory_request_bytes")
        out.append(pods.join(spans, on=["namespace", "pod"]).with_columns(day=pl.lit(day).cast(pl.Datetime("us"))))
    if not out:
        return pl.DataFrame(schema={"namespace": pl.Utf8, "pod": pl.Utf8, "node": pl.Utf8,
                                    "cpu_request_cores": pl.Float64, "memory_request_bytes": pl.Float64,
                                    "span_start": pl.Datetime("us"), "span_end": pl.Datetime("us"),
                                    "day": pl.Datetime("us")})
    return pl.concat(out, how="vertical_relaxed")


def request_peaks(pods: pl.DataFrame, pools: pl.DataFrame) -> pl.DataFrame:
    """Per scope and day: the peak of the summed requests of pods alive at the same moment (a
    sweep over the pods' spans: at equal times a pod starting counts before one ending, spans
    being inclusive). Only the days and scopes that had pods (daily_requests fills the rest).

    `pods`: day, namespace, pod, node, span_start, span_end, cpu_request_cores,
    memory_request_bytes (pod_day_requests). `pools`: node, pool. Returns DAILY_SCHEMA.
    """
    if pods.is_empty():
        return pl.DataFrame(schema=DAILY_SCHEMA)
    scoped = _scoped(pods, pools)
    keys = ["scope_kind", "scope_name", "day"]
    # one sweep for both resources: the events and their order are the same, only the deltas differ
    # (sorting once instead of per resource: bench L forecast 0.9 -> 0.6 CPU-s in request_peaks)
    deltas = [pl.col(REQUEST_COLUMN[resource]).fill_null(0.0).cast(pl.Float64).alias(resource) for resource in RESOURCES]
    starts = scoped.select(*keys, pl.col("span_start").alias("t"), pl.lit(0).alias("order"), *deltas)
    ends = scoped.select(*keys, pl.col("span_end").alias("t"), pl.lit(1).alias("order"), *[-d for d in deltas])
    levels = pl.concat([starts, ends]).sort(*keys, "t", "order").with_columns(
        pl.col(resource).cum_sum().over(keys) for resource in RESOURCES
    ).group_by(keys).agg(pl.col(resource).max() for resource in RESOURCES)
    parts = []
    for resource in RESOURCES:
        # the running sum carries float noise (1e-15) that would tilt a flat series: round to the
        # units requests are written in (millicores would do; micro keeps sub-milli requests)
        peak = levels.select(*keys, pl.col(resource).round(6 if resource == "cpu" else 0).alias("value"))
        parts.append(peak.with_columns(resource=pl.lit(resource), basis=pl.lit("requests")))
    return pl.concat(parts).with_columns(pl.col("day").cast(pl.Date)).select(list(DAILY_SCHEMA))


def daily_requests_from_peaks(peaks: pl.DataFrame, days: list[date] | None = None) -> pl.DataFrame:
    """request_peaks on `days` (default: the days that had pods), every scope on every day."""
    if peaks.is_empty():
        return pl.DataFrame(schema=DAILY_SCHEMA)
    return _fill_days(peaks, days if days is not None else sorted(set(peaks["day"].to_list())))


def daily_requests(pods: pl.DataFrame, pools: pl.DataFrame, days: list[date] | None = None) -> pl.DataFrame:
    """Daily requests per scope: the day's peak of the summed requests of pods alive at the same
    moment (request_peaks), on `days` (default: the days that had pods). Returns DAILY_SCHEMA."""
    return daily_requests_from_peaks(request_peaks(pods, pools), days)


# Days of pods per slice of load_request_peaks: the pods of a slice (one row per pod, day and
# container) and their sweep are in memory at once. At most a week, and at most about
# REQUEST_SLICE_POD_DAYS pod spec rows (pods x days): a week of the bench's L cluster (13,122 pod
# rows) is 70,000 rows and held +210 MiB of peak RSS (+85 MiB at M, 1,312 pods); a day at a time
# at L held +130 MiB for the same CPU (bench/RESULTS.md). M keeps its week.
REQUEST_SLICE_DAYS = 7
REQUEST_SLICE_POD_DAYS = 10_000


def request_slice_days(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> int:
    """Days per slice of load_request_peaks: REQUEST_SLICE_POD_DAYS over the pod spec rows of the
    window (a pod alive every day counts once a day), 1 to REQUEST_SLICE_DAYS."""
    pods = int(store.fetch_row(con, "SELECT count(*) FROM pods WHERE valid_from <= $end AND valid_to >= $start",
                               {"start": start, "end": end})[0])
    return max(1, min(REQUEST_SLICE_DAYS, REQUEST_SLICE_POD_DAYS // max(pods, 1)))


def load_request_peaks(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, pools: pl.DataFrame,
                       slice_days: int | None = None) -> pl.DataFrame:
    """request_peaks of the pods alive in [start, end] (queries/forecast_pod_days.sql), a slice of
    `slice_days` (default: request_slice_days) whole UTC days at a time: a day's peak only needs
    that day's pods, so the pods of the whole window are never in memory at once."""
    if slice_days is None:
        slice_days = request_slice_days(con, start, end)
    parts = []
    first = start.date()
    while datetime.combine(first, time.min) <= end:
        last = first + timedelta(days=slice_days - 1)
        lo, hi = _clip_days(first, last, start, end)
        pods = pod_day_requests(store.query(con, "forecast_pod_days", {"start": lo, "end": hi}))
        parts.append(request_peaks(pods, pools))
        first = last + timedelta(days=1)
    return pl.concat(parts) if parts else pl.DataFrame(schema=DAILY_SCHEMA)


def full_days(sample_times: pl.Series) -> list[date]:
    """The days with at least half as many distinct sample times as the fullest day."""
    if sample_times.is_empty():
        return []
    counts = pl.DataFrame({"ts": sample_times}).unique().group_by(pl.col("ts").dt.date().alias("day")).len()
    return sorted(counts.filter(pl.col("len") >= pl.col("len").max() * FULL_DAY_SHARE)["day"].to_list())


USAGE_SUMS_SCHEMA = pl.Schema({"scope_kind": pl.Utf8(), "scope_name": pl.Utf8(), "ts": pl.Datetime("us"),
                     "cpu_cores": pl.Float64(), "memory_bytes": pl.Float64()})


def scope_usage_sums(usage: pl.DataFrame, pools: pl.DataFrame) -> pl.DataFrame:
    """Per sample time and scope (cluster, pool, namespace): the summed cpu and memory usage.

    `usage`: ts, node, namespace, cpu_cores, memory_bytes (any granularity: containers or
    partial sums). Series on an unknown node ('' or null) count for the cluster and their
    namespace only. queries/forecast_usage_scope_sums.sql computes the same in the store.
    """
    if usage.is_empty():
        return pl.DataFrame(schema=USAGE_SUMS_SCHEMA)
    frame = usage.with_columns(pl.col("node").replace("", None))
    scoped = pl.concat([
        frame.with_columns(scope_kind=pl.lit("cluster"), scope_name=pl.lit("cluster")),
        frame.join(pools, on="node", how="inner").with_columns(scope_kind=pl.lit("pool"), scope_name=pl.col("pool")),
        frame.with_columns(scope_kind=pl.lit("namespace"), scope_name=pl.col("namespace")),
    ], how="diagonal_relaxed")
    return scoped.group_by("scope_kind", "scope_name", "ts").agg(
        pl.col("cpu_cores").cast(pl.Float64).sum(), pl.col("memory_bytes").cast(pl.Float64).sum()
    ).select(list(USAGE_SUMS_SCHEMA)).sort("scope_kind", "scope_name", "ts")


USAGE_DAILY_SCHEMA = pl.Schema({"scope_kind": pl.Utf8(), "scope_name": pl.Utf8(), "day": pl.Date(),
                                 "sample_times": pl.Int64(), "cpu": pl.Float64(), "memory": pl.Float64()})


def usage_day_quantiles(sums: pl.DataFrame) -> pl.DataFrame:
    """Per scope and day: the number of sample times and the 95th percentile (linear
    interpolation) of the summed cpu and memory usage per sample time (USAGE_DAILY_SCHEMA).

    `sums`: scope_usage_sums. load_usage_daily computes the same in the store."""
    if sums.is_empty():
        return pl.DataFrame(schema=USAGE_DAILY_SCHEMA)
    return sums.with_columns(day=pl.col("ts").dt.date()).group_by("scope_kind", "scope_name", "day").agg(
        pl.len().alias("sample_times"),
        pl.col("cpu_cores").quantile(0.95, interpolation="linear").alias("cpu"),
        pl.col("memory_bytes").quantile(0.95, interpolation="linear").alias("memory"),
    ).select([pl.col(c).cast(t) for c, t in USAGE_DAILY_SCHEMA.items()]).sort("scope_kind", "scope_name", "day")


def usage_full_days(quantiles: pl.DataFrame) -> list[date]:
    """full_days from per-day counts: the days whose cluster scope has at least FULL_DAY_SHARE
    as many sample times as its fullest day (the cluster has one sum per sample time)."""
    cluster = quantiles.filter(pl.col("scope_kind") == "cluster")
    if cluster.is_empty():
        return []
    fullest = int(cluster["sample_times"].max())  # type: ignore[arg-type]
    return sorted(cluster.filter(pl.col("sample_times") >= fullest * FULL_DAY_SHARE)["day"].to_list())


def daily_usage_from_quantiles(quantiles: pl.DataFrame, days: list[date] | None = None) -> pl.DataFrame:
    """DAILY_SCHEMA usage rows from usage_day_quantiles (or load_usage_daily):
    only `days` (default: usage_full_days), every scope on every one of them."""
    if quantiles.is_empty():
        return pl.DataFrame(schema=DAILY_SCHEMA)
    if days is None:
        days = usage_full_days(quantiles)
    daily = quantiles.unpivot(index=["scope_kind", "scope_name", "day"], on=list(RESOURCES),
                              variable_name="resource", value_name="value").with_columns(basis=pl.lit("usage"))
    return _fill_days(daily.select(list(DAILY_SCHEMA)), days)


def daily_usage(sums: pl.DataFrame, days: list[date] | None = None) -> pl.DataFrame:
    """Daily usage per scope: the 95th percentile (linear interpolation) of the day's summed
    usage per sample time.

    `sums`: scope_kind, scope_name, ts, cpu_cores, memory_bytes (scope_usage_sums or
    queries/forecast_usage_scope_sums.sql). Only `days` (default: full_days of the sample times)
    are kept. Returns DAILY_SCHEMA.
    """
    if sums.is_empty():
        return pl.DataFrame(schema=DAILY_SCHEMA)
    if days is None:
        days = full_days(sums["ts"])
    return daily_usage_from_quantiles(usage_day_quantiles(sums), days)


def _clip_days(first: date, last: date, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The instants of days first..last inside [start, end] (inclusive bounds, as BETWEEN)."""
    lo = datetime.combine(first, time.min)
    hi = datetime.combine(last, time.max)  # 23:59:59.999999: midnight belongs to the next day
    return max(lo, start), min(hi, end)


def load_usage_daily(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime,
                     pools: pl.DataFrame, max_samples: int = SLICE_SAMPLES) -> pl.DataFrame:
    """usage_day_quantiles of [start, end] computed in the store: one row per scope and day leaves
    DuckDB, never the per-sample-time sums (USAGE_DAILY_SCHEMA).

    - the cluster and each namespace: the stored figures (scope_usage_daily, schema 007) of every
      day the window holds whole (the day's first and last sample time inside it) and that no write
      left pending; the other days (the window's partial first or last day, pending days) from the
      samples, a slice of whole days at a time (day_slices), by the definition the stored rows have
      (queries/scope_usage_macros.sql);
    - node pools: from the node sums (node_usage, schema 006, its pending ranges summed from the
      samples), grouped by `pools` (node -> pool) per sample time.
    All sums are exact in the stored units (millicores, KiB)."""
    stale = store.scope_usage_pending_days(con, start, end)
    stored = store.query(con, "forecast_scope_usage_stored", {"start": start, "end": end})
    cluster_days = stored.filter(pl.col("scope_kind") == "cluster")
    whole = cluster_days.filter((pl.col("first_ts") >= start) & (pl.col("last_ts") <= end)
                                & ~pl.col("day").is_in(list(stale)))["day"].to_list()
    # days without a stored row and not pending had no samples when last computed: nothing to read
    recompute = sorted((set(cluster_days["day"].to_list()) | stale) - set(whole))
    parts = [stored.filter(pl.col("day").is_in(whole))]
    for first, last in day_runs(recompute):
        lo, hi = _clip_days(first, last, start, end)
        parts += [store.query(con, "forecast_scope_usage_figures", {"start": a, "end": b})
                  for a, b in day_slices(con, lo, hi, max_samples)]
    con.register("_forecast_pools", pools.select(pl.col("node").cast(pl.Utf8), pl.col("pool").cast(pl.Utf8)).to_arrow())
    try:
        parts.append(store.query(con, "forecast_pool_usage_daily", store.node_usage_params(con, start, end)))
    finally:
        con.unregister("_forecast_pools")
    return pl.concat([p.select([pl.col(c).cast(t) for c, t in USAGE_DAILY_SCHEMA.items()]) for p in parts]).sort(
        "scope_kind", "scope_name", "day")


def load_usage_sums(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime,
                    pools: pl.DataFrame) -> pl.DataFrame:
    """scope_usage_sums computed in the store (queries/forecast_usage_scope_sums.sql): one row per
    scope and sample time (the forecast itself reads load_usage_daily)."""
    return store.query(con, "forecast_usage_scope_sums", {
        "start": start, "end": end, "nodes": pools["node"].to_list(), "pools": pools["pool"].to_list(),
    }).select([pl.col(c).cast(t) for c, t in USAGE_SUMS_SCHEMA.items()])
