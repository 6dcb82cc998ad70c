"""recommend's memory-bounding steps keep every value: the day slices' merge (_merge_slices) against
a brute-force model, and the copy of a DuckDB result into polars' own buffers (series_parts.owned)."""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl

from capplan.analysis import recommend as rec
from capplan.analysis import series_parts


def _slices(seed: int, series: int = 40, intervals: int = 6) -> list[pl.DataFrame]:
    """Slices as _interval_stats' queries return them: per slice, each series' rows for the one or
    two intervals it overlaps (a series whose first sample is not at the origin has its intervals
    straddle two slices), in no order; some peaks NULL (no memory value), some CPU sums NULL with a
    count of 0 (no CPU value)."""
    rng = np.random.default_rng(seed)
    slices: list[list[dict]] = [[] for _ in range(intervals + 1)]
    for sid in range(series):
        offset = int(rng.integers(0, 2))  # 0: intervals aligned to the slices; 1: each in two slices
        for index in range(intervals):
            for part in range(1 + offset):
                count = int(rng.integers(0, 4))
                slices[index + part].append({
                    "series_id": sid, "interval_index": index,
                    "peak_bytes": None if rng.random() < 0.15 else int(rng.integers(0, 2**40)),
                    "cpu_sum_cores": None if count == 0 else float(rng.random() * count * 3.7),
                    "cpu_samples": count})
    schema = {"series_id": pl.Int32, "interval_index": pl.Int32, "peak_bytes": pl.Int64,
              "cpu_sum_cores": pl.Float64, "cpu_samples": pl.Int64}
    out = []
    for rows in slices:
        order = rng.permutation(len(rows))
        out.append(pl.DataFrame([rows[i] for i in order], schema=schema, orient="row"))
    return out


def _model(slices: list[pl.DataFrame]) -> dict[tuple[int, int], tuple[int | None, float | None]]:
    """Per (series, interval): the largest non-NULL peak and the summed CPU over the summed count."""
    acc: dict[tuple[int, int], list] = {}
    for frame in slices:
        for r in frame.iter_rows(named=True):
            a = acc.setdefault((r["series_id"], r["interval_index"]), [None, 0.0, 0])
            if r["peak_bytes"] is not None:
                a[0] = r["peak_bytes"] if a[0] is None else max(a[0], r["peak_bytes"])
            if r["cpu_sum_cores"] is not None:
                a[1] += r["cpu_sum_cores"]
            a[2] += r["cpu_samples"]
    return {k: (a[0], a[1] / a[2] if a[2] else None) for k, a in acc.items()}


def test_merged_slices_equal_a_brute_force_model() -> None:
    for seed in range(5):
        slices = _slices(seed)
        got = rec._merge_slices(pl.concat(slices))
        model = _model(slices)
        assert got.columns == ["series_id", "interval_index", "peak_bytes", "cpu_mean_cores"]
        assert got.schema["series_id"] == pl.Int32 and got.schema["peak_bytes"] == pl.Int64
        assert [(r[0], r[1]) for r in got.iter_rows()] == sorted(model)
        straddling = sum(1 for f in slices for _ in f.iter_rows()) - got.height
        assert straddling > 0  # the merge had pairs to combine
        for sid, index, peak, mean in got.iter_rows():
            assert (peak, mean) == model[(sid, index)]  # exact: at most two values summed


def test_merged_peaks_without_cpu_columns() -> None:
    slices = [f.drop("cpu_sum_cores", "cpu_samples") for f in _slices(7)]
    got = rec._merge_slices(pl.concat(slices))
    model = _model(_slices(7))
    assert got.columns == ["series_id", "interval_index", "peak_bytes"]
    assert [(r[0], r[1], r[2]) for r in got.iter_rows()] == [(k[0], k[1], v[0]) for k, v in sorted(model.items())]


def test_merge_of_no_rows_is_empty() -> None:
    empty = _slices(1)[0].clear()
    got = rec._merge_slices(empty)
    assert got.height == 0 and got.columns == ["series_id", "interval_index", "peak_bytes", "cpu_mean_cores"]


def test_owned_copy_keeps_every_value_and_type() -> None:
    con = duckdb.connect()
    frame = pl.DataFrame(con.sql("""
        SELECT CAST(i AS INTEGER) AS series_id, CAST(i * 7 AS BIGINT) AS samples,
               TIMESTAMP '2026-11-01' + to_seconds(i) AS first_ts,
               CASE WHEN i % 3 = 0 THEN NULL ELSE [i * 0.5, i * 1.5] END AS cpu_levels,
               CAST(i / 1000 AS REAL) AS cpu_max_cores
        FROM range(5000) t(i)"""))
    owned = series_parts.owned(frame)
    assert owned.schema == frame.schema
    assert owned.equals(frame)
    assert owned["cpu_levels"].null_count() == frame["cpu_levels"].null_count() > 0


def test_with_series_is_the_join_it_replaces() -> None:
    """_with_series (numpy lookups by series id) against the polars join it replaced: the intervals
    with a peak of the series in the History, each with its group and interval_end = first_ts +
    (interval_index + 1) intervals; a series not in the History (id 7 here) left out."""
    from datetime import datetime, timedelta

    merged = rec._merge_slices(pl.concat(_slices(3)))
    rng = np.random.default_rng(5)
    ids = [i for i in range(40) if i != 7]
    series = pl.DataFrame({
        "series_id": pl.Series(ids, dtype=pl.Int64),
        "group_id": pl.Series(rng.integers(0, 9, len(ids)), dtype=pl.Int64),
        "first_ts": [datetime(2026, 11, 1) + timedelta(seconds=int(s)) for s in rng.integers(0, 86_400 * 3, len(ids))],
    })
    interval = timedelta(hours=24)
    joined = merged.filter(pl.col("peak_bytes").is_not_null()).with_columns(pl.col("series_id").cast(pl.Int64)).join(
        series.select("series_id", "group_id", "first_ts"), on="series_id", how="inner").with_columns(
        (pl.col("first_ts") + pl.duration(microseconds=interval.total_seconds() * 1e6) * (pl.col("interval_index") + 1))
        .alias("interval_end")).drop("first_ts")
    got = rec._with_series(merged, series, interval)
    assert got.schema == joined.schema
    assert 7 not in got["series_id"].to_list() and got.height == joined.height > 0
    keys = ["series_id", "interval_index"]
    assert got.sort(keys).equals(joined.sort(keys))
