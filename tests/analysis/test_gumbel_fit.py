"""capplan.analysis.stats.peaks fits the Gumbel distribution without scipy's per-call overhead: its
numbers must be scipy.stats.gumbel_r's bit for bit (the memory-pressure table is unchanged)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from capplan.analysis.stats.peaks import gumbel_exceedance, gumbel_r_fit, gumbel_r_sf


def samples() -> list[np.ndarray]:
    """Daily maxima of several shapes: Gumbel draws, uniform, nearly flat, and two points."""
    rng = np.random.default_rng(7)
    out = []
    for i in range(300):
        n = int(rng.integers(3, 40))
        if i % 3 == 0:
            out.append(rng.gumbel(rng.uniform(-5, 5), rng.uniform(0.01, 3), n))
        elif i % 3 == 1:
            out.append(rng.uniform(0, 1, n))
        else:
            out.append(rng.normal(0.7, 0.05, n))
    return out + [np.array([0.2, 0.9, 0.91]), np.array([1.0, 1.0, 1.0 + 1e-6])]


def test_the_fit_and_tail_are_scipys_bit_for_bit() -> None:
    rng = np.random.default_rng(8)
    for x in samples():
        loc, scale = stats.gumbel_r.fit(x)
        assert gumbel_r_fit(x) == (float(loc), float(scale))
        for t in rng.uniform(-3, 8, 3):
            assert gumbel_r_sf(float(t), float(loc), float(scale)) == float(stats.gumbel_r.sf(t, loc=loc, scale=scale))


def test_exceedance_as_before_and_bad_input_as_scipy() -> None:
    x = np.array([900.0, 950.0, 870.0, 1010.0, 990.0, 930.0]) * 2**20
    unit = float(x.max())
    loc, scale = stats.gumbel_r.fit(x / unit)
    p, got_loc, got_scale = gumbel_exceedance(x, 1000.0 * 2**20)
    assert p == float(stats.gumbel_r.sf(1000.0 * 2**20 / unit, loc=loc, scale=scale))
    assert (got_loc, got_scale) == (float(loc * unit), float(scale * unit))
    assert np.isnan(gumbel_r_sf(1.0, 0.0, 0.0)) and np.isnan(stats.gumbel_r.sf(1.0, loc=0.0, scale=0.0))
    with pytest.raises(ValueError):
        stats.gumbel_r.fit(np.array([1.0, np.nan, 2.0]))
    with pytest.raises(ValueError):
        gumbel_r_fit(np.array([1.0, np.nan, 2.0]))
