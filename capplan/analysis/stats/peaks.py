"""Peaks: the Gumbel (GEV type I) distribution of per-period maxima, fitted two ways: by maximum
likelihood for an exceedance probability (memory pressure), by moments for a quantile (the auto
strategy's memory request)."""

from __future__ import annotations

import math

import numpy as np

MIN_FIT_POINTS = 3  # fewer maxima than this: the observed share of exceedances instead of a fit
EULER_GAMMA = 0.5772156649015329


def gumbel_exceedance(daily_max: np.ndarray, threshold: float) -> tuple[float | None, float | None, float | None]:
    """P(a period's maximum > threshold) from a Gumbel (GEV type I) fit of the daily
    maxima (scipy.stats.gumbel_r, maximum likelihood): (probability, loc, scale).

    Gumbel rather than the full GEV: two weeks give ~14 maxima, too few to estimate the GEV
    shape; the fitted tail still ranks a node whose peaks come near the threshold but rarely
    cross it above one whose peaks stay far below. With fewer than 3 days the share of days
    that breached is returned instead; with no spread, 1 or 0.
    """
    x = np.asarray(daily_max, dtype=np.float64)
    if x.size == 0:
        return None, None, None
    if x.size < MIN_FIT_POINTS:
        return float((x > threshold).mean()), None, None
    scale_unit = max(float(np.abs(x).max()), 1.0)  # fit in units of the largest value: better conditioned
    z = x / scale_unit
    if float(z.std()) < 1e-9:
        return (1.0 if x[0] > threshold else 0.0), float(x[0]), 0.0
    from scipy import stats  # here, not at the top: scipy.stats takes ~0.75 s to import and recommend never needs it

    loc, scale = stats.gumbel_r.fit(z)
    p = float(stats.gumbel_r.sf(threshold / scale_unit, loc=loc, scale=scale))
    return p, float(loc * scale_unit), float(scale * scale_unit)


def gumbel_quantile(values: np.ndarray, q: float) -> float:
    """The q quantile of a Gumbel distribution fitted by moments:
    beta = s * sqrt(6) / pi, mu = mean - gamma * beta, Q = mu - beta * ln(-ln q)."""
    values = np.asarray(values, dtype=float)
    beta = values.std(ddof=1) * math.sqrt(6.0) / math.pi if values.size > 1 else 0.0
    mu = values.mean() - EULER_GAMMA * beta
    return mu - beta * math.log(-math.log(q))
