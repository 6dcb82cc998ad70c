"""The forecast end to end: inputs from the store, daily series, limits, trends and projections."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb
import polars as pl

from capplan import store
from capplan.analysis.forecast.limits import scope_limits
from capplan.analysis.forecast.model import (
    DEFAULT_HORIZON,
    DEFAULT_MIN_DAYS,
    DEFAULT_POOL_LABEL,
)
from capplan.analysis.forecast.projection import forecast_series
from capplan.analysis.forecast.series import (
    daily_requests_from_peaks,
    daily_usage_from_quantiles,
    load_request_peaks,
    load_usage_daily,
    node_pools,
    usage_full_days,
)
from capplan.analysis.pods import CURRENT_TOLERANCE, load_current_nodes
from capplan.analysis.stats.trend import DEFAULT_CONFIDENCE
from capplan.errors import NoDataError, UsageError

# DuckDB's memory limit while the forecast loads its inputs (store.bounded_memory): what it reads
# (a day of pods, the stored figures, the node sums per pool) needs little, and under the default
# 128 MiB its buffer pool kept ~90 MiB of node sums at the bench's L. 32 MiB: L peak RSS 452 -> 390
# MiB at the same CPU and answers, M unchanged (308-316 MiB; bench/RESULTS.md, issue 14, RP).
FORECAST_MEMORY_LIMIT_BYTES = 32 * 2**20


@dataclass
class ForecastInputs:
    """What the forecast reads from the store."""

    request_peaks: pl.DataFrame  # per scope and day that had pods: the peak of concurrent requests (DAILY_SCHEMA)
    usage_daily: pl.DataFrame  # per scope and day: sample times, p95 of the summed usage (USAGE_DAILY_SCHEMA)
    pools: pl.DataFrame
    nodes: pl.DataFrame
    quotas: pl.DataFrame
    start: datetime
    end: datetime


def load_forecast_inputs(con: duckdb.DuckDBPyConnection, window: timedelta,
                         pool_label: str = DEFAULT_POOL_LABEL) -> ForecastInputs:
    """The daily peak of each scope's requests, the daily p95 of each scope's summed usage, node pools, and the nodes
    and quotas at the window's end. Without usage samples the window ends at the newest pod
    observation; NoDataError when there are neither samples nor pods."""
    try:
        start, end = store.analysis_window(con, window)
    except NoDataError:
        # a store of specs without usage (an imported trace) still has a requests trend
        row = con.execute("SELECT max(valid_to) FROM pods").fetchone()
        if row is None or row[0] is None:
            raise
        start, end = row[0] - window, row[0]

    def load() -> ForecastInputs:
        # without nodes (a usage-only import) the trends stand but have no limit (`no_limit`)
        nodes = load_current_nodes(con, end)
        pools = node_pools(store.query(con, "forecast_node_labels", {"start": start, "end": end}), pool_label)
        return ForecastInputs(
            request_peaks=load_request_peaks(con, start, end, pools),
            usage_daily=load_usage_daily(con, start, end, pools),
            pools=pools,
            nodes=nodes,
            quotas=store.query(con, "current_resource_quotas", {"at": end, "tolerance": CURRENT_TOLERANCE}),
            start=start, end=end,
        )

    # a slice at a time: DuckDB needs little memory, and keeps no more of the blocks already read
    return store.bounded_memory(con, load, FORECAST_MEMORY_LIMIT_BYTES)


def daily_series(inputs: ForecastInputs) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The daily series the forecast fits (requests and usage per scope, full days only) and
    each series' limit; the HTML report draws the same series."""
    days = usage_full_days(inputs.usage_daily) or None
    daily = pl.concat([daily_requests_from_peaks(inputs.request_peaks, days),
                       daily_usage_from_quantiles(inputs.usage_daily, days)])
    return daily, scope_limits(inputs.nodes, inputs.pools, inputs.quotas, daily)


def forecast_with_daily(inputs: ForecastInputs, horizon_days: float = DEFAULT_HORIZON.days,
                        min_days: int = DEFAULT_MIN_DAYS,
                        confidence: float = DEFAULT_CONFIDENCE) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The daily series the forecast fits, and the forecast table in forecast_series' order (the
    report's charts draw both: computed once)."""
    daily, limits = daily_series(inputs)
    return daily, forecast_series(daily, limits, horizon_days, min_days, confidence)


def in_report_order(table: pl.DataFrame) -> pl.DataFrame:
    """The forecast table as `capplan forecast` lists it: cluster, pools, namespaces."""
    kind_order = pl.col("scope_kind").replace_strict({"cluster": 0, "pool": 1, "namespace": 2}, default=3)
    return table.sort(kind_order, "scope_name", "resource", "basis")


def forecast(inputs: ForecastInputs, horizon_days: float = DEFAULT_HORIZON.days, min_days: int = DEFAULT_MIN_DAYS,
             confidence: float = DEFAULT_CONFIDENCE) -> pl.DataFrame:
    """The forecast table from loaded inputs: daily series, limits, trends and projections."""
    return in_report_order(forecast_with_daily(inputs, horizon_days, min_days, confidence)[1])


def only_namespaces(table: pl.DataFrame, namespaces: list[str] | None) -> pl.DataFrame:
    """`--namespace`: only those namespaces' rows (all rows without)."""
    if namespaces:
        return table.filter((pl.col("scope_kind") == "namespace") & pl.col("scope_name").is_in(namespaces))
    return table


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
    return only_namespaces(out, namespaces)
