"""Robust linear trends: Theil-Sen (the median of all pairwise slopes, which one-off spikes do
not move), with a weekly cycle removed first where there is enough history (the forecast), and
the share of pairwise slopes that agree on a rise (the auto strategy)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_CONFIDENCE = 0.90
SEASONAL_MIN_DAYS = 14  # two of each weekday before a weekday effect can be told from noise
OUTLIER_SCALES = 3.0  # a residual this many robust standard deviations from its weekday's median is an outlier


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
    from scipy import stats  # here, not at the top: scipy.stats takes ~0.75 s to import; theil_sen needs none of it

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
