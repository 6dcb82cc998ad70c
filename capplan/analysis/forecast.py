"""Capacity forecast: the growth trend of daily demand and the days until it crosses capacity.

Scopes: the cluster, each node pool (a node label, default `node.kubernetes.io/instance-type`)
and each namespace; resources cpu (cores) and memory (bytes); two bases:

- `requests`: what the scheduler sees. A day's value is the largest sum of effective pod
  requests (capplan.analysis.pods.pod_resources: sidecars, init containers, overhead) of pods
  alive at the same moment that day, from the pods/containers interval history. Pods in a
  terminal phase (Succeeded, Failed) hold nothing. Taking the peak moment rather than summing
  every pod seen that day keeps a replaced pod (a rollout, a rescheduled pod) from counting
  twice. Cluster and pool scopes count pods bound to a node; namespaces count all their pods
  (a ResourceQuota counts unscheduled pods too).
- `usage`: the day's 95th percentile of the scope's summed usage (CPU cores averaged over a
  step, memory working set), sample time by sample time.

Trend: Theil-Sen (scipy.stats.theilslopes), the median of all pairwise slopes, which one-off
spikes barely move. With two weeks or more of days, a weekly cycle is taken out first (the
median residual per weekday, centred) so that weekends do not tilt the slope. The slope's
confidence interval (default 90%) gives the low/high interval of days to exhaustion: the
fastest plausible growth gives `days_low`, the slowest `days_high`.

Projection: from the trend's level on the last day, `(limit - level) / slope` days. The limit
(`allocatable` column) is the sum of allocatable of the scope's nodes at the window's end; for a
namespace, its ResourceQuota hard value (`requests.cpu`/`cpu`, `requests.memory`/`memory`, the
tightest if several quotas) when it has one, else its share of the cluster: allocatable minus
what the other namespaces take now on the same basis (the room the namespace could grow into if
the others stayed as they are). A flat or falling trend, or a crossing beyond the horizon, is
"never" (days empty); a trend already at or over the limit is 0 days ("exhausted"). Fewer days
of history than `min_days` give no projection ("too_short"), with the reason.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import polars as pl
from scipy import stats

from capplan import store
from capplan.analysis.pods import CURRENT_TOLERANCE, load_current_nodes, pod_resources
from capplan.errors import BadInputError, NoDataError, UsageError
from capplan.quantity import format_bytes

if TYPE_CHECKING:
    from capplan.report import ReportOptions, Section

DEFAULT_POOL_LABEL = "node.kubernetes.io/instance-type"
DEFAULT_HORIZON = timedelta(days=90)
DEFAULT_MIN_DAYS = 7
DEFAULT_CONFIDENCE = 0.90
SEASONAL_MIN_DAYS = 14  # two of each weekday before a weekday effect can be told from noise
OUTLIER_SCALES = 3.0  # a residual this many robust standard deviations from its weekday's median is an outlier
FULL_DAY_SHARE = 0.5  # a day with fewer sample times than half the fullest day is a partial day
NO_POOL = "(no label)"
RESOURCES = ("cpu", "memory")
BASES = ("requests", "usage")
UNITS = {"cpu": "cores", "memory": "bytes"}
_REQUEST_COLUMN = {"cpu": "cpu_request_cores", "memory": "memory_request_bytes"}
_USAGE_COLUMN = {"cpu": "cpu_cores", "memory": "memory_bytes"}
_ALLOCATABLE_COLUMN = {"cpu": "cpu_allocatable_cores", "memory": "memory_allocatable_bytes"}
# ResourceQuota names that cap a namespace's requests (`cpu` and `memory` mean requests.*:
# kubernetes/kubernetes pkg/quota/v1/evaluator/core/pods.go, podComputeUsageHelper).
_QUOTA_RESOURCES = {"cpu": ("requests.cpu", "cpu"), "memory": ("requests.memory", "memory")}

DAILY_SCHEMA = {"scope_kind": pl.Utf8, "scope_name": pl.Utf8, "resource": pl.Utf8, "basis": pl.Utf8,
                "day": pl.Date, "value": pl.Float64}
LIMIT_SCHEMA = {"scope_kind": pl.Utf8, "scope_name": pl.Utf8, "resource": pl.Utf8, "basis": pl.Utf8,
                "allocatable": pl.Float64, "limit_source": pl.Utf8}
FORECAST_SCHEMA = {
    "scope": pl.Utf8, "resource": pl.Utf8, "basis": pl.Utf8, "current": pl.Float64, "allocatable": pl.Float64,
    "slope_per_day": pl.Float64, "days_to_exhaustion": pl.Float64, "days_low": pl.Float64,
    "days_high": pl.Float64, "outlook": pl.Utf8, "exhaustion_date": pl.Date, "reason": pl.Utf8,
    "scope_kind": pl.Utf8, "scope_name": pl.Utf8, "unit": pl.Utf8, "trend_current": pl.Float64,
    "slope_low_per_day": pl.Float64, "slope_high_per_day": pl.Float64, "days_of_history": pl.Int64,
    "weekly_cycle_removed": pl.Boolean, "limit_source": pl.Utf8,
}


# --- trend and projection ------------------------------------------------------------------

@dataclass(frozen=True)
class Trend:
    """A robust linear trend of daily values: slope per day with its confidence interval, and
    the trend's level on the last day."""

    slope: float
    slope_low: float
    slope_high: float
    level: float
    seasonal: bool


