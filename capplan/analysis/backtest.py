"""`capplan backtest`: fit a strategy on the first `train` of the stored history and judge its
sizes on the following `test` (issue 10's definitions, queries/backtest_judge.sql):

- cpu_slack = 1 - sum(cpu used) / sum(cpu request)          (lower is better)
- cpu_short = sum(max(0, used - request)) / sum(used)
- mem_slack = 1 - sum(memory used) / sum(memory limit)
- oom_container_days = share of container-days (24h periods from the test start) in which
  usage exceeded the memory limit at least once (each would have been an OOM kill).

Each workload container's recommendation applies to every pod of that workload in the test
window. A container without a recommendation (new in the test, or too little history) keeps its
current spec. An unset CPU request counts as 0; a container whose plan has no memory limit is left
out of mem_slack and never counts as OOM. Two reference rows: `current` (the specs as they were
in the test window) and `hindsight` (sizes taken from the judged window itself: per workload
container, CPU request = the largest per-pod p95, memory limit = the peak).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import duckdb
import polars as pl

from capplan import store
from capplan.analysis.recommend import GROUP_KEYS, _series_map, recommend_window
from capplan.analysis.strategies import STRATEGIES, get_strategy
from capplan.analysis.strategies.base import Params
from capplan.errors import NoDataError, UsageError
from capplan.quantity import format_duration

BACKTEST_COLUMNS = ["policy", "cpu_slack", "cpu_short", "mem_slack", "oom_container_days",
                    "container_days", "containers", "samples", "fit_seconds"]
TEST_END_SLACK = timedelta(hours=1)
POLICY_ORDER = ["current", "simple", "vpa", "max-target", "auto", "hindsight"]


def _plan_from_recs(policy: str, recs: pl.DataFrame, test_series: pl.DataFrame) -> pl.DataFrame:
    """Per test series: the recommended CPU request and memory limit (current where none)."""
    joined = test_series.join(
        recs.select(*GROUP_KEYS, "cpu_request_recommended", "memory_limit_recommended", "severity"),
        on=GROUP_KEYS, how="left")
    has = pl.col("severity").is_not_null() & (pl.col("severity") != "unknown")
    return joined.select(
        pl.lit(policy).alias("policy"), pl.col("series_id").cast(pl.Int64),
        pl.when(has).then(pl.col("cpu_request_recommended")).otherwise(pl.col("cpu_request_cores"))
        .cast(pl.Float64).alias("cpu_request_cores"),
        pl.when(has).then(pl.col("memory_limit_recommended").cast(pl.Float64))
        .otherwise(pl.col("memory_limit_bytes").cast(pl.Float64)).alias("memory_limit_bytes"),
    )


def backtest(con: duckdb.DuckDBPyConnection, strategies: list[str] | str = "all",
             train: timedelta = timedelta(days=21), test: timedelta = timedelta(days=7),
             namespaces: list[str] | None = None, params: Params | None = None) -> pl.DataFrame:
    """Judge each strategy (or "all") fitted on [oldest, oldest + train] on the following `test`.

    Returns one row per policy (current, each strategy, hindsight) with BACKTEST_COLUMNS.
    """
    import time

    params = params or Params()
    names = list(STRATEGIES) if strategies == "all" else ([strategies] if isinstance(strategies, str) else strategies)
    for name in names:
        get_strategy(name)
    oldest, newest = store.sample_range(con)
    train_start, train_end = oldest, oldest + train
    test_end = train_end + test
    if train_end >= newest:
        raise NoDataError(f"the history spans {format_duration(newest - oldest)}: nothing left to judge "
                          f"after --train {format_duration(train)}")
    if newest < test_end <= newest + TEST_END_SLACK:
        test_end = newest  # "14d" of 5-minute samples ends one step short of 14 days
    if test_end > newest:
        raise UsageError(f"--train {format_duration(train)} + --test {format_duration(test)} is longer than "
                         f"the stored history ({(newest - oldest).total_seconds() / 86400:.1f} days)")
    test_series = _series_map(con, train_end, test_end, namespaces).with_columns(
        pl.col("memory_request_bytes").cast(pl.Float64), pl.col("memory_limit_bytes").cast(pl.Float64))
    plans = [test_series.select(
        pl.lit("current").alias("policy"), pl.col("series_id").cast(pl.Int64),
        pl.col("cpu_request_cores").cast(pl.Float64), pl.col("memory_limit_bytes"))]
    timings = {"current": 0.0}
    for name in names:
        started = time.monotonic()
        recs = recommend_window(con, name, train_start, train_end, params, namespaces)
        timings[name] = time.monotonic() - started
        plans.append(_plan_from_recs(name, recs, test_series))
    started = time.monotonic()
    hindsight = recommend_window(con, "simple", train_end + timedelta(microseconds=1), test_end,
                                 replace(params, cpu_percentile=95.0, memory_buffer_percent=0.0,
                                         min_history=timedelta(0), allow_hpa=True), namespaces)
    timings["hindsight"] = time.monotonic() - started
    plans.append(_plan_from_recs("hindsight", hindsight, test_series))
    plan = pl.concat(plans)
    con.register("_bt_plan", plan.to_arrow())
    try:
        result = store.query(con, "backtest_judge", {"test_start": train_end, "test_end": test_end})
    finally:
        con.unregister("_bt_plan")
    if result.is_empty():
        raise NoDataError("no usage samples in the test window")
    order = {p: i for i, p in enumerate(POLICY_ORDER)}
    result = result.with_columns(
        pl.col("policy").map_elements(lambda p: timings.get(p), return_dtype=pl.Float64).alias("fit_seconds"),
        pl.col("policy").map_elements(lambda p: order.get(p, 99), return_dtype=pl.Int64).alias("_o"),
    ).sort("_o").drop("_o")
    return result.select(BACKTEST_COLUMNS)
