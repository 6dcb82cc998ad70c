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
    loc, scale = gumbel_r_fit(z)
    return gumbel_r_sf(threshold / scale_unit, loc, scale), float(loc * scale_unit), float(scale * scale_unit)


def gumbel_r_fit(data: np.ndarray) -> tuple[float, float]:
    """scipy.stats.gumbel_r.fit(data) (maximum likelihood, loc and scale free), the same numbers:
    scipy 1.17's computation step for step (the scale as brentq's root of the likelihood equation
    from the bracket (1/2, 2), widened until it holds a sign change; then the loc) without its
    per-call argument handling and numpy.average's, which were most of the memory-pressure
    section's 2.5 s of CPU at the bench's L (1,296 nodes; tests/analysis/test_peaks.py compares)."""
    from scipy import optimize, special  # here, not at the top: scipy takes long to import

    data = np.asarray(data, dtype=np.float64)
    if not np.isfinite(data).all():
        raise ValueError("The data contains non-finite values.")
    mean = data.mean()

    def func(scale: float) -> float:
        logweights = -data / scale
        weights = np.exp(logweights - logweights.max())
        total = weights.sum()
        if total == 0.0:
            raise ZeroDivisionError("Weights sum to zero, can't be normalized")
        return mean - np.multiply(data, weights).sum() / total - scale

    lbrack: float = 1 / 2
    rbrack: float = 1 * 2
    while np.sign(func(lbrack)) == np.sign(func(rbrack)) and (lbrack > 0 or rbrack < np.inf):
        lbrack /= 2
        rbrack *= 2
    try:
        scale = optimize.brentq(func, lbrack, rbrack, xtol=1e-14, rtol=1e-14, full_output=True, disp=False)[0]
    except ValueError as err:  # the function gave NaN: scipy's root_scalar answers where it did
        if not hasattr(err, "_x"):
            raise
        scale = err._x
    loc = -scale * (special.logsumexp(-data / scale) - np.log(len(data)))
    return float(loc), float(scale)


def gumbel_r_sf(x: float, loc: float, scale: float) -> float:
    """scipy.stats.gumbel_r.sf(x, loc, scale), the same number: -expm1(-exp(-(x - loc) / scale)),
    NaN for a scale that is not positive."""
    from scipy import special

    if not scale > 0:
        return float("nan")
    z = (np.float64(x) - np.float64(loc)) / np.float64(scale)
    return float(-special.expm1(-np.exp(-z)))


def gumbel_quantile(values: np.ndarray, q: float) -> float:
    """The q quantile of a Gumbel distribution fitted by moments:
    beta = s * sqrt(6) / pi, mu = mean - gamma * beta, Q = mu - beta * ln(-ln q)."""
    values = np.asarray(values, dtype=float)
    beta = values.std(ddof=1) * math.sqrt(6.0) / math.pi if values.size > 1 else 0.0
    mu = values.mean() - EULER_GAMMA * beta
    return mu - beta * math.log(-math.log(q))