def robust_trend(x_days: np.ndarray, values: np.ndarray, weekdays: np.ndarray | None = None,
                 confidence: float = DEFAULT_CONFIDENCE) -> Trend:
    """Theil-Sen slope of `values` over `x_days` (days, any origin) with its `confidence`
    interval (scipy.stats.theilslopes) and the fitted level at the last day.

    With `weekdays` (0-6 per point) and at least two weeks of days, the weekly cycle is removed
    first: the weekday effects (weekday_effects) of the residuals around a first Theil-Sen line,
    centred to mean zero, are
    subtracted and the line fitted again. The level is then that of the weekly mean.
    """
    x = np.asarray(x_days, dtype=float)
    y = np.asarray(values, dtype=float)
    if x.size < 2:
        raise ValueError("a trend needs at least two points")
    fit = stats.theilslopes(y, x, alpha=confidence)
    seasonal = False
    if weekdays is not None and x.size >= SEASONAL_MIN_DAYS and (x.max() - x.min()) >= SEASONAL_MIN_DAYS - 1:
        wd = np.asarray(weekdays)
        residual = y - (fit.intercept + fit.slope * x)
        effect = weekday_effects(residual, wd)
        centre = float(np.mean(list(effect.values())))
        adjusted = y - np.array([effect[int(w)] - centre for w in wd])
        fit = stats.theilslopes(adjusted, x, alpha=confidence)
        seasonal = True
    level = float(fit.intercept + fit.slope * x.max())
    return Trend(float(fit.slope), float(fit.low_slope), float(fit.high_slope), level, seasonal)


def weekday_effects(residual: np.ndarray, weekdays: np.ndarray) -> dict[int, float]:
    """Each weekday's effect: the median of its residuals, without outliers.

    An outlier is a residual more than OUTLIER_SCALES robust standard deviations from its
    weekday's median, the scale being the MAD of all residuals around their weekday's median
    (which the cycle does not inflate, only noise does). With two of a weekday both are that far
    from their median; then the one farther from the median of all residuals (the spike, far
    from every day) goes. A weekday whose points are all outliers keeps the one closest to that
    median.
    """
    r = np.asarray(residual, dtype=float)
    wd = np.asarray(weekdays)
    days = np.unique(wd)
    median_w = {int(w): float(np.median(r[wd == w])) for w in days}
    dev = r - np.array([median_w[int(w)] for w in wd])
    scale = 1.4826 * float(np.median(np.abs(dev)))
    tiny = 1e-9 * (1.0 + float(np.max(np.abs(r))))
    outlier = np.abs(dev) > OUTLIER_SCALES * scale + tiny
    centre = float(np.median(r))
    effect = {}
    for w in days:
        mask = wd == w
        kept = r[mask & ~outlier]
        if kept.size == 0:
            values = r[mask]
            kept = values[[int(np.argmin(np.abs(values - centre)))]]
        effect[int(w)] = float(np.median(kept))
    return effect


