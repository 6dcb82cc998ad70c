"""`capplan backtest`: fit strategies on a train window of the stored history and judge their
sizes on the test window that follows (issue 10's definitions, queries/backtest_judge.sql):

- cpu_slack = 1 - sum(cpu used) / sum(cpu request)          (lower is better)
- cpu_short = sum(max(0, used - request)) / sum(used)
- mem_slack = 1 - sum(memory used) / sum(memory limit)
- oom_container_days = share of container-days (24h periods from the test start) in which
  usage exceeded the memory limit at least once (each would have been an OOM kill).
- throttled_hours = share of container-hours whose mean CPU exceeds the request (a proxy:
  throttling is not collected; with a CPU limit at the request, those hours would be throttled).
- mem_request_slack = 1 - sum(memory used) / sum(memory request).
- over_request_days = share of container-days with memory usage above the request at least once
  (first in line for eviction when the node runs short of memory).

Each workload container's recommendation applies to every pod of that workload in the test
window. A container without a recommendation (new in the test, or too little history) keeps its
current spec. An unset CPU request counts as 0; a container whose plan has no memory limit is left
out of mem_slack and never counts as OOM. Two reference rows: `current` (the specs as they were
in the test window) and `hindsight` (sizes taken from the judged window itself: per workload
container, CPU request = the largest per-pod p95, memory limit = the peak).

`backtest` judges one split (train from the oldest sample); `backtest_splits` judges many:
rolling origins every `step` for each train/test length (Tashman 2000, "Out-of-sample tests of
forecasting accuracy": a fixed-length rolling window, so every split has the same history), and
summarises each policy by its mean and its worst split. A window is loaded once per split and
every strategy, risk level and ablation variant is fitted on the same aggregates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import duckdb
import polars as pl

from capplan import store
from capplan.analysis.recommend import load_history, rows_from_history, series_map
from capplan.analysis.strategies import STRATEGIES, get_strategy
from capplan.analysis.strategies.base import History, Needs, StrategyParams
from capplan.analysis.strategies.risk import RISK_LEVELS, Knobs, knobs_for
from capplan.errors import NoDataError, UsageError
from capplan.quantity import format_duration

BACKTEST_COLUMNS = ["policy", "cpu_slack", "cpu_short", "mem_slack", "oom_container_days",
                    "container_days", "containers", "samples", "fit_seconds",
                    "throttled_hours", "mem_request_slack", "over_request_days"]
METRICS = ["cpu_slack", "cpu_short", "mem_slack", "oom_container_days", "throttled_hours",
           "mem_request_slack", "over_request_days", "mem_vs_current"]
SPLIT_COLUMNS = ["split", "train_days", "test_days", "origin", "policy", *METRICS, "container_days"]
TEST_END_SLACK = timedelta(hours=1)
# queries/backtest_judge.sql's fixed-point units per core (or byte): 2^34, in which every REAL core
# value is a whole number (its last bit is worth at least 2^-33 from 0.001 cores up)
JUDGE_UNITS = float(2**34)
POLICY_ORDER = ["current", "simple", "vpa", "max-target", "auto", "hindsight"]
# one load serves every strategy but vpa (whose CPU histogram is a different scan)
STATS_NEEDS = Needs(full_stats=True, memory_peaks=True, daily_cpu=True)


@dataclass(frozen=True)
class Policy:
    """A row of the backtest: a strategy with its parameters, under a display name."""

    name: str
    strategy: str
    params: StrategyParams


@dataclass(frozen=True)
class Split:
    """Fit on [train_start, origin], judge on (origin, test_end]."""

    train: timedelta
    test: timedelta
    train_start: datetime
    origin: datetime
    test_end: datetime

    @property
    def label(self) -> str:
        return f"{format_duration(self.train)}/{format_duration(self.test)} @ {self.origin:%Y-%m-%d %H:%M}"


def policies(strategies: list[str] | str = "all", params: StrategyParams | None = None,
             risks: list[str] | None = None, ablation: bool = False) -> list[Policy]:
    """The policies to judge: each strategy (auto once per risk level in `risks`, named
    auto-<level> when more than one), and with `ablation` auto without each of its parts."""
    params = params or StrategyParams()
    names = list(STRATEGIES) if strategies == "all" else ([strategies] if isinstance(strategies, str) else strategies)
    for name in names:
        get_strategy(name)
    levels = risks or [params.risk]
    for level in levels:
        knobs_for(level)
    out: list[Policy] = []
    for name in names:
        if name != "auto":
            out.append(Policy(name, name, params))
            continue
        for level in levels:
            out.append(Policy("auto" if len(levels) == 1 else f"auto-{level}", "auto", replace(params, risk=level)))
        if ablation:
            base = params.auto_knobs() if len(levels) == 1 else knobs_for(params.risk)
            for label, knobs in ablation_variants(base).items():
                out.append(Policy(f"auto {label}", "auto", replace(params, knobs=knobs)))
    return out


def ablation_variants(base: Knobs) -> dict[str, Knobs]:
    """auto without each of its parts, one at a time, and with the part that was dropped (the
    ablation in docs/recommend.md)."""
    return {
        "+gumbel": replace(base, gumbel_request=True),
        "-step-down": replace(base, step_down_on=False),
        "-oom-bump": replace(base, oom_bump=False),
        "-trend": replace(base, trend=False),
        "-peak-margin": replace(base, peak_margin=0.0),
    }


class _Windows:
    """Loaded Histories and HPA lists per window, so every policy of a split shares one load."""

    def __init__(self, con: duckdb.DuckDBPyConnection, namespaces: list[str] | None):
        self.con, self.namespaces = con, namespaces
        self.cache: dict[tuple, History] = {}
        self.hpas: dict[tuple, pl.DataFrame] = {}

    def history(self, start: datetime, end: datetime, strategy: str, params: StrategyParams,
                light: bool = False) -> History:
        needs = get_strategy(strategy).NEEDS
        if needs.cpu_histogram:
            kind: tuple = ("vpa",)
        elif light:  # hindsight (simple): no daily statistics
            kind, needs = ("light", params.cpu_percentile), Needs(full_stats=True)
        else:
            kind, needs = ("stats", params.cpu_percentile), STATS_NEEDS
        key = (start, end, *kind)
        if key not in self.cache:
            self.cache[key] = load_history(self.con, start, end, needs, params, self.namespaces)
        return self.cache[key]

    def forget_before(self, start: datetime) -> None:
        """Drop the windows that start before `start` (splits run in origin order)."""
        self.cache = {k: v for k, v in self.cache.items() if k[0] >= start}

    def recommend(self, start: datetime, end: datetime, strategy: str, params: StrategyParams,
                  light: bool = False) -> pl.DataFrame:
        history = self.history(start, end, strategy, params, light)
        if (start, end) not in self.hpas:
            self.hpas[(start, end)] = store.query(self.con, "recommend_hpas", {"start": start, "end": end})
        return rows_from_history(history, strategy, params, self.hpas[(start, end)])


def _plan_from_recs(policy: str, recs: pl.DataFrame, test_series: pl.DataFrame) -> pl.DataFrame:
    """Per test series: the recommended CPU request and memory request/limit (current where none)."""
    joined = test_series.join(
        recs.select("namespace", "owner_kind", "owner_name", "container", "cpu_request_recommended",
                    "memory_request_recommended", "memory_limit_recommended", "severity"),
        on=["namespace", "owner_kind", "owner_name", "container"], how="left")
    has = pl.col("severity").is_not_null() & (pl.col("severity") != "unknown")
    return joined.select(
        pl.lit(policy).alias("policy"), pl.col("series_id").cast(pl.Int64),
        pl.when(has).then(pl.col("cpu_request_recommended")).otherwise(pl.col("cpu_request_cores"))
        .cast(pl.Float64).alias("cpu_request_cores"),
        pl.when(has).then(pl.col("memory_request_recommended").cast(pl.Float64))
        .otherwise(pl.col("memory_request_bytes").cast(pl.Float64)).alias("memory_request_bytes"),
        pl.when(has).then(pl.col("memory_limit_recommended").cast(pl.Float64))
        .otherwise(pl.col("memory_limit_bytes").cast(pl.Float64)).alias("memory_limit_bytes"),
    )


def _judge(con: duckdb.DuckDBPyConnection, windows: _Windows, split: Split, chosen: list[Policy],
           base_params: StrategyParams) -> pl.DataFrame:
    """One split: every policy's metrics (BACKTEST_COLUMNS + mem_limit_sum), in POLICY_ORDER."""
    test_series = series_map(con, split.origin, split.test_end, windows.namespaces).with_columns(
        pl.col("memory_request_bytes").cast(pl.Float64), pl.col("memory_limit_bytes").cast(pl.Float64))
    plans = [test_series.select(
        pl.lit("current").alias("policy"), pl.col("series_id").cast(pl.Int64),
        pl.col("cpu_request_cores").cast(pl.Float64), pl.col("memory_request_bytes"), pl.col("memory_limit_bytes"))]
    timings = {"current": 0.0}
    for policy in chosen:
        started = time.monotonic()
        recs = windows.recommend(split.train_start, split.origin, policy.strategy, policy.params)
        timings[policy.name] = time.monotonic() - started
        plans.append(_plan_from_recs(policy.name, recs, test_series))
    started = time.monotonic()
    hindsight_params = replace(base_params, cpu_percentile=95.0, memory_buffer_percent=0.0,
                               min_history=timedelta(0), allow_hpa=True)
    hindsight = windows.recommend(split.origin + timedelta(microseconds=1), split.test_end, "simple",
                                  hindsight_params, light=True)
    timings["hindsight"] = time.monotonic() - started
    plans.append(_plan_from_recs("hindsight", hindsight, test_series))
    con.register("_bt_plan", pl.concat(plans).to_arrow())
    try:
        result = store.query(con, "backtest_judge", {"test_start": split.origin, "test_end": split.test_end,
                                                      "units": JUDGE_UNITS})
    finally:
        con.unregister("_bt_plan")
    if result.is_empty():
        raise NoDataError("no usage samples in the test window")
    order = {p: i for i, p in enumerate(POLICY_ORDER)}
    names = [p.name for p in chosen]

    def rank(policy: str) -> int:
        base = policy.split(" ")[0].split("-")[0] if policy.startswith("auto") else policy
        return order.get(base, 99) * 1000 + (names.index(policy) if policy in names else 0)

    return result.with_columns(
        pl.col("policy").replace_strict(timings, default=None, return_dtype=pl.Float64).alias("fit_seconds"),
        pl.col("policy").map_elements(rank, return_dtype=pl.Int64).alias("_o"),
    ).sort("_o").drop("_o")


