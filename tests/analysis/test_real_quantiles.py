"""capplan.analysis.real_quantiles: DuckDB's quantile_cont of REAL(v / 1000), told exactly from its
quantile_cont of the integers v at q, q - EPSILON and q + EPSILON.

The expected values are DuckDB's own REAL quantile_cont on the same groups (the computation the
module replaces), and numpy's linear percentile of the float32 values to float32 precision (an
independent model); groups: one value, two, ties only, small and large counts, values below and
far above 1,000, NULLs only, and levels 0, 0.5, 0.9, 0.95, 0.99 and 1.
"""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
import pytest

from capplan.analysis import real_quantiles

QS = [0.0, 0.5, 0.9, 0.95, 0.99, 1.0]


def _groups(seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for gid in range(300):
        kind = gid % 6
        n = [1, 2, int(rng.integers(3, 60)), int(rng.integers(60, 3000)), int(rng.integers(1, 9000)), 40][kind]
        if kind == 5:
            values = np.full(n, int(rng.integers(0, 3000)))           # ties only
        elif gid % 4 == 0:
            values = rng.integers(0, 25, n)                             # many ties, below the first core
        elif gid % 4 == 1:
            values = (rng.pareto(1.2, n) * 40).astype(np.int64) % 16_000_000  # a long tail
        else:
            values = rng.integers(0, 90_000, n)
        frames.append(pl.DataFrame({"gid": np.full(n, gid, dtype=np.int32), "v": values.astype(np.int32)}))
    frames.append(pl.DataFrame({"gid": [5000, 5000], "v": [None, None]}, schema={"gid": pl.Int32, "v": pl.Int32}))
    return pl.concat(frames)


def _duckdb_answers(groups: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray]:
    con = duckdb.connect()
    con.register("g", groups.to_arrow())
    got = con.execute("SELECT gid, count(v) AS n, quantile_cont(v, $levels) AS w, "
                      "quantile_cont(CAST(v / 1000 AS REAL), $qs) AS real FROM g GROUP BY gid ORDER BY gid",
                      {"levels": real_quantiles.levels(QS), "qs": QS}).pl()
    width = 3 * len(QS)
    answers = np.column_stack([got["w"].list.get(i, null_on_oob=True).cast(pl.Float64).fill_null(np.nan).to_numpy()
                               for i in range(width)])
    return got, answers


@pytest.mark.parametrize("seed", [1, 2])
def test_the_real_quantiles_are_duckdbs_own(seed: int) -> None:
    groups = _groups(seed)
    got, answers = _duckdb_answers(groups)
    real, ok = real_quantiles.from_integer(got["n"].to_numpy(), answers, QS)
    assert ok.all()
    by_gid = {key[0]: g["v"].to_numpy() for key, g in groups.partition_by("gid", as_dict=True).items()}
    for row, (gid, expected) in enumerate(zip(got["gid"].to_list(), got["real"].to_list(), strict=True)):
        if expected is None:
            assert np.isnan(real[row]).all(), gid
            continue
        assert real[row].tolist() == expected, gid  # bit for bit
        values = (by_gid[gid] / 1000).astype(np.float32)
        model = [np.percentile(values.astype(np.float64), q * 100) for q in QS]
        assert real[row] == pytest.approx(model, rel=1e-6, abs=1e-9), gid


def test_a_group_that_cannot_be_told_is_flagged_not_guessed(monkeypatch) -> None:
    """With no offset between the partner levels, the integer answers do not pin lo and hi down: a
    group whose level falls between two values is flagged for the caller to compute directly; one
    whose level falls on a value (a single value) is still told."""
    groups = pl.DataFrame({"gid": [1, 1, 1, 2], "v": [100, 200, 300, 7]},
                          schema={"gid": pl.Int32, "v": pl.Int32})
    monkeypatch.setattr(real_quantiles, "EPSILON", 0.0)
    global QS
    saved, QS = QS, [0.95]
    try:
        got, answers = _duckdb_answers(groups)
        real, ok = real_quantiles.from_integer(got["n"].to_numpy(), answers, QS)
    finally:
        QS = saved
    assert ok.tolist() == [False, True]
    assert real[1, 0] == np.float32(0.007)


def test_recommend_takes_what_it_cannot_tell_from_the_view(tmp_path, monkeypatch) -> None:
    """recommend's series percentiles when no series can be told exactly (EPSILON 0): the view's own
    REAL quantiles, the same frame as with the integer ones."""
    from datetime import datetime, timedelta

    from capplan import store
    from capplan.analysis import recommend as rec

    rng = np.random.default_rng(3)
    t0 = datetime(2026, 3, 1)
    n = 600
    rows = pl.DataFrame({
        "namespace": ["ns"] * 2 * n, "pod": ["a"] * n + ["b"] * n, "container": ["c"] * 2 * n, "node": ["n1"] * 2 * n,
        "ts": [t0 + timedelta(minutes=5 * i) for i in range(n)] * 2,
        "cpu_cores": np.round(rng.uniform(0, 4, 2 * n), 3), "memory_bytes": rng.uniform(1e6, 1e9, 2 * n)})
    con = store.open_db(tmp_path / "db.duckdb")
    with store.transaction(con):
        store.write_usage(con, rows)
    start, end = store.sample_range(con)
    params = {"start": start, "end": end, "cpu_q": 0.95, "parts": 1, "part": 0, "first_id": 0, "last_id": 2**31 - 1}
    exact = {name: rec._query(con, name, params).sort("series_id") for name in rec.REAL_PERCENTILES}
    monkeypatch.setattr(real_quantiles, "EPSILON", 0.0)
    calls = []
    real_query = store.query
    monkeypatch.setattr(store, "query", lambda c, name, p=None: calls.append(name) or real_query(c, name, p))
    for name, frame in exact.items():
        fallback = rec._query(con, name, params).sort("series_id")
        assert name in calls  # the view-based twin ran
        assert fallback.equals(frame)
        assert fallback.equals(real_query(con, name, rec._used(name, params)).sort("series_id"))
    # in parts (a range of series ids each), each part's inexact series from the view-based twin's
    # every-other-series slices: the same
    monkeypatch.setattr(rec, "PERCENTILE_SAMPLES_PER_PART", n)  # 2 x n samples: two parts
    for name, frame in exact.items():
        assert rec._in_parts(con, name, {"start": start, "end": end, "cpu_q": 0.95}).sort("series_id").equals(frame)
    con.close()
