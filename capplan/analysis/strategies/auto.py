"""`auto` (the default): capplan's own sizing, built from what the other strategies ignore.

Per pod (container series), then the largest over the workload's pods; pods too short-lived
for daily statistics (Jobs, churn) are pooled per workload and day.

Memory request: the daily peak expected once per horizon (`--horizon`, 7d), from a Gumbel
(extreme-value type I) fit by moments to the daily peaks (one per 24h, as VPA keeps them) after
removing a robust trend: the Theil-Sen slope, used only when TREND_AGREEMENT of all pairwise
slopes are positive and it adds more than MIN_TREND_EFFECT of the peak over the horizon. A
trend is projected to the horizon's end, so a leak or growth is not under-sized.
Memory limit: at least the observed (or trend-projected) peak + MEMORY_PEAK_MARGIN; and, since
memory cannot be throttled, only killed, a limit comes down in steps: never below
min(current limit, STEP_DOWN_FACTOR x peak). OOM kills in the window: at least VPA's bump
(max(+100Mi, x1.2)) over the larger of the limit it died at and the peak.
Fewer than MIN_PEAKS_FOR_FIT daily peaks: peak + SHORT_HISTORY_MARGIN.
CPU request: the window's p99 (usage above the request 1% of the time), scaled up by a clearly
rising trend of the daily mean CPU projected half a horizon ahead. Usage pinned at the CPU limit
(its p95 within THROTTLED_SHARE of it: throttled, as throttling itself is not collected) asks
for at least the limit. No CPU limit: a limit only throttles.
Every row's `reason` names what set each size.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from capplan.analysis.strategies import vpa
from capplan.analysis.strategies.base import (
    History, Needs, Params, ceil_bytes, ceil_millicores, fmt_cpu, fmt_mem, result_frame,
)

NEEDS = Needs(full_stats=True, memory_peaks=True, daily_cpu=True)

MEMORY_PEAK_MARGIN = 0.10     # the limit stays this far above the observed (or projected) peak
STEP_DOWN_FACTOR = 2.0        # a limit shrinks at most to this multiple of the peak in one step
SHORT_HISTORY_MARGIN = 0.30
MIN_PEAKS_FOR_FIT = 4
MIN_TREND_EFFECT = 0.02       # a trend must add at least 2% of the peak over the horizon
THROTTLED_SHARE = 0.95        # p95 this close to the CPU limit: usage is capped by throttling
TREND_AGREEMENT = 0.7         # share of pairwise slopes that must be positive to call it a trend
EULER_GAMMA = 0.5772156649015329


def gumbel_quantile(values: np.ndarray, q: float) -> float:
    """The q quantile of a Gumbel distribution fitted by moments:
    beta = s * sqrt(6) / pi, mu = mean - gamma * beta, Q = mu - beta * ln(-ln q)."""
    values = np.asarray(values, dtype=float)
    beta = values.std(ddof=1) * math.sqrt(6.0) / math.pi if values.size > 1 else 0.0
    mu = values.mean() - EULER_GAMMA * beta
    return mu - beta * math.log(-math.log(q))


def theil_sen(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Median pairwise slope and the share of pairwise slopes that are positive."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    i, j = np.triu_indices(x.size, k=1)
    dx = x[j] - x[i]
    keep = dx != 0
    if not keep.any():
        return 0.0, 0.0
    slopes = (y[j] - y[i])[keep] / dx[keep]
    return float(np.median(slopes)), float((slopes > 0).mean())


def memory_size(peaks: np.ndarray, index: np.ndarray, horizon_days: float) -> tuple[float, float, str]:
    """Memory request and expected need for one series from its daily peaks (interval indexes
    `index`), and why: (request, need, reason). `need` is what the limit must at least hold."""
    peak = float(peaks.max())
    if peaks.size < MIN_PEAKS_FOR_FIT:
        need = peak * (1 + SHORT_HISTORY_MARGIN)
        return need, need, f"{peaks.size} daily peak(s) only: peak +{SHORT_HISTORY_MARGIN:.0%}"
    slope, agreement = theil_sen(index, peaks)
    # a trend counts when the pairs agree and it moves the size by more than MIN_TREND_EFFECT
    trending = (slope > 0 and agreement >= TREND_AGREEMENT
                and slope * horizon_days > MIN_TREND_EFFECT * peak)
    if not trending:
        slope = 0.0
    residual = peaks - slope * index
    ahead = index.max() + horizon_days
    # request: the 1-in-horizon-days daily peak of the (detrended) Gumbel fit, at the horizon's end
    typical = gumbel_quantile(residual, 1 - 1 / max(horizon_days, 1.0)) + slope * ahead
    need = max(peak, float(np.max(residual)) + slope * ahead) * (1 + MEMORY_PEAK_MARGIN)
    request = min(max(typical, 0.0), need)
    if trending:
        why = (f"daily peaks rising {slope / 2**20:.0f}Mi/day (Theil-Sen, {agreement:.0%} of pairs agree) "
               f"projected {horizon_days:g}d ahead")
    else:
        why = (f"1-in-{horizon_days:g}-days daily peak of a Gumbel fit to {peaks.size} daily peaks; "
               f"limit >= peak +{MEMORY_PEAK_MARGIN:.0%}")
    return request, need, why


def cpu_size(p99: float, daily_mean: np.ndarray, index: np.ndarray, horizon_days: float) -> tuple[float, str]:
    """CPU request for one series, and why: the window's p99, scaled by a clearly rising trend
    of the daily mean CPU (Theil-Sen) projected half a horizon ahead."""
    level, why = p99, "p99"
    if daily_mean.size >= MIN_PEAKS_FOR_FIT:
        slope, agreement = theil_sen(index, daily_mean)
        if slope > 0 and agreement >= TREND_AGREEMENT:
            now = float(np.median(daily_mean - slope * index)) + slope * index.max()
            ahead = now + slope * horizon_days / 2
            if now > 0 and ahead / now > 1 + MIN_TREND_EFFECT:
                level *= ahead / now
                why = f"p99 x{ahead / now:.2f} (daily mean CPU rising, {agreement:.0%} of pairs agree)"
    return level, why


def _pooled(short: pl.DataFrame, start) -> pl.DataFrame:
    """Daily peaks of short-lived pods (Jobs, churn) pooled per workload and day of the window."""
    return short.with_columns(
        ((pl.col("interval_end") - pl.lit(start)).dt.total_seconds() // 86400).cast(pl.Int64).alias("day")
    ).group_by("group_id", "day").agg(pl.col("peak_bytes").max(), pl.col("cpu_mean_cores").max()).sort("group_id", "day")


def recommend(history: History, params: Params) -> pl.DataFrame:
    """One row per group: capplan's sizes, with the driver of each in `reason`."""
    horizon_days = params.horizon.total_seconds() / 86400.0
    daily = history.memory_peaks.sort("series_id", "interval_index")
    counts = daily.group_by("series_id").len()
    short_ids = set(counts.filter(pl.col("len") < MIN_PEAKS_FOR_FIT)["series_id"].to_list())
    by_series = {k[0]: g for k, g in daily.partition_by("series_id", as_dict=True).items()}
    pooled = _pooled(daily.filter(pl.col("series_id").is_in(list(short_ids))), history.start)
    by_group_pooled = {k[0]: g for k, g in pooled.partition_by("group_id", as_dict=True).items()}
    per_series = []
    for s in history.series.iter_rows(named=True):
        d = by_series.get(s["series_id"])
        if d is None:
            continue
        cpu_level = s["cpu_p99_cores"] or 0.0
        if s["cpu_limit_cores"] and (s["cpu_p95_cores"] or 0.0) >= THROTTLED_SHARE * s["cpu_limit_cores"]:
            # throttling is not collected; a p95 at the limit means the limit capped the usage
            cpu, cpu_why = max(cpu_level, s["cpu_limit_cores"]), (
                f"usage pinned at its {fmt_cpu(s['cpu_limit_cores'])} limit (throttled): at least the limit")
        elif s["series_id"] in short_ids:
            cpu, cpu_why = cpu_level, "p99"
        else:
            index = d["interval_index"].to_numpy().astype(float)
            cpu, cpu_why = cpu_size(cpu_level, d["cpu_mean_cores"].to_numpy().astype(float), index, horizon_days)
        if s["series_id"] in short_ids:
            g = by_group_pooled[s["group_id"]]
            peaks, index = g["peak_bytes"].to_numpy().astype(float), g["day"].to_numpy().astype(float)
            pooled_note = " (short-lived pods pooled per day)"
        else:
            peaks, index = d["peak_bytes"].to_numpy().astype(float), d["interval_index"].to_numpy().astype(float)
            pooled_note = ""
        request, need, mem_why = memory_size(peaks, index, horizon_days)
        per_series.append({"group_id": s["group_id"], "cpu": cpu, "cpu_why": cpu_why, "mem_request": request,
                           "mem_need": need, "mem_why": mem_why + pooled_note, "mem_peak": float(peaks.max())})
    frame = pl.DataFrame(per_series, schema={"group_id": pl.Int64, "cpu": pl.Float64, "cpu_why": pl.Utf8,
                                             "mem_request": pl.Float64, "mem_need": pl.Float64, "mem_why": pl.Utf8,
                                             "mem_peak": pl.Float64})
    best = frame.sort("cpu").group_by("group_id").agg(pl.col("cpu").last(), pl.col("cpu_why").last()).join(
        frame.sort("mem_need").group_by("group_id").agg(
            pl.col("mem_request").max(), pl.col("mem_need").last(), pl.col("mem_why").last(), pl.col("mem_peak").max()),
        on="group_id")
    ooms = history.ooms.group_by("group_id").agg(pl.len().alias("ooms"),
                                                 pl.col("memory_limit_bytes").max().alias("killed_at"))
    best = best.join(ooms, on="group_id", how="left").join(
        history.groups.select("group_id", pl.col("memory_limit_bytes").alias("current_limit")), on="group_id", how="left")
    rows = []
    for r in best.iter_rows(named=True):
        need, request, mem_why = r["mem_need"], r["mem_request"], r["mem_why"]
        if r["ooms"]:
            bumped = vpa.oom_peak(r["killed_at"], r["mem_peak"])
            if bumped > need:
                need = request = bumped
                mem_why = (f"{r['ooms']} OOM kill(s): max(+100Mi, x1.2) over the "
                           f"{fmt_mem(max(r['killed_at'] or 0, r['mem_peak']))} it died at")
            else:
                mem_why += f"; {r['ooms']} OOM kill(s) in the window"
        # memory cannot be throttled, only killed: a limit comes down in steps
        guard = min(r["current_limit"] if r["current_limit"] is not None else math.inf, STEP_DOWN_FACTOR * r["mem_peak"])
        limit = need
        limit_why = ""
        if guard > limit:
            limit = guard
            limit_why = (f"; limit {fmt_mem(guard)}: a limit shrinks at most to {STEP_DOWN_FACTOR:g}x the peak "
                         f"{fmt_mem(r['mem_peak'])} per step" if r["current_limit"] is None or guard < r["current_limit"]
                         else f"; limit kept at the current {fmt_mem(guard)} (within {STEP_DOWN_FACTOR:g}x the peak)")
        cpu = ceil_millicores(max(r["cpu"], 0.001))
        request = ceil_bytes(max(request, 1.0))
        limit = ceil_bytes(max(limit, request))
        rows.append({"group_id": r["group_id"], "cpu_request_cores": cpu, "cpu_limit_cores": None,
                     "memory_request_bytes": request, "memory_limit_bytes": limit,
                     "reason": (f"auto: cpu {fmt_cpu(cpu)} from {r['cpu_why']}, no cpu limit; memory {fmt_mem(request)} "
                                f"from {mem_why}{limit_why}")})
    return result_frame(rows)