def _check_window(oldest: datetime, newest: datetime, train: timedelta, test: timedelta) -> None:
    if oldest + train >= newest:
        raise NoDataError(f"the history spans {format_duration(newest - oldest)}: nothing left to judge "
                          f"after --train {format_duration(train)}")
    if oldest + train + test > newest + TEST_END_SLACK:
        raise UsageError(f"--train {format_duration(train)} + --test {format_duration(test)} is longer than "
                         f"the stored history ({(newest - oldest).total_seconds() / 86400:.1f} days)")


def _split(oldest: datetime, newest: datetime, train: timedelta, test: timedelta, origin: datetime) -> Split:
    test_end = origin + test
    if newest < test_end <= newest + TEST_END_SLACK:
        test_end = newest  # "14d" of 5-minute samples ends one step short of 14 days
    return Split(train, test, origin - train, origin, test_end)


def backtest(con: duckdb.DuckDBPyConnection, strategies: list[str] | str = "all",
             train: timedelta = timedelta(days=21), test: timedelta = timedelta(days=7),
             namespaces: list[str] | None = None, params: StrategyParams | None = None,
             risks: list[str] | None = None, ablation: bool = False) -> pl.DataFrame:
    """Judge each strategy (or "all") fitted on [oldest, oldest + train] on the following `test`.

    Returns one row per policy (current, each strategy, hindsight) with BACKTEST_COLUMNS.
    """
    params = params or StrategyParams()
    chosen = policies(strategies, params, risks, ablation)
    oldest, newest = store.sample_range(con)
    _check_window(oldest, newest, train, test)
    split = _split(oldest, newest, train, test, oldest + train)
    return _judge(con, _Windows(con, namespaces), split, chosen, params).select(BACKTEST_COLUMNS)


