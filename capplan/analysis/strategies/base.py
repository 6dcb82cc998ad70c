"""What every right-sizing strategy receives and returns.

A strategy is a pure function `(History, StrategyParams) -> frame` with one row per aggregate
(`group_id`: a workload's container name) and the columns of RESULT_SCHEMA; None means unset
(no limit, say). The loader in capplan.analysis.recommend fills History from the store with
aggregates computed in DuckDB, so a strategy never sees raw samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import polars as pl

from capplan.analysis.strategies.risk import DEFAULT_RISK, Knobs, knobs_for

RESULT_SCHEMA = {
    "group_id": pl.Int64,
    "cpu_request_cores": pl.Float64,
    "cpu_limit_cores": pl.Float64,
    "memory_request_bytes": pl.Float64,
    "memory_limit_bytes": pl.Float64,
    "reason": pl.Utf8,
}

MIB = 1024.0 * 1024.0
GIB = 1024.0 * MIB


@dataclass
class StrategyParams:
    """Options of the strategies (CLI flags of `capplan recommend`)."""

    # simple: KRR's defaults (robusta_krr/strategies/simple.py: cpu_percentile 95,
    # memory_buffer_percentage 15)
    cpu_percentile: float = 95.0          # simple: per-pod CPU percentile
    memory_buffer_percent: float = 15.0   # simple: peak working set x (1 + buffer)
    # max-target: max usage / target; Kubecost's request sizing takes a target utilisation
    # parameter, 0.7 is capplan's choice of it (30% headroom over the peak)
    target_utilization: float = 0.7
    # less than one daily peak (VPA's memory interval is 24h) says nothing about a day's cycle
    min_history: timedelta = timedelta(days=1)
    allow_hpa: bool = False
    # auto: how far ahead a size must hold (a trend is projected this far); one week, the
    # test length of the backtest's splits
    horizon: timedelta = timedelta(days=7)
    risk: str = DEFAULT_RISK                 # auto: low | medium | high (strategies/risk.py)
    knobs: Knobs | None = None               # auto: explicit knobs instead of `risk` (the ablation)

    def auto_knobs(self) -> Knobs:
        """The knobs `auto` sizes with: explicit ones, else the risk level's."""
        return self.knobs if self.knobs is not None else knobs_for(self.risk)


@dataclass
class Needs:
    """Which aggregates a strategy reads (the loader computes only those)."""

    cpu_percentile: bool = False  # the CPU percentile StrategyParams.cpu_percentile per series
    full_stats: bool = False      # several CPU percentiles per series
    cpu_histogram: bool = False   # VPA decaying CPU histogram
    memory_peaks: bool = False    # one memory peak per series and 24h interval
    daily_cpu: bool = False       # with memory_peaks: each interval's mean CPU too


@dataclass
class History:
    """Aggregated usage of one window.

    groups: group_id, namespace, owner_kind, owner_name, container, containers_per_pod,
            samples, first_ts, last_ts, cpu/memory request/limit (current).
    series: series_id, group_id, pod, samples, first_ts, last_ts, per-series statistics.
    cpu_histogram: group_id, bucket, weight.  memory_peaks: series_id, group_id,
    interval_index, interval_end, peak_bytes (, cpu_mean_cores).  ooms: series_id, group_id, ts,
    memory_request_bytes, memory_limit_bytes.
    """

    start: datetime
    end: datetime
    groups: pl.DataFrame
    series: pl.DataFrame
    cpu_histogram: pl.DataFrame | None = None
    memory_peaks: pl.DataFrame | None = None
    # a strategy's per-series results that do not depend on the risk level (the backtest fits
    # several levels on one History)
    memo: dict = field(default_factory=dict, repr=False, compare=False)
    ooms: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(
        schema={"series_id": pl.Int64, "group_id": pl.Int64, "ts": pl.Datetime("us"),
                "memory_request_bytes": pl.Float64, "memory_limit_bytes": pl.Float64}))


def needed(frame: pl.DataFrame | None, name: str) -> pl.DataFrame:
    """A History frame a strategy's NEEDS asked for (the loader fills every one asked for)."""
    if frame is None:
        raise ValueError(f"History.{name} was not loaded: the strategy's NEEDS must ask for it")
    return frame


def result_frame(rows: list[dict]) -> pl.DataFrame:
    """A strategy result from row dicts, with NaN turned into None."""
    clean = []
    for row in rows:
        out = dict(row)
        for key, value in out.items():
            if isinstance(value, float) and not math.isfinite(value):
                out[key] = None
        clean.append(out)
    extra = {}
    if clean:
        for key in clean[0]:
            if key not in RESULT_SCHEMA:
                extra[key] = pl.Float64
    return pl.DataFrame(clean, schema={**RESULT_SCHEMA, **extra})


def ceil_millicores(cores: float | None) -> float | None:
    """Round CPU up to whole millicores (VPA's round-cpu-millicores default of 1)."""
    if cores is None or not math.isfinite(cores):
        return None
    return math.ceil(round(cores * 1000.0, 3)) / 1000.0  # float32 storage noise is not a millicore


def ceil_bytes(value: float | None) -> float | None:
    """Round memory up to whole bytes."""
    if value is None or not math.isfinite(value):
        return None
    return float(math.ceil(value))


def fmt_cpu(cores: float | None) -> str:
    """Cores as millicores text for reasons."""
    return "unset" if cores is None else f"{cores * 1000:.0f}m"


def fmt_mem(value: float | None) -> str:
    """Bytes as Mi text for reasons."""
    return "unset" if value is None else f"{value / MIB:.0f}Mi"
