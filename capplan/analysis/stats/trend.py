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
    interval (theil_sen_interval: scipy.stats.theilslopes' numbers) and the fitted level at the
    last day.

    With `weekdays` (0-6 per point) and at least two weeks of days, the weekly cycle is removed
    first: the weekday effects (weekday_effects) of the residuals around a first Theil-Sen line,
    centred to mean zero, are
    subtracted and the line fitted again. The level is then that of the weekly mean.
    """
    x = np.asarray(x_days, dtype=float)
    y = np.asarray(values, dtype=float)
    if x.size < 2:
        raise ValueError("a trend needs at least two points")
    slope, intercept, low, high = theil_sen_interval(y, x, confidence)
    seasonal = False
    if weekdays is not None and x.size >= SEASONAL_MIN_DAYS and (x.max() - x.min()) >= SEASONAL_MIN_DAYS - 1:
        wd = np.asarray(weekdays)
        residual = y - (intercept + slope * x)
        effect = weekday_effects(residual, wd)
        centre = float(np.mean(list(effect.values())))
        adjusted = y - np.array([effect[int(w)] - centre for w in wd])
        slope, intercept, low, high = theil_sen_interval(adjusted, x, confidence)
        seasonal = True
    level = float(intercept + slope * x.max())
    return Trend(float(slope), float(low), float(high), level, seasonal)


def theil_sen_interval(y: np.ndarray, x: np.ndarray, confidence: float = DEFAULT_CONFIDENCE
                       ) -> tuple[float, float, float, float]:
    """Theil-Sen slope, intercept and the slope's `confidence` interval (Sen 1968): the numbers
    scipy.stats.theilslopes(y, x, alpha=confidence) gives (method "separate"), computed the same
    way, operation for operation, without its per-call argument handling, which cost the forecast
    at the bench's L (2,928 series, two fits each) 4.5 s of CPU of its 5 s (bench/RESULTS.md).
    x and y finite, at least two points."""
    from scipy.special import ndtri  # scipy.stats.norm.ppf's own function; here: importing it takes ~0.4 s

    deltax = x[:, np.newaxis] - x
    deltay = y[:, np.newaxis] - y
    rising = deltax > 0
    slopes = deltay[rising] / deltax[rising]
    slopes.sort()
    slope = _median_sorted(slopes)
    intercept = _median(y) - slope * _median(x)
    alpha = 1.0 - confidence if confidence > 0.5 else confidence
    z = ndtri(alpha / 2.0)
    nt, ny = len(slopes), len(y)
    sigsq = 1 / 18.0 * (ny * (ny - 1) * (2 * ny + 5)
                        - sum(k * (k - 1) * (2 * k + 5) for k in _repeat_counts(x))
                        - sum(k * (k - 1) * (2 * k + 5) for k in _repeat_counts(y)))
    if sigsq < 0 or nt == 0:
        return slope, intercept, float("nan"), float("nan")
    sigma = np.sqrt(sigsq)
    upper = min(int(np.round((nt - z * sigma) / 2.0)), nt - 1)
    lower = max(int(np.round((nt + z * sigma) / 2.0)) - 1, 0)
    return slope, intercept, float(slopes[lower]), float(slopes[upper])


def _median_sorted(values: np.ndarray) -> float:
    """np.median of sorted values: the middle one, or the mean of the middle two."""
    n = values.size
    if n == 0:
        return float("nan")
    mid = n // 2
    return float(values[mid]) if n % 2 else float((values[mid - 1] + values[mid]) / 2.0)


def _median(values: np.ndarray) -> float:
    """np.median (finite values), without its per-call overhead (~20 us: the forecast calls it
    ~150,000 times at the bench's L)."""
    return _median_sorted(np.sort(values))


def _repeat_counts(values: np.ndarray) -> list[int]:
    """How often each value that occurs more than once occurs (scipy's _find_repeats)."""
    ordered = np.sort(values)
    change = np.concatenate(([True], ordered[1:] != ordered[:-1]))
    counts = np.diff(np.concatenate((np.nonzero(change)[0], [ordered.size])))
    return [int(k) for k in counts[counts > 1]]


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
    median_w = {int(w): _median(r[wd == w]) for w in days}
    dev = r - np.array([median_w[int(w)] for w in wd])
    scale = 1.4826 * _median(np.abs(dev))
    tiny = 1e-9 * (1.0 + float(np.max(np.abs(r))))
    outlier = np.abs(dev) > OUTLIER_SCALES * scale + tiny
    centre = _median(r)
    effect = {}
    for w in days:
        mask = wd == w
        kept = r[mask & ~outlier]
        if kept.size == 0:
            values = r[mask]
            kept = values[[int(np.argmin(np.abs(values - centre)))]]
        effect[int(w)] = _median(kept)
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


# Pairwise slopes theil_sen_rows holds at a time: 250,000 (2 MB an array; it makes about six such
# arrays): 31 daily points (465 pairs) ~540 series, the year file's 90 (4,005 pairs) ~60. A fixed
# 2,048 series of 90 points held ~65 MB an array and raised auto's peak at L by ~110 MiB; 1 M pairs
# raised it by ~40 MiB (bench L, auto: the fits at 316-320 MiB against 283-292 with 250,000), and
# 15,000 series of 31 points and 3,000 of 90 took 0.44 CPU s with 1 M against 0.39 (issue 14, AU).
MAX_PAIRS = 250_000


def theil_sen_rows(x: np.ndarray, y: np.ndarray, chunk_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """theil_sen of each row of `x` and `y` (2-D, one series per row): the same numbers as one call
    per row (the same slopes, numpy's median along the row), without a Python call per series (the
    auto strategy fits two trends per series: at the bench's L, 30,000 calls cost ~1.5 s of CPU).
    A row with a repeated x (theil_sen leaves those pairs out) takes theil_sen itself. Rows go
    `chunk_rows` at a time (default: MAX_PAIRS pairwise slopes' worth), so the slopes held stay small."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    i, j = np.triu_indices(x.shape[1], k=1)
    chunk_rows = chunk_rows or max(1, MAX_PAIRS // max(1, i.size))
    medians = np.empty(x.shape[0])
    agreement = np.empty(x.shape[0])
    for lo in range(0, x.shape[0], chunk_rows):
        xs, ys = x[lo:lo + chunk_rows], y[lo:lo + chunk_rows]
        dx = xs[:, j] - xs[:, i]
        with np.errstate(divide="ignore", invalid="ignore"):
            slopes = (ys[:, j] - ys[:, i]) / dx
        medians[lo:lo + chunk_rows] = np.median(slopes, axis=1)
        agreement[lo:lo + chunk_rows] = (slopes > 0).mean(axis=1)
        for row in np.flatnonzero((dx == 0).any(axis=1)):
            medians[lo + row], agreement[lo + row] = theil_sen(xs[row], ys[row])
    return medians, agreement