def days_until(level: float, limit: float, slope: float, horizon_days: float) -> float | None:
    """Days from the last day until `level` growing by `slope` per day reaches `limit`: 0 when
    already there, None ("never") when flat/falling or beyond `horizon_days`."""
    if level >= limit:
        return 0.0
    if slope <= 0:
        return None
    days = (limit - level) / slope
    return days if days <= horizon_days else None


def project(trend: Trend, limit: float, horizon_days: float) -> dict[str, Any]:
    """Days to exhaustion (and its interval) of a trend against `limit`, with an outlook
    (exhausted, within_horizon, never) and a one-line reason."""
    days = days_until(trend.level, limit, trend.slope, horizon_days)
    low = days_until(trend.level, limit, trend.slope_high, horizon_days)
    high = days_until(trend.level, limit, trend.slope_low, horizon_days)
    if days == 0.0:
        outlook, reason = "exhausted", "the trend is already at or above the limit"
    elif days is not None:
        outlook, reason = "within_horizon", f"reaches the limit in {days:.0f} days at the trend's growth"
    elif trend.slope <= 0:
        outlook = "never"
        reason = f"{'flat' if trend.slope == 0 else 'falling'} trend: never within the {horizon_days:g}-day horizon"
    else:
        outlook = "never"
        reason = (f"growing, but reaches the limit after {(limit - trend.level) / trend.slope:.0f} days, "
                  f"beyond the {horizon_days:g}-day horizon")
    return {"days_to_exhaustion": days, "days_low": low, "days_high": high, "outlook": outlook, "reason": reason}


def forecast_series(daily: pl.DataFrame, limits: pl.DataFrame, horizon_days: float = DEFAULT_HORIZON.days,
                    min_days: int = DEFAULT_MIN_DAYS, confidence: float = DEFAULT_CONFIDENCE) -> pl.DataFrame:
    """One forecast row per scope, resource and basis (FORECAST_SCHEMA, CONTRACT `forecast`).

    `daily`: scope_kind, scope_name, resource, basis, day (date), value (DAILY_SCHEMA).
    `limits`: scope_kind, scope_name, resource, basis, allocatable, limit_source (LIMIT_SCHEMA);
    a series without a limit gets no days to exhaustion.
    """
    keys = ["scope_kind", "scope_name", "resource", "basis"]
    if daily.is_empty():
        return pl.DataFrame(schema=FORECAST_SCHEMA)
    limit_map = {tuple(r[k] for k in keys): (r["allocatable"], r["limit_source"])
                 for r in limits.iter_rows(named=True)}
    rows = []
    for key, group in daily.sort("day").group_by(keys, maintain_order=True):
        scope_kind, scope_name, resource, basis = key
        group = group.filter(pl.col("value").is_not_null() & pl.col("value").is_finite())
        days = group["day"].to_list()
        values = group["value"].to_numpy().astype(float)
        limit, source = limit_map.get(tuple(key), (None, None))
        last_day: date | None = days[-1] if days else None
        row: dict[str, Any] = {
            "scope": scope_label(scope_kind, scope_name), "resource": resource, "basis": basis,
            "current": float(values[-1]) if len(values) else None, "allocatable": limit,
            "slope_per_day": None, "days_to_exhaustion": None, "days_low": None, "days_high": None,
            "exhaustion_date": None, "scope_kind": scope_kind, "scope_name": scope_name, "unit": UNITS[resource],
            "trend_current": None, "slope_low_per_day": None, "slope_high_per_day": None,
            "days_of_history": len(days), "weekly_cycle_removed": None, "limit_source": source,
        }
        if len(days) < max(min_days, 2):
            row.update(outlook="too_short",
                       reason=f"history too short: {len(days)} days of data, at least {max(min_days, 2)} needed (--min-days)")
            rows.append(row)
            continue
        x = np.array([(d - days[0]).days for d in days], dtype=float)
        trend = robust_trend(x, values, np.array([d.weekday() for d in days]), confidence)
        row.update(slope_per_day=trend.slope, slope_low_per_day=trend.slope_low, slope_high_per_day=trend.slope_high,
                   trend_current=trend.level, weekly_cycle_removed=trend.seasonal)
        if limit is None or not math.isfinite(limit) or limit <= 0:
            row.update(outlook="no_limit", reason="no capacity to compare with (no nodes or quota for this scope)")
        else:
            row.update(project(trend, limit, horizon_days))
            if row["days_to_exhaustion"] is not None and last_day is not None:
                row["exhaustion_date"] = last_day + timedelta(days=math.ceil(row["days_to_exhaustion"]))
        rows.append(row)
    return pl.DataFrame(rows, schema=FORECAST_SCHEMA)