def rolling_splits(oldest: datetime, newest: datetime, trains: list[timedelta], tests: list[timedelta],
                   step: timedelta) -> list[Split]:
    """Every (train, test) pair at origins oldest + train, + step, ... while the test fits."""
    if step <= timedelta(0):
        raise UsageError("--step must be positive")
    out = []
    for train in trains:
        for test in tests:
            origin = oldest + train
            while origin + test <= newest + TEST_END_SLACK and origin < newest:
                out.append(_split(oldest, newest, train, test, origin))
                origin += step
    return out


def backtest_splits(con: duckdb.DuckDBPyConnection, strategies: list[str] | str = "all",
                    trains: list[timedelta] | None = None, tests: list[timedelta] | None = None,
                    step: timedelta = timedelta(days=3), namespaces: list[str] | None = None,
                    params: StrategyParams | None = None, risks: list[str] | None = None,
                    ablation: bool = False) -> pl.DataFrame:
    """Judge every policy on rolling splits; one row per split and policy (SPLIT_COLUMNS).

    mem_vs_current = the policy's memory limits summed over the test samples / the current
    specs', over the containers that have a memory limit today (below 1: memory saved)."""
    params = params or StrategyParams()
    trains = trains or [timedelta(days=7), timedelta(days=14), timedelta(days=21)]
    tests = tests or [timedelta(days=7), timedelta(days=14)]
    chosen = policies(strategies, params, risks, ablation)
    oldest, newest = store.sample_range(con)
    splits = rolling_splits(oldest, newest, trains, tests, step)
    if not splits:
        _check_window(oldest, newest, min(trains), min(tests))
        raise UsageError(f"no split fits the {(newest - oldest).total_seconds() / 86400:.1f} days stored")
    frames = []
    windows = _Windows(con, namespaces)  # a train window serves every test length at its origin
    for split in sorted(splits, key=lambda s: (s.origin, s.train, s.test)):
        windows.forget_before(split.train_start - max(trains))
        judged = _judge(con, windows, split, chosen, params)
        current = judged.filter(pl.col("policy") == "current")["mem_limit_sum"].item()
        frames.append(judged.with_columns(
            pl.lit(split.label).alias("split"),
            pl.lit(split.train.total_seconds() / 86400).alias("train_days"),
            pl.lit(split.test.total_seconds() / 86400).alias("test_days"),
            pl.lit(split.origin).alias("origin"),
            # the current row exactly 1 (polars may divide by a literal as a product with its inverse)
            pl.when(pl.col("policy") == "current").then(pl.lit(1.0 if current else None, pl.Float64))
            .otherwise(pl.col("mem_limit_sum") / current if current else pl.lit(None, pl.Float64))
            .alias("mem_vs_current"),
        ).select(SPLIT_COLUMNS))
    order = {s.label: i for i, s in enumerate(splits)}
    return pl.concat(frames).with_columns(pl.col("split").replace_strict(order).alias("_o")).sort(
        "_o", maintain_order=True).drop("_o")


