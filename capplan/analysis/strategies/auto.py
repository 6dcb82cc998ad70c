"""`auto` (the default): capplan's own sizing, built from what the other strategies ignore.

Per pod (container series), then the largest over the workload's pods; pods too short-lived
for daily statistics (Jobs, churn) are pooled per workload and day. The risk level
(`--risk`, strategies/risk.py) sets the CPU percentile and the memory step-down; what each
part contributes is measured by `capplan backtest --splits --ablation` (docs/recommend.md).

Memory limit, the size that kills: max(need, min(current limit, step_down x peak)).
- need = the window's peak x (1 + peak_margin), or, when the daily peaks clearly rise (Theil-Sen
  slope, TREND_AGREEMENT of pairwise slopes positive, adding more than MIN_TREND_EFFECT of the
  peak over the horizon), the trend projected to the horizon's end x (1 + peak_margin).
- After an OOM kill in the window, or usage above the current limit (what the backtest counts
  as an OOM), need is at least VPA's OOM bump: max(+100Mi, x1.2) over the larger of the limit
  it died at and the peak (vpa.oom_peak; model/container.go RecordOOM).
- Memory cannot be throttled, only killed, and a month's history does not show the rare jumps
  a workload makes (docs/recommend.md: on the Bitbrains month most OOMs of history-based sizes
  are VMs jumping to 2-36x their past peak), so a limit comes down in steps: never below
  min(current limit, step_down x peak).
- Fewer than MIN_PEAKS_FOR_FIT daily peaks: need = peak x (1 + peak_margin), no fit.
Memory request = need. (A request from a Gumbel fit, the daily peak expected once per horizon,
was measured and dropped: `gumbel_request`, strategies/risk.py.)
CPU request: the window's per-pod percentile `cpu_quantile` (p99 / p95 / p90 by risk level),
scaled up by a clearly rising trend of the daily mean CPU projected half a horizon ahead. Usage
pinned at the CPU limit (its p95 within THROTTLED_SHARE of it: throttled, as throttling itself
is not collected) asks for at least the limit. No CPU limit: a limit only throttles.
Every row's `reason` names what set each size.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from capplan.analysis.stats.peaks import gumbel_quantile
from capplan.analysis.stats.trend import theil_sen, theil_sen_rows
from capplan.analysis.strategies import vpa
from capplan.analysis.strategies.base import (
    History,
    Needs,
    StrategyParams,
    ceil_bytes,
    ceil_millicores,
    fmt_cpu,
    fmt_mem,
    needed,
    result_frame,
)
from capplan.analysis.strategies.risk import Knobs, knobs_for

NEEDS = Needs(full_stats=True, memory_peaks=True, daily_cpu=True)

# 4 daily peaks: the fewest from which a slope with pairwise agreement (6 pairs) means anything
# (and a two-parameter fit, for the optional Gumbel request); a pod with fewer is pooled with
# its workload's other short-lived pods per day, and with fewer still gets no trend.
MIN_PEAKS_FOR_FIT = 4
# A trend must add at least 2% of the peak over the horizon: below that it is within the
# day-to-day noise of a flat series and not worth a separate reason.
MIN_TREND_EFFECT = 0.02
# Usage capped by a CPU limit shows as a p95 at the limit; 95% leaves room for the CFS
# accounting granularity (a 100ms period rarely fills to the last microsecond).
THROTTLED_SHARE = 0.95
# A trend counts when 70% of the pairwise slopes are positive: Theil-Sen's median slope alone
# is positive for half of all flat noisy series; 70% of pairs (Kendall's tau >= 0.4) rejects
# most of them: for pure noise, 12% of 7-day, 2.5% of 14-day and 0.5% of 21-day series pass
# (simulated, 20,000 normal series each); MIN_TREND_EFFECT then drops the small ones.
TREND_AGREEMENT = 0.7


def memory_size(peaks: np.ndarray, index: np.ndarray, horizon_days: float,
                knobs: Knobs | None = None, fit: tuple[float, float] | None = None) -> tuple[float, float, str]:
    """Memory request and expected need for one series from its daily peaks (interval indexes
    `index`), and why: (request, need, reason). `need` is what the limit must at least hold.
    `fit`: theil_sen(index, peaks) when already computed (theil_sen_rows)."""
    knobs = knobs or knobs_for("low")
    peak = float(peaks.max())
    if peaks.size < MIN_PEAKS_FOR_FIT:
        need = peak * (1 + knobs.peak_margin)
        return need, need, f"{peaks.size} daily peak(s) only: peak +{knobs.peak_margin:.0%}"
    slope, agreement = (fit or theil_sen(index, peaks)) if knobs.trend else (0.0, 0.0)
    # a trend counts when the pairs agree and it moves the size by more than MIN_TREND_EFFECT
    trending = (slope > 0 and agreement >= TREND_AGREEMENT
                and slope * horizon_days > MIN_TREND_EFFECT * peak)
    if not trending:
        slope = 0.0
    residual = peaks - slope * index
    ahead = index.max() + horizon_days
    need = max(peak, float(np.max(residual)) + slope * ahead) * (1 + knobs.peak_margin)
    if knobs.gumbel_request:
        # request: the 1-in-horizon-days daily peak of the (detrended) Gumbel fit, at the horizon's end
        typical = gumbel_quantile(residual, 1 - 1 / max(horizon_days, 1.0)) + slope * ahead
        request = min(max(typical, 0.0), need)
    else:
        request = need
    if trending:
        why = (f"daily peaks rising {slope / 2**20:.0f}Mi/day (Theil-Sen, {agreement:.0%} of pairs agree) "
               f"projected {horizon_days:g}d ahead")
    elif knobs.gumbel_request:
        why = (f"1-in-{horizon_days:g}-days daily peak of a Gumbel fit to {peaks.size} daily peaks; "
               f"limit >= peak +{knobs.peak_margin:.0%}")
    else:
        why = f"peak of {peaks.size} daily peaks +{knobs.peak_margin:.0%}"
    return request, need, why


def cpu_size(level: float, daily_mean: np.ndarray, index: np.ndarray, horizon_days: float,
             name: str = "p99", trend: bool = True, fit: tuple[float, float] | None = None,
             residual_median: float | None = None) -> tuple[float, str]:
    """CPU request for one series, and why: the window's percentile `level` (called `name`),
    scaled by a clearly rising trend of the daily mean CPU (Theil-Sen) projected half a horizon
    ahead. `fit`: theil_sen(index, daily_mean) when already computed (theil_sen_rows), and
    `residual_median` the median of daily_mean - slope x index for that fit (_fits)."""
    why = name
    if trend and daily_mean.size >= MIN_PEAKS_FOR_FIT:
        slope, agreement = fit or theil_sen(index, daily_mean)
        if slope > 0 and agreement >= TREND_AGREEMENT:
            if residual_median is None:
                residual_median = float(np.median(daily_mean - slope * index))
            now = residual_median + slope * index.max()
            ahead = now + slope * horizon_days / 2
            if now > 0 and ahead / now > 1 + MIN_TREND_EFFECT:
                level *= ahead / now
                why = f"{name} x{ahead / now:.2f} (daily mean CPU rising, {agreement:.0%} of pairs agree)"
    return level, why


def _pooled(short: pl.DataFrame, start) -> pl.DataFrame:
    """Daily peaks of short-lived pods (Jobs, churn) pooled per workload and day of the window."""
    return short.with_columns(
        ((pl.col("interval_end") - pl.lit(start)).dt.total_seconds() // 86400).cast(pl.Int64).alias("day")
    ).group_by("group_id", "day").agg(pl.col("peak_bytes").max(), pl.col("cpu_mean_cores").max()).sort("group_id", "day")


def _quantile_column(q: float) -> tuple[str, str]:
    """The History.series column holding the per-series CPU percentile q, and its name."""
    columns = {0.99: "cpu_p99_cores", 0.95: "cpu_p95_cores", 0.90: "cpu_p90_cores"}
    if q not in columns:
        raise ValueError(f"auto sizes CPU at p90, p95 or p99, not q={q}")
    return columns[q], f"p{q * 100:g}"


def _fits(offsets: np.ndarray, lengths: np.ndarray, index: np.ndarray, values: np.ndarray,
          residuals: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """theil_sen(index, values) of every series whose rows are values[offsets[k]:offsets[k] + lengths[k]]
    and that has at least MIN_PEAKS_FOR_FIT of them (NaN for the others), series of one length at a
    time (theil_sen_rows), and with `residuals` the median of each fitted series' residuals values -
    slope x index (cpu_size's level now): a median per row of the group gives the same numbers as one
    np.median per series, which took 0.22 s of recommend auto at the bench's L (auto's whole strategy
    0.69 -> 0.45-0.51 s)."""
    slopes = np.full(offsets.size, np.nan)
    agreement = np.full(offsets.size, np.nan)
    residual_medians = np.full(offsets.size, np.nan)
    for length in np.unique(lengths[lengths >= MIN_PEAKS_FOR_FIT]):
        which = np.flatnonzero(lengths == length)
        rows = offsets[which][:, None] + np.arange(length)[None, :]
        slopes[which], agreement[which] = theil_sen_rows(index[rows], values[rows])
        if residuals:
            residual_medians[which] = np.median(values[rows] - slopes[which][:, None] * index[rows], axis=1)
    return slopes, agreement, residual_medians


def _per_series(history: History, knobs: Knobs, horizon_days: float) -> list[dict]:
    """Per series: the CPU trend factor and the memory request/need, which do not depend on the
    risk level (only the CPU percentile and the step-down do); memoised on the History. The
    trends of all series are fitted at once (_fits); the sizes then per series, from slices of
    the daily statistics' columns."""
    key = ("auto", knobs.trend, knobs.peak_margin, knobs.gumbel_request, horizon_days)
    if key in history.memo:
        return history.memo[key]
    daily = needed(history.memory_peaks, "memory_peaks").sort("series_id", "interval_index")
    ids = daily["series_id"].to_numpy()
    starts = np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1]))) if ids.size else np.zeros(0, dtype=np.int64)
    lengths = np.diff(np.concatenate((starts, [ids.size])))
    index_all = daily["interval_index"].to_numpy().astype(float)
    peaks_all = daily["peak_bytes"].to_numpy().astype(float)
    cpu_all = daily["cpu_mean_cores"].to_numpy().astype(float)
    where = {int(ids[start]): k for k, start in enumerate(starts)}
    cpu_fit = mem_fit = (np.full(starts.size, np.nan), np.full(starts.size, np.nan), np.full(starts.size, np.nan))
    if knobs.trend:
        cpu_fit = _fits(starts, lengths, index_all, cpu_all, residuals=True)
        mem_fit = _fits(starts, lengths, index_all, peaks_all)
    short_ids = {int(ids[start]) for start, n in zip(starts, lengths, strict=True) if n < MIN_PEAKS_FOR_FIT}
    pooled = _pooled(daily.filter(pl.col("series_id").is_in(list(short_ids))), history.start)
    by_group_pooled = {k[0]: g for k, g in pooled.partition_by("group_id", as_dict=True).items()}
    pooled_sizes: dict[int, tuple[float, float, str, float]] = {}
    out = []
    for s in history.series.iter_rows(named=True):
        k = where.get(s["series_id"])
        if k is None:
            continue
        lo, hi = int(starts[k]), int(starts[k] + lengths[k])
        factor, trend_why = 1.0, ""
        if s["series_id"] not in short_ids:
            index = index_all[lo:hi]
            factor, trend_why = cpu_size(1.0, cpu_all[lo:hi], index, horizon_days, "", knobs.trend,
                                         (float(cpu_fit[0][k]), float(cpu_fit[1][k])), float(cpu_fit[2][k]))
            peaks = peaks_all[lo:hi]
            request, need, mem_why = memory_size(peaks, index, horizon_days, knobs,
                                                 (float(mem_fit[0][k]), float(mem_fit[1][k])))
            out.append({"series": s, "cpu_factor": factor, "cpu_trend_why": trend_why, "mem_request": request,
                        "mem_need": need, "mem_why": mem_why, "mem_peak": float(peaks.max())})
            continue
        group = s["group_id"]
        if group not in pooled_sizes:  # the same pooled days for every short-lived pod of the group
            g = by_group_pooled[group]
            group_peaks, group_days = g["peak_bytes"].to_numpy().astype(float), g["day"].to_numpy().astype(float)
            pooled_sizes[group] = (*memory_size(group_peaks, group_days, horizon_days, knobs), float(group_peaks.max()))
        request, need, mem_why, peak = pooled_sizes[group]
        out.append({"series": s, "cpu_factor": factor, "cpu_trend_why": trend_why, "mem_request": request,
                    "mem_need": need, "mem_why": mem_why + " (short-lived pods pooled per day)", "mem_peak": peak})
    history.memo[key] = out
    return out


