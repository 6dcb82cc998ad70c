"""DuckDB's `quantile_cont` of REAL cores, computed from an integer `quantile_cont` of millicores.

Why: per series, recommend takes exact CPU percentiles of CAST(mcores / 1000 AS REAL) (the
usage_samples view's values). DuckDB keeps every value of a group for that; on REAL values its
sort compares floats, which at the bench's L (86.5 M samples) cost ~25% more CPU than the same
quantiles of the stored INTEGER millicores (bench/RESULTS.md, issue 14, RS). The REAL answer only
needs the two neighbouring order statistics, which are the integer ones mapped by
v -> REAL(v / 1000) (non-decreasing, so it keeps the order). An integer quantile_cont gives
lo + (hi - lo)·d, not lo and hi; asking it also at q ± EPSILON (the same sort, a little more
selection) gives a second point on the same segment, from which lo and hi follow exactly:

- DuckDB (v1.x, quantile_cont): RN = (n - 1)·q, FRN = floor(RN), CRN = ceil(RN), d = RN - FRN;
  FRN = CRN returns the value at FRN; otherwise a DOUBLE result is lo·(1 - d) + hi·d, and a REAL
  one lo + REAL((hi - lo)·d) with hi - lo in REAL (both checked against DuckDB by
  tests/analysis/test_real_quantiles.py);
- with d2 the partner's fraction on the same [FRN, CRN] segment, hi - lo = round((w2 - w) / (d2 - d))
  and lo = round(w - (hi - lo)·d); the pair is kept only when it gives back both DuckDB results
  bit for bit. Two integer pairs cannot both do that: their differences would have to differ by
  less than the rounding of w (< 2^-27 for values below 2^24) over d2 - d >= EPSILON, so less than 1.
Where that fails (a series of more than ~500,000 samples in the window, values of 2^24 millicores
or more), `ok` is False and the caller computes those series' REAL quantiles directly.
"""

from __future__ import annotations

import numpy as np

# The partner quantile's offset: (n - 1)·EPSILON apart on the segment, at least 1e-6 (over 100 times
# the rounding bound above) and, up to 500,000 samples per series, below 0.5 (so one of q - EPSILON
# and q + EPSILON stays on the segment).
EPSILON = 1e-6
EXACT_BELOW = 2.0 ** 24  # integers a REAL and a double hold exactly


def levels(qs: list[float]) -> list[float]:
    """The quantile levels to ask the integer quantile_cont for: each q, q - EPSILON, q + EPSILON."""
    out: list[float] = []
    for q in qs:
        out += [q, max(q - EPSILON, 0.0), min(q + EPSILON, 1.0)]
    return out


def from_integer(counts: np.ndarray, answers: np.ndarray, qs: list[float], scale: float = 1000.0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """DuckDB's quantile_cont of REAL(v / scale) at each of `qs`, per group, from its quantile_cont of
    the integers v at levels(qs): `counts` (groups) the non-NULL values per group, `answers`
    (groups x 3·len(qs)) the integer quantile_cont's results (NaN: no value). Returns the REAL
    quantiles (groups x len(qs), float32, NaN without values) and which groups came out exactly
    (a group with ok False must be computed another way)."""
    n = np.asarray(counts, dtype=np.float64)[:, None]
    w_all = np.asarray(answers, dtype=np.float64)
    q = np.asarray(qs, dtype=np.float64)[None, :]
    w, w_minus, w_plus = w_all[:, 0::3], w_all[:, 1::3], w_all[:, 2::3]
    rn = (n - 1.0) * q
    frn = np.floor(rn)
    d = rn - frn
    use_plus = d < 0.5
    q2 = np.where(use_plus, np.minimum(q + EPSILON, 1.0), np.maximum(q - EPSILON, 0.0))
    rn2 = (n - 1.0) * q2
    d2 = rn2 - frn
    w2 = np.where(use_plus, w_plus, w_minus)
    exact = d == 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.where(exact, 0.0, np.rint((w2 - w) / (d2 - d)))
        lo = np.where(exact, w, np.rint(w - delta * d))
    hi = lo + delta
    ok = (np.floor(rn2) == frn) | exact
    ok &= (lo >= 0) & (delta >= 0) & (hi < EXACT_BELOW)
    with np.errstate(invalid="ignore"):
        ok &= np.where(exact, lo == w, (lo * (1.0 - d) + hi * d == w) & (lo * (1.0 - d2) + hi * d2 == w2))
    no_values = np.isnan(w) | (n == 0)
    ok |= no_values
    lo_f = (lo / scale).astype(np.float32)
    hi_f = (hi / scale).astype(np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        step = ((hi_f - lo_f).astype(np.float64) * d).astype(np.float32)
        real = np.where(exact, lo_f, lo_f + step).astype(np.float32)
    real[no_values] = np.nan
    return real, ok.all(axis=1)