def scope_label(kind: str, name: str) -> str:
    """The `scope` column: `cluster`, `pool:NAME` or `namespace:NAME`."""
    return "cluster" if kind == "cluster" else f"{kind}:{name}"


# --- daily series -----------------------------------------------------------------------------

def node_pools(node_labels: pl.DataFrame, pool_label: str = DEFAULT_POOL_LABEL) -> pl.DataFrame:
    """node -> pool: the value of the node label `pool_label` (NO_POOL when the node lacks it).
    `node_labels` has columns node, labels (a JSON object)."""
    pools = []
    for node, text in zip(node_labels["node"].to_list(), node_labels["labels"].to_list()):
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


def daily_requests(pods: pl.DataFrame, pools: pl.DataFrame, days: list[date] | None = None) -> pl.DataFrame:
    """Daily requests per scope: the day's peak of the summed requests of pods alive at the same
    moment (a sweep over the pods' spans: at equal times a pod starting counts before one
    ending, spans being inclusive).

    `pods`: day, namespace, pod, node, span_start, span_end, cpu_request_cores,
    memory_request_bytes (pod_day_requests). `pools`: node, pool. Returns DAILY_SCHEMA.
    """
    if pods.is_empty():
        return pl.DataFrame(schema=DAILY_SCHEMA)
    scoped = _scoped(pods, pools)
    keys = ["scope_kind", "scope_name", "day"]
    parts = []
    for resource in RESOURCES:
        col = _REQUEST_COLUMN[resource]
        starts = scoped.select(*keys, pl.col("span_start").alias("t"), pl.lit(0).alias("order"),
                               pl.col(col).fill_null(0.0).cast(pl.Float64).alias("delta"))
        ends = scoped.select(*keys, pl.col("span_end").alias("t"), pl.lit(1).alias("order"),
                             (-pl.col(col).fill_null(0.0).cast(pl.Float64)).alias("delta"))
        peak = pl.concat([starts, ends]).sort(*keys, "t", "order").with_columns(
            level=pl.col("delta").cum_sum().over(keys)
        ).group_by(keys).agg(pl.col("level").max().alias("value"))
        # the running sum carries float noise (1e-15) that would tilt a flat series: round to the
        # units requests are written in (millicores would do; micro keeps sub-milli requests)
        peak = peak.with_columns(pl.col("value").round(6 if resource == "cpu" else 0))
        parts.append(peak.with_columns(resource=pl.lit(resource), basis=pl.lit("requests")))
    daily = pl.concat(parts).with_columns(pl.col("day").cast(pl.Date)).select(list(DAILY_SCHEMA))
    return _fill_days(daily, days if days is not None else sorted(set(daily["day"].to_list())))


def full_days(sample_times: pl.Series) -> list[date]:
    """The days with at least half as many distinct sample times as the fullest day."""
    if sample_times.is_empty():
        return []
    counts = pl.DataFrame({"ts": sample_times}).unique().group_by(pl.col("ts").dt.date().alias("day")).len()
    fullest = counts["len"].max()
    return sorted(counts.filter(pl.col("len") >= fullest * FULL_DAY_SHARE)["day"].to_list())