def summarise(per_split: pl.DataFrame) -> pl.DataFrame:
    """Per policy: the mean and the worst split of each metric (worst = highest: every metric
    is better lower), and on how many splits its OOM container-days were at most the current
    specs' while its memory limits summed less."""
    current = per_split.filter(pl.col("policy") == "current").select(
        "split", pl.col("oom_container_days").alias("_oom_cur"))
    marked = per_split.join(current, on="split").with_columns(
        ((pl.col("oom_container_days") <= pl.col("_oom_cur") + 1e-12) & (pl.col("mem_vs_current") < 1 - 1e-9))
        .alias("_beats"))
    order = per_split.select("policy").unique(maintain_order=True).with_row_index("_o")
    return marked.group_by("policy").agg(
        pl.len().alias("splits"),
        *[e for m in METRICS for e in (pl.col(m).mean().alias(f"{m}_mean"), pl.col(m).max().alias(f"{m}_worst"))],
        pl.col("_beats").sum().alias("splits_oom_at_most_current_and_less_memory"),
    ).join(order, on="policy").sort("_o").drop("_o")


def parse_target_oom(text: str) -> float | str:
    """`--target-oom`: a share ("0.005"), a percentage ("0.5%") or "current"."""
    raw = str(text).strip().lower()
    if raw == "current":
        return "current"
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise UsageError(f"--target-oom must be a rate such as 0.005 or 0.5%, or 'current', not {text!r}") from None
    if not 0 <= value < 1:
        raise UsageError(f"--target-oom must be in [0, 1), not {text!r}")
    return value


def choose_level(con: duckdb.DuckDBPyConnection, target: float | str, namespaces: list[str] | None = None,
                 params: StrategyParams | None = None) -> tuple[str, pl.DataFrame, str]:
    """The risk level for `--target-oom`: the least conservative one whose mean OOM
    container-days over rolling 7-day/7-day splits of the stored history (every 3 days) is at
    most `target` ("current": the current specs' mean). None qualifies: the most conservative.
    Returns (level, the summary it was chosen from, a sentence saying why)."""
    params = params or StrategyParams()
    per_split = backtest_splits(con, ["auto"], [timedelta(days=7)], [timedelta(days=7)], timedelta(days=3),
                                namespaces, params, list(RISK_LEVELS))
    summary = summarise(per_split)
    oom = dict(zip(summary["policy"], summary["oom_container_days_mean"], strict=True))
    limit = oom["current"] if target == "current" else float(target)
    what = f"the current specs' {limit:.3%}" if target == "current" else f"{limit:.3%}"
    splits = int(summary["splits"][0])
    for level in reversed(list(RISK_LEVELS)):
        got = oom[f"auto-{level}"]
        if got <= limit + 1e-12:
            return level, summary, (f"--target-oom {what}: risk {level} ({got:.3%} OOM container-days, mean of "
                                    f"{splits} 7d/7d splits of this history)")
    level = next(iter(RISK_LEVELS))
    return level, summary, (f"--target-oom {what}: no level reaches it on {splits} 7d/7d splits of this history "
                            f"(risk {level}: {oom[f'auto-{level}']:.3%}); using risk {level}")
