"""recommend's per-sample aggregates read the stored integer units (queries/recommend_*_stored.sql)
instead of the usage_samples view, and must give what the view gives:

- the conversion they use, CAST(mcores / 1000 AS REAL), is the view's CAST(mcores * 0.001 AS REAL)
  for every millicore value up to 20,000 cores;
- on a store with raw samples and hourly rollups, with series that start at different times, each
  stored query returns what a brute-force model computes from the view's rows in Python (counts,
  spans, peaks and histogram buckets exactly; percentiles, means and decayed weights to float
  precision), and what its view-based twin (the file other engines run) returns (exactly, but for
  float sums in another order; the interval statistics computed a day of time at a time);
- every strategy's `recommend` table is the same frame either way (windows inside the raw samples,
  reaching the rollups, and with a start that is not a whole second).
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from capplan import rollup, store
from capplan.analysis import recommend as rec
from capplan.analysis import series_parts
from capplan.analysis.strategies import vpa

T0 = datetime(2026, 3, 1)
DAYS = 4


def _rows(seed: int = 5) -> pl.DataFrame:
    """Five pods, 5-minute samples, starting at different times; CPU with zeros, values below the
    first VPA bucket, repeated values (ties in the percentiles) and a few large ones."""
    rng = random.Random(seed)
    rows = []
    for i, pod in enumerate(("a", "b", "c", "d", "e")):
        offset = timedelta(minutes=5 * rng.randint(0, 400) + 60 * i)
        steps = DAYS * 288 - rng.randint(0, 500)
        for step in range(steps):
            cpu = rng.choice([0.0, 0.004, 0.25, round(rng.uniform(0, 3), 3), rng.uniform(0, 40), rng.uniform(0, 90)])
            rows.append((pod, T0 + offset + timedelta(minutes=5 * step), cpu, float(rng.randint(10**6, 4 * 10**9))))
    return pl.DataFrame({
        "namespace": ["ns"] * len(rows), "pod": [r[0] for r in rows], "container": ["c"] * len(rows),
        "node": ["n1"] * len(rows), "ts": [r[1] for r in rows], "cpu_cores": [r[2] for r in rows],
        "memory_bytes": [r[3] for r in rows],
    })


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("stored") / "db.duckdb"
    con = store.open_db(path)
    with store.transaction(con):
        store.write_usage(con, _rows())
    with store.transaction(con):
        rollup.compact(con, raw_retention=timedelta(days=1, hours=12))  # older samples: hourly rows
    con.close()
    return path


def _windows(con: duckdb.DuckDBPyConnection) -> list[tuple[datetime, datetime]]:
    oldest, newest = store.sample_range(con)
    return [(oldest, newest),                                                  # raw and rollups
            (newest - timedelta(days=1), newest),                              # raw only
            (newest - timedelta(days=2, microseconds=300_000), newest - timedelta(hours=3, microseconds=1))]


def test_the_stored_cpu_conversion_is_the_views() -> None:
    con = duckdb.connect()
    differ = con.execute(
        "SELECT count(*) FROM range(0, 20000000) AS r(v) "
        "WHERE CAST(CAST(v AS INTEGER) / 1000 AS REAL) <> CAST(CAST(v AS INTEGER) * 0.001 AS REAL)").fetchone()[0]
    assert differ == 0
    # and across the whole INTEGER range (every 7,919th value: the namespace sums' refresh,
    # queries/namespace_usage_refresh.sql, makes its REAL cores so from any stored value)
    differ = con.execute(
        "SELECT count(*) FROM range(-2147483648, 2147483648, 7919) AS r(v) "
        "WHERE CAST(CAST(v AS INTEGER) / 1000 AS REAL) <> CAST(CAST(v AS INTEGER) * 0.001 AS REAL)").fetchone()[0]
    assert differ == 0


def _view_rows(con, start, end) -> pl.DataFrame:
    return con.execute("SELECT series_id, ts, cpu_cores, memory_bytes FROM usage_samples "
                       "WHERE ts BETWEEN $start AND $end ORDER BY series_id, ts", {"start": start, "end": end}).pl()


def _percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values.astype(np.float64), q * 100))  # linear, as quantile_cont


def _stored(con, name: str, params: dict) -> pl.DataFrame:
    return rec._query(con, name, params)


def _view(con, name: str, params: dict) -> pl.DataFrame:
    return store.query(con, name, rec._used(name, params))


def test_series_statistics_against_brute_force_and_the_view(db: Path) -> None:
    con = store.open_db(db, read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM usage_hourly").fetchone()[0] > 0
        for start, end in _windows(con):
            rows = _view_rows(con, start, end)
            # the stored twins take a range of series ids, the view-based queries every `parts`-th
            # series: the lower half of the ids against the whole view's rows of those ids
            first, last = con.execute("SELECT min(series_id), max(series_id) FROM series").fetchone()
            half = (first + last) // 2
            params = {"start": start, "end": end, "cpu_q": 0.95, "parts": 1, "part": 0, "first_id": first, "last_id": half}
            whole = {**params, "last_id": last}
            in_half = pl.col("series_id") <= half
            stats = _stored(con, "recommend_series_stats", params).sort("series_id")
            assert stats.height > 0 and (stats["series_id"] <= half).all()
            assert stats.equals(_view(con, "recommend_series_stats", params).filter(in_half).sort("series_id"))
            light = _stored(con, "recommend_series_stats_light", {"start": start, "end": end}).sort("series_id")
            assert light.equals(_view(con, "recommend_series_stats_light", {"start": start, "end": end}).sort("series_id"))
            pct = _stored(con, "recommend_series_percentile", params).sort("series_id")
            assert pct.equals(_view(con, "recommend_series_percentile", params).filter(in_half).sort("series_id"))
            stats = _stored(con, "recommend_series_stats", whole).sort("series_id")
            assert stats.equals(_view(con, "recommend_series_stats", whole).sort("series_id"))
            model = {}
            for (sid,), g in rows.partition_by("series_id", as_dict=True).items():
                cpu = g["cpu_cores"].to_numpy()
                model[sid] = (g.height, g["ts"].min(), g["ts"].max(), [_percentile(cpu, q) for q in (0.95, 0.9, 0.95, 0.99)],
                              float(cpu.max()), int(g["memory_bytes"].max()))
            assert set(light["series_id"]) == set(model)
            assert set(stats["series_id"]) == set(model)
            for r in light.iter_rows(named=True):
                m = model[r["series_id"]]
                assert (r["samples"], r["first_ts"], r["last_ts"], r["memory_max_bytes"]) == (m[0], m[1], m[2], m[5])
                assert r["cpu_max_cores"] == m[4]
            for r in stats.iter_rows(named=True):
                assert r["cpu_q"] == pytest.approx(model[r["series_id"]][3], rel=1e-6, abs=1e-9)
    finally:
        con.close()


def test_cpu_histogram_against_brute_force_and_the_view(db: Path) -> None:
    con = store.open_db(db, read_only=True)
    hist = vpa.CPU_HISTOGRAM
    try:
        for (start, end), cap in zip(_windows(con), (rec.LUT_MAX_MCORES, 2500, 0), strict=True):
            # buckets looked up in the list (the window's largest value is below 65,535 mcores), in the
            # list up to 2.5 cores and by the formula above, and by the formula only
            params = {"start": start, "end": end, "first_bucket": hist.first_bucket, "ratio": hist.ratio,
                      "num_buckets": hist.num_buckets, "half_life_s": vpa.HALF_LIFE_SECONDS}
            twin = _view(con, "recommend_cpu_histogram", params).sort("series_id", "bucket")
            got = _stored(con, "recommend_cpu_histogram", {**params, "cap_mcores": cap}).sort("series_id", "bucket")
            assert got.drop("decayed").equals(twin.drop("decayed"))
            assert got["decayed"].to_list() == pytest.approx(twin["decayed"].to_list(), rel=1e-12)
            model: dict[tuple[int, int], list] = {}
            for r in _view_rows(con, start, end).iter_rows(named=True):
                key = (r["series_id"], hist.find_bucket(r["cpu_cores"]))
                weight = 2 ** ((r["ts"] - end).total_seconds() / vpa.HALF_LIFE_SECONDS)
                m = model.setdefault(key, [0, r["ts"], r["ts"], 0.0, 0.0])
                m[0] += 1
                m[1], m[2], m[3], m[4] = min(m[1], r["ts"]), max(m[2], r["ts"]), max(m[3], r["cpu_cores"]), m[4] + weight
            assert [(r["series_id"], r["bucket"]) for r in got.iter_rows(named=True)] == sorted(model)
            for r in got.iter_rows(named=True):
                m = model[(r["series_id"], r["bucket"])]
                assert (r["samples"], r["first_ts"], r["last_ts"], r["cpu_max_cores"]) == tuple(m[:4])
                assert r["decayed"] == pytest.approx(m[4], rel=1e-9)
    finally:
        con.close()


def test_interval_peaks_against_brute_force_and_the_view(db: Path) -> None:
    con = store.open_db(db, read_only=True)
    try:
        for start, end in _windows(con):
            rows = _view_rows(con, start, end)
            first = rows.group_by("series_id").agg(pl.col("ts").min().alias("first_ts"))
            con.register("_rec_first", first.select(
                "series_id", (pl.col("first_ts").dt.epoch("us").cast(pl.Float64) / 1e6).alias("first_s")).to_arrow())
            try:
                params = {"start": start, "end": end, "interval_s": vpa.MEMORY_INTERVAL_SECONDS}
                origin = first["first_ts"].min()
                peaks = rec._interval_stats(con, "recommend_memory_peaks", start, end, origin)
                daily = rec._interval_stats(con, "recommend_daily_stats", start, end, origin)
                assert peaks.equals(_view(con, "recommend_memory_peaks", params))
                twin = _view(con, "recommend_daily_stats", params)
            finally:
                con.unregister("_rec_first")
            assert daily.drop("cpu_mean_cores").equals(twin.drop("cpu_mean_cores"))
            assert daily["cpu_mean_cores"].to_list() == pytest.approx(twin["cpu_mean_cores"].to_list(), rel=1e-12)
            model: dict[tuple[int, int], list] = {}
            firsts = dict(first.iter_rows())
            for r in rows.iter_rows(named=True):
                index = math.floor((r["ts"] - firsts[r["series_id"]]).total_seconds() / vpa.MEMORY_INTERVAL_SECONDS)
                m = model.setdefault((r["series_id"], index), [0, 0.0, 0])
                m[0], m[1], m[2] = max(m[0], r["memory_bytes"]), m[1] + r["cpu_cores"], m[2] + 1
            assert [(r["series_id"], r["interval_index"]) for r in daily.iter_rows(named=True)] == sorted(model)
            for r in daily.iter_rows(named=True):
                m = model[(r["series_id"], r["interval_index"])]
                assert r["peak_bytes"] == m[0]
                assert r["cpu_mean_cores"] == pytest.approx(m[1] / m[2], rel=1e-9)
    finally:
        con.close()


@pytest.mark.parametrize("strategy", ["simple", "vpa", "auto", "max-target"])
def test_recommend_is_the_same_frame_from_the_view(db: Path, strategy: str, monkeypatch) -> None:
    con = store.open_db(db, read_only=True)
    try:
        windows = _windows(con)
        stored = [rec.recommend_window(con, strategy, start, end) for start, end in windows]
        monkeypatch.setattr(rec, "_query", _view)
        monkeypatch.setattr(rec, "_interval_stats", lambda con, name, start, end, origin: store.query(
            con, name, {"start": start, "end": end, "interval_s": vpa.MEMORY_INTERVAL_SECONDS}))
        # the view path in several slices too (every `parts`-th series)
        monkeypatch.setattr(rec, "PERCENTILE_SAMPLES_PER_PART", series_parts.samples_summary(con, *windows[0])[0] // 3)
        from_view = [rec.recommend_window(con, strategy, start, end) for start, end in windows]
    finally:
        con.close()
    for a, b in zip(stored, from_view, strict=True):
        assert a.height > 0 and a.equals(b)


@pytest.fixture(scope="module")
def db_with_days(tmp_path_factory) -> Path:
    """Raw samples, hourly rows and daily rows (hours older than two days rolled into days)."""
    path = tmp_path_factory.mktemp("stored_days") / "db.duckdb"
    con = store.open_db(path)
    with store.transaction(con):
        store.write_usage(con, _rows(seed=11))
    with store.transaction(con):
        rollup.compact(con, raw_retention=timedelta(days=1), daily_after=timedelta(days=2, hours=12))
    con.close()
    return path


def test_samples_summary_against_the_views_rows(db_with_days: Path) -> None:
    """recommend's summary (count, largest CPU in millicores, first and last series id) of windows over
    raw samples only, raw and hourly rows, all three tables, rollups only and an empty span, against
    the usage_samples view's rows counted in Python."""
    con = store.open_db(db_with_days, read_only=True)
    try:
        counts = [con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("usage_raw", "usage_hourly", "usage_daily")]
        assert all(counts), counts
        oldest, newest = store.sample_range(con)
        raw_from = con.execute("SELECT CAST(min(ts) AS TIMESTAMP) FROM usage_raw").fetchone()[0]
        hourly_from = con.execute("SELECT CAST(min(hour) AS TIMESTAMP) FROM usage_hourly").fetchone()[0]
        windows = [(oldest, newest), (raw_from, newest), (hourly_from, newest),
                   (oldest, raw_from - timedelta(seconds=1)), (oldest + timedelta(hours=5, microseconds=7), newest - timedelta(hours=2)),
                   (newest + timedelta(days=1), newest + timedelta(days=2))]
        for start, end in windows:
            rows = _view_rows(con, start, end)
            got = series_parts.samples_summary(con, start, end)
            if rows.is_empty():
                assert got == (0, 0, 1, 0)
                continue
            expected = (rows.height, round(float(rows["cpu_cores"].max()) * 1000),
                        int(rows["series_id"].min()), int(rows["series_id"].max()))
            assert got == expected
    finally:
        con.close()