USAGE_SUMS_SCHEMA = {"scope_kind": pl.Utf8, "scope_name": pl.Utf8, "ts": pl.Datetime("us"),
                     "cpu_cores": pl.Float64, "memory_bytes": pl.Float64}


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
    per_day = sums.with_columns(day=pl.col("ts").dt.date()).group_by("scope_kind", "scope_name", "day").agg(
        pl.col("cpu_cores").quantile(0.95, interpolation="linear").alias("cpu"),
        pl.col("memory_bytes").quantile(0.95, interpolation="linear").alias("memory"),
    )
    daily = per_day.unpivot(index=["scope_kind", "scope_name", "day"], on=list(RESOURCES),
                            variable_name="resource", value_name="value").with_columns(basis=pl.lit("usage"))
    return _fill_days(daily.select(list(DAILY_SCHEMA)), days)


def load_usage_sums(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime,
                    pools: pl.DataFrame) -> pl.DataFrame:
    """scope_usage_sums computed in the store (queries/forecast_usage_scope_sums.sql)."""
    return store.query(con, "forecast_usage_scope_sums", {
        "start": start, "end": end, "nodes": pools["node"].to_list(), "pools": pools["pool"].to_list(),
    }).select([pl.col(c).cast(t) for c, t in USAGE_SUMS_SCHEMA.items()])


def scope_limits(nodes: pl.DataFrame, pools: pl.DataFrame, quotas: pl.DataFrame, daily: pl.DataFrame) -> pl.DataFrame:
    """The limit each series is projected against (LIMIT_SCHEMA).

    Cluster and pools: the sum of allocatable of their nodes (`nodes` at the window's end).
    Namespaces: the tightest ResourceQuota hard value on requests when there is one, else the
    cluster's allocatable minus the other namespaces' current value on the same basis.
    """
    rows: list[dict[str, Any]] = []
    now = nodes.join(pools, on="node", how="left").with_columns(pl.col("pool").fill_null(NO_POOL))
    current = daily.sort("day").group_by("scope_kind", "scope_name", "resource", "basis").agg(pl.col("value").last())
    ns_current = current.filter(pl.col("scope_kind") == "namespace")
    for resource in RESOURCES:
        column = _ALLOCATABLE_COLUMN[resource]
        cluster_alloc = float(now[column].cast(pl.Float64).sum()) if now.height else 0.0
        for basis in BASES:
            rows.append({"scope_kind": "cluster", "scope_name": "cluster", "resource": resource, "basis": basis,
                         "allocatable": cluster_alloc, "limit_source": f"allocatable of {now.height} nodes"})
            for pool, group in now.group_by("pool", maintain_order=True):
                rows.append({"scope_kind": "pool", "scope_name": pool[0], "resource": resource, "basis": basis,
                             "allocatable": float(group[column].cast(pl.Float64).sum()),
                             "limit_source": f"allocatable of {group.height} nodes"})
            used = ns_current.filter((pl.col("resource") == resource) & (pl.col("basis") == basis))
            total_used = float(used["value"].sum()) if used.height else 0.0
            for namespace, value in zip(used["scope_name"].to_list(), used["value"].to_list()):
                hard = quotas.filter((pl.col("namespace") == namespace)
                                     & pl.col("resource").is_in(list(_QUOTA_RESOURCES[resource])))
                if hard.height:
                    tightest = hard.sort("hard").row(0, named=True)
                    rows.append({"scope_kind": "namespace", "scope_name": namespace, "resource": resource,
                                 "basis": basis, "allocatable": float(tightest["hard"]),
                                 "limit_source": f"quota {tightest['quota']} {tightest['resource']}"})
                else:
                    others = total_used - float(value)
                    rows.append({"scope_kind": "namespace", "scope_name": namespace, "resource": resource,
                                 "basis": basis, "allocatable": cluster_alloc - others,
                                 "limit_source": "share: cluster allocatable minus the other namespaces' current value"})
    return pl.DataFrame(rows, schema=LIMIT_SCHEMA)


# --- loaders --------------------------------------------------------------------------------