def recommend(history: History, params: StrategyParams) -> pl.DataFrame:
    """One row per group: capplan's sizes, with the driver of each in `reason`."""
    knobs = params.auto_knobs()
    cpu_column, cpu_name = _quantile_column(knobs.cpu_quantile)
    horizon_days = params.horizon.total_seconds() / 86400.0
    per_series = []
    for x in _per_series(history, knobs, horizon_days):
        s = x["series"]
        cpu_level = s[cpu_column] or 0.0
        if s["cpu_limit_cores"] and (s["cpu_p95_cores"] or 0.0) >= THROTTLED_SHARE * s["cpu_limit_cores"]:
            # throttling is not collected; a p95 at the limit means the limit capped the usage
            cpu, cpu_why = max(cpu_level, s["cpu_limit_cores"]), (
                f"usage pinned at its {fmt_cpu(s['cpu_limit_cores'])} limit (throttled): at least the limit")
        else:
            cpu, cpu_why = cpu_level * x["cpu_factor"], cpu_name + x["cpu_trend_why"]
        per_series.append({"group_id": s["group_id"], "cpu": cpu, "cpu_why": cpu_why, "mem_request": x["mem_request"],
                           "mem_need": x["mem_need"], "mem_why": x["mem_why"], "mem_peak": x["mem_peak"]})
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
        current = r["current_limit"]
        over = current is not None and r["mem_peak"] > current
        if knobs.oom_bump and (r["ooms"] or over):
            # VPA's RecordOOM: the next size holds max(+100Mi, x1.2) over what it died at
            # (usage above the limit counts: the kernel would have killed it there)
            died_at = max(r["killed_at"] or 0.0, current if over else 0.0)
            bumped = vpa.oom_peak(died_at, r["mem_peak"])
            what = f"{r['ooms']} OOM kill(s)" if r["ooms"] else f"usage above the {fmt_mem(current)} limit"
            if bumped > need:
                need = bumped
                request = max(request, bumped)
                mem_why = (f"{what}: max(+100Mi, x1.2) over the "
                           f"{fmt_mem(max(died_at, r['mem_peak']))} it died at (VPA's OOM bump)")
            else:
                mem_why += f"; {what} in the window"
        # memory cannot be throttled, only killed: a limit comes down in steps
        limit = need
        limit_why = ""
        if knobs.step_down_on:
            guard = min(current if current is not None else math.inf, knobs.step_down * r["mem_peak"])
            if guard > limit:
                limit = guard
                limit_why = (f"; limit {fmt_mem(guard)}: a limit shrinks at most to {knobs.step_down:g}x the peak "
                             f"{fmt_mem(r['mem_peak'])} per step" if current is None or guard < current
                             else f"; limit kept at the current {fmt_mem(guard)} (within {knobs.step_down:g}x the peak)")
        cpu = ceil_millicores(max(r["cpu"], 0.001))
        request = ceil_bytes(max(request, 1.0))
        limit = ceil_bytes(max(limit, request))
        rows.append({"group_id": r["group_id"], "cpu_request_cores": cpu, "cpu_limit_cores": None,
                     "memory_request_bytes": request, "memory_limit_bytes": limit,
                     "reason": (f"auto: cpu {fmt_cpu(cpu)} from {r['cpu_why']}, no cpu limit; memory {fmt_mem(request)} "
                                f"from {mem_why}{limit_why}")})
    return result_frame(rows)
