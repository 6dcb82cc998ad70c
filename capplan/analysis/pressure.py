"""Memory-pressure risk per node: how often the node's summed working set crossed allocatable
minus the hard eviction threshold, and the fitted chance that a day's maximum does."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import numpy as np
import polars as pl

from capplan.analysis.node_series import daily_memory, load_daily_memory
from capplan.analysis.nodes import snapshot_window
from capplan.analysis.pods import load_current_nodes
from capplan.analysis.stats.peaks import gumbel_exceedance
from capplan.reservation import HARD_EVICTION_BYTES

__all__ = ["PRESSURE_SCHEMA", "daily_memory", "memory_pressure", "memory_pressure_report"]

FULL_DAY_SHARE = 0.5  # a day with fewer samples than half the node's fullest day is a partial day


PRESSURE_SCHEMA = {
    "node": pl.Utf8, "memory_allocatable_bytes": pl.Float64, "memory_threshold_bytes": pl.Float64,
    "points": pl.Int64, "breach_points": pl.Int64, "breach_share": pl.Float64, "days": pl.Int64,
    "breach_days": pl.Int64, "daily_max_p50_bytes": pl.Float64, "daily_max_max_bytes": pl.Float64,
    "gumbel_loc_bytes": pl.Float64, "gumbel_scale_bytes": pl.Float64, "breach_day_probability": pl.Float64,
    "daily_max_slope_bytes_per_day": pl.Float64,
}


def _slope_per_day(day_seconds: np.ndarray, values: np.ndarray) -> float | None:
    """Least-squares slope per day of `values` over the days (epoch seconds of their starts)."""
    if values.size < 2:
        return None
    x = (day_seconds / 86400.0).astype(np.float64)
    if float(np.ptp(x)) == 0.0:
        return None
    return float(np.polyfit(x, values, 1)[0])


def memory_pressure(daily: pl.DataFrame, nodes: pl.DataFrame,
                    eviction_bytes: float = HARD_EVICTION_BYTES) -> pl.DataFrame:
    """Memory overcommit risk per node, most at risk first.

    `daily` (daily_memory): node, day, points, memory_max_bytes, breach_points, where a breach
    is a timestamp at which the node's summed container working set exceeded allocatable minus
    the hard eviction threshold (memory.available<100Mi). breach_share is the share of the
    window's timestamps in breach; breach_day_probability the fitted chance that a (full) day's
    maximum exceeds the threshold. Partial days (fewer than half the samples of the node's
    fullest day) are left out of the fit, not out of the share.
    """
    rows = []
    alloc = dict(zip(nodes["node"].to_list(), nodes["memory_allocatable_bytes"].cast(pl.Float64).to_list(), strict=True))
    # each node's days as slices of numpy arrays (a polars group per node cost 0.7 s at the bench's L)
    ordered = daily.sort("node", "day")
    names = ordered["node"].to_list()
    day_seconds = ordered["day"].cast(pl.Datetime("us")).dt.epoch("s").to_numpy()
    points_all = ordered["points"].to_numpy()
    breach_all = ordered["breach_points"].to_numpy()
    maxima_all = ordered["memory_max_bytes"].cast(pl.Float64).to_numpy()
    bounds = [i for i in range(1, len(names)) if names[i] != names[i - 1]]
    for lo, hi in zip([0, *bounds], [*bounds, len(names)], strict=True):
        name = names[lo] if hi > lo else None
        if name not in alloc:
            continue
        threshold = alloc[name] - eviction_bytes
        points = points_all[lo:hi]
        full = points >= FULL_DAY_SHARE * points.max()
        maxima = maxima_all[lo:hi][full]
        p, loc, scale = gumbel_exceedance(maxima, threshold)
        total, breaches = int(points.sum()), int(breach_all[lo:hi].sum())
        rows.append({
            "node": name, "memory_allocatable_bytes": alloc[name], "memory_threshold_bytes": threshold,
            "points": total, "breach_points": breaches, "breach_share": breaches / total if total else None,
            "days": int(full.sum()), "breach_days": int((breach_all[lo:hi][full] > 0).sum()),
            "daily_max_p50_bytes": float(np.median(maxima)) if maxima.size else None,
            "daily_max_max_bytes": float(maxima.max()) if maxima.size else None,
            "gumbel_loc_bytes": loc, "gumbel_scale_bytes": scale, "breach_day_probability": p,
            # the fit treats days alike; a leak or growth shows here (least squares over full days)
            "daily_max_slope_bytes_per_day": _slope_per_day(day_seconds[lo:hi][full], maxima),
        })
    out = pl.DataFrame(rows, schema=PRESSURE_SCHEMA)
    return out.sort(["breach_day_probability", "breach_share", "node"], descending=[True, True, False], nulls_last=True)


def memory_pressure_report(con: duckdb.DuckDBPyConnection, window: timedelta = timedelta(days=14),
                           nodes: list[str] | None = None) -> pl.DataFrame:
    """memory_pressure over the window (empty for a store without usage samples)."""
    start, end = snapshot_window(con, window)
    if start is None:
        return pl.DataFrame(schema=PRESSURE_SCHEMA)
    current = load_current_nodes(con, end)
    out = memory_pressure(load_daily_memory(con, start, end, current), current)
    return out.filter(pl.col("node").is_in(nodes)) if nodes else out