@dataclass
class ForecastInputs:
    """What the forecast reads from the store."""

    pod_days: pl.DataFrame
    usage_sums: pl.DataFrame
    pools: pl.DataFrame
    nodes: pl.DataFrame
    quotas: pl.DataFrame
    start: datetime
    end: datetime


def load_forecast_inputs(con: duckdb.DuckDBPyConnection, window: timedelta,
                         pool_label: str = DEFAULT_POOL_LABEL) -> ForecastInputs:
    """Pod requests per day, usage sums per sample time and scope, node pools, and the nodes and
    quotas at the window's end. Without usage samples the window ends at the newest pod
    observation; NoDataError when there are neither samples nor pods."""
    try:
        start, end = store.analysis_window(con, window)
    except NoDataError:
        # a store of specs without usage (an imported trace) still has a requests trend
        row = con.execute("SELECT max(valid_to) FROM pods").fetchone()
        if row is None or row[0] is None:
            raise
        start, end = row[0] - window, row[0]
    # without nodes (a usage-only import) the trends stand but have no limit (`no_limit`)
    nodes = load_current_nodes(con, end)
    pools = node_pools(store.query(con, "forecast_node_labels", {"start": start, "end": end}), pool_label)
    return ForecastInputs(
        pod_days=pod_day_requests(store.query(con, "forecast_pod_days", {"start": start, "end": end})),
        usage_sums=load_usage_sums(con, start, end, pools),
        pools=pools,
        nodes=nodes,
        quotas=store.query(con, "current_resource_quotas", {"at": end, "tolerance": CURRENT_TOLERANCE}),
        start=start, end=end,
    )


def forecast(inputs: ForecastInputs, horizon_days: float = DEFAULT_HORIZON.days, min_days: int = DEFAULT_MIN_DAYS,
             confidence: float = DEFAULT_CONFIDENCE) -> pl.DataFrame:
    """The forecast table from loaded inputs: daily series, limits, trends and projections."""
    cluster_ts = inputs.usage_sums.filter(pl.col("scope_kind") == "cluster")["ts"]
    days = full_days(cluster_ts) if cluster_ts.len() else None
    daily = pl.concat([daily_requests(inputs.pod_days, inputs.pools, days), daily_usage(inputs.usage_sums, days)])
    limits = scope_limits(inputs.nodes, inputs.pools, inputs.quotas, daily)
    out = forecast_series(daily, limits, horizon_days, min_days, confidence)
    kind_order = pl.col("scope_kind").replace_strict({"cluster": 0, "pool": 1, "namespace": 2}, default=3)
    return out.sort(kind_order, "scope_name", "resource", "basis")


def forecast_report(con: duckdb.DuckDBPyConnection, window: timedelta = timedelta(days=14), *,
                    horizon: timedelta = DEFAULT_HORIZON, namespaces: list[str] | None = None,
                    pool_label: str = DEFAULT_POOL_LABEL, min_days: int = DEFAULT_MIN_DAYS,
                    confidence: float = DEFAULT_CONFIDENCE) -> pl.DataFrame:
    """`capplan forecast`: per cluster, node pool and namespace, for cpu and memory on the
    requests and usage bases, the trend and the days until it crosses the limit. With
    `namespaces`, only those namespaces' rows."""
    if min_days < 2:
        raise UsageError("--min-days must be at least 2 (a trend needs two days)")
    if not 0 < confidence < 1:
        raise UsageError("the confidence of the slope interval must be between 0 and 1")
    if not pool_label:
        raise UsageError("--pool-label must name a node label")
    out = forecast(load_forecast_inputs(con, window, pool_label), horizon / timedelta(days=1), min_days, confidence)
    if namespaces:
        out = out.filter((pl.col("scope_kind") == "namespace") & pl.col("scope_name").is_in(namespaces))
    return out


# --- report --------------------------------------------------------------------------------

def _amount(resource: str, value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.2f} cores" if resource == "cpu" else format_bytes(value)


def forecast_note(table: pl.DataFrame) -> str:
    """One line per scope that runs out within the horizon (soonest first), or that it is none."""
    soon = table.filter(pl.col("days_to_exhaustion").is_not_null()).sort("days_to_exhaustion")
    if soon.is_empty():
        short = table.filter(pl.col("outlook") == "too_short").height
        return "nothing runs out within the horizon" + (f" ({short} series too short to project)" if short else "")
    lines = []
    for r in soon.iter_rows(named=True):
        what = f"{r['scope']} {r['resource']} {r['basis']}"
        if r["outlook"] == "exhausted":
            lines.append(f"{what}: already at its limit ({_amount(r['resource'], r['current'])} of "
                         f"{_amount(r['resource'], r['allocatable'])}, {r['limit_source']})")
        else:
            lines.append(f"{what}: runs out in {r['days_to_exhaustion']:.0f} days "
                         f"(interval {r['days_low']:.0f}-{'never' if r['days_high'] is None else format(r['days_high'], '.0f')}), "
                         f"growing {_amount(r['resource'], r['slope_per_day'])}/day toward "
                         f"{_amount(r['resource'], r['allocatable'])} ({r['limit_source']})")
    return "\n".join(lines)


REPORT_COLUMNS = ["scope", "resource", "basis", "unit", "current", "allocatable", "slope_per_day", "days_to_exhaustion",
                  "days_low", "days_high", "outlook", "exhaustion_date"]


def report_section(con: duckdb.DuckDBPyConnection, options: ReportOptions) -> list[Section]:
    """The forecast section: every series that runs out within the horizon, then the growing
    ones, at most `options.top` rows besides the cluster's own."""
    from capplan.report import Section

    table = forecast_report(con, options.window, namespaces=options.namespaces or None)
    growing = table.filter(pl.col("slope_per_day") > 0)
    shown = pl.concat([
        table.filter(pl.col("scope_kind") == "cluster"),
        growing.filter(pl.col("scope_kind") != "cluster").sort(
            pl.col("days_to_exhaustion").fill_null(float("inf")), pl.col("slope_per_day"),
            descending=[False, True]).head(options.top),
    ]).unique(subset=["scope", "resource", "basis"], maintain_order=True)
    return [Section("forecast", "Forecast: days until exhaustion", shown.select(REPORT_COLUMNS), forecast_note(table))]


def table_view(table: pl.DataFrame) -> pl.DataFrame:
    """The forecast for reading on a terminal: amounts with units, days rounded."""
    def amount(resource: str, value: float | None, per_day: bool = False) -> str:
        text = "" if value is None else (f"{value:.2f}" if resource == "cpu" else format_bytes(value))
        return f"{text}/day" if text and per_day else text

    days = lambda c: pl.col(c).round(0).cast(pl.Int64)  # noqa: E731
    return table.select(
        "scope", "resource", "basis",
        pl.struct("resource", "current").map_elements(lambda r: amount(r["resource"], r["current"]),
                                                      return_dtype=pl.Utf8).alias("current"),
        pl.struct("resource", "allocatable").map_elements(lambda r: amount(r["resource"], r["allocatable"]),
                                                          return_dtype=pl.Utf8).alias("allocatable"),
        pl.struct("resource", "slope_per_day").map_elements(
            lambda r: amount(r["resource"], r["slope_per_day"], True), return_dtype=pl.Utf8).alias("slope_per_day"),
        days("days_to_exhaustion"), days("days_low"), days("days_high"), "outlook", "exhaustion_date",
    )


AMOUNT_COLUMNS = ("current", "allocatable", "slope_per_day", "trend_current", "slope_low_per_day",
                  "slope_high_per_day")


def csv_view(table: pl.DataFrame) -> pl.DataFrame:
    """The forecast for CSV: amount columns hold cores on cpu rows and bytes on memory rows, so
    they are written as text, memory as whole bytes (CONTRACT: memory in bytes, integer)."""
    def text(resource: str, value: float | None) -> str | None:
        if value is None or not math.isfinite(value):
            return None
        return str(int(round(value))) if resource == "memory" else repr(float(value))

    return table.with_columns(
        pl.struct("resource", c).map_elements(lambda r, c=c: text(r["resource"], r[c]), return_dtype=pl.Utf8).alias(c)
        for c in AMOUNT_COLUMNS
    )
