"""Slices outside the span of the rolled-up samples read usage_raw alone (the per-slice queries run
with store.query's raw: usage_raw_in for usage_stored_in): the span is that of the rollup rows, and
the answers are those of the union of the three tables everywhere (raw forced off)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from capplan import rollup, store
from capplan.analysis import recommend as rec
from capplan.analysis import whatif
from capplan.analysis.rollup_span import raw_only, rollup_span
from tests.analysis.cluster_builder import GiB, build_store, ctr, node, pod

T0 = datetime(2026, 3, 1)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three pods on two nodes, 5-minute samples over 4 days (one starting a day late), samples
    older than 1.5 days rolled up into hours; node n1's memory (6Gi) runs short at times."""
    rng = random.Random(11)
    rows = []
    for pod_name, node_name, late in (("a", "n1", 0), ("b", "n1", 1), ("c", "n2", 0)):
        for step in range(late * 288 + 7, 4 * 288):
            rows.append({"namespace": "ns", "pod": pod_name, "container": "app", "node": node_name,
                         "ts": T0 + timedelta(minutes=5 * step), "cpu_cores": round(rng.uniform(0, 2), 3),
                         "memory_bytes": float(rng.randint(1, 4000) * 2**20)})
    path = build_store(tmp_path_factory.mktemp("span") / "db.duckdb",
                       [node("n1", 4.0, 6 * GiB), node("n2", 4.0, 16 * GiB)],
                       [pod("ns", name, on, "ReplicaSet") for name, on in (("a", "n1"), ("b", "n1"), ("c", "n2"))],
                       [ctr("ns", name, "app", 0.5, None, 1 * GiB, None) for name in ("a", "b", "c")], rows)
    con = store.open_db(path)
    with store.transaction(con):
        rollup.compact(con, raw_retention=timedelta(days=1, hours=12))
    con.close()
    return path


def test_the_span_is_that_of_the_rollup_rows(db: Path) -> None:
    con = store.open_db(db, read_only=True)
    try:
        first, last = con.execute("SELECT CAST(min(hour) AS TIMESTAMP), CAST(max(hour) AS TIMESTAMP) FROM usage_hourly").fetchone()
        oldest, newest = store.sample_range(con)
        second = timedelta(seconds=1)
        assert rollup_span(con, oldest, newest) == (first - second, last + second)
        assert rollup_span(con, last + timedelta(minutes=5), newest) is None  # raw samples only
        assert rollup_span(con, first + timedelta(hours=2), newest) == (first + timedelta(hours=2) - second, last + second)
    finally:
        con.close()


def test_raw_only_by_hand() -> None:
    span = (datetime(2026, 3, 1, 0, 0, 59), datetime(2026, 3, 2, 10, 0, 1))
    assert raw_only(None, datetime(2026, 3, 1), datetime(2026, 3, 5))
    assert raw_only(span, datetime(2026, 3, 2, 10, 0, 2), datetime(2026, 3, 3))
    assert raw_only(span, datetime(2026, 2, 28), datetime(2026, 3, 1, 0, 0, 58))
    assert not raw_only(span, datetime(2026, 3, 2, 10, 0, 1), datetime(2026, 3, 3))  # touches its end
    assert not raw_only(span, datetime(2026, 2, 28), datetime(2026, 3, 1, 0, 0, 59))
    assert not raw_only(span, datetime(2026, 3, 1, 12), datetime(2026, 3, 1, 13))  # inside


def _recorded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the queries run, `NAME (raw)` for those run on usage_raw alone."""
    names: list[str] = []
    query = store.query

    def recording(con, name, params=None, *, raw=False):  # type: ignore[no-untyped-def]
        names.append(f"{name} (raw)" if raw else name)
        return query(con, name, params, raw=raw)

    monkeypatch.setattr(store, "query", recording)
    return names


@pytest.mark.parametrize("name", ["recommend_memory_peaks", "recommend_daily_stats"])
def test_interval_statistics_are_those_of_the_union_everywhere(db: Path, name: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    con = store.open_db(db, read_only=True)
    try:
        start, end = store.sample_range(con)
        first = con.execute("SELECT series_id, min(ts) AS first_ts FROM usage_samples GROUP BY series_id").pl()
        staged = first.select(pl.col("series_id").cast(pl.Int32),
                              (pl.col("first_ts").dt.epoch("us").cast(pl.Float64) / 1e6).alias("first_s"))
        with store.staged_table(con, "_rec_first", staged):
            names = _recorded(monkeypatch)
            got = rec._interval_stats(con, name, start, end, first["first_ts"].min())
            assert f"{name}_stored (raw)" in names and f"{name}_stored" in names  # both kinds of slice
            monkeypatch.setattr(rec, "raw_only", lambda span, lo, hi: False)
            union = rec._interval_stats(con, name, start, end, first["first_ts"].min())
        assert got.height > 3 * 3 and got.equals(union)
    finally:
        con.close()


def test_whatif_peaks_are_those_of_the_union_everywhere(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    placement = pl.DataFrame({"namespace": ["ns"] * 3, "pod": ["a", "b", "c"], "node": ["x", "y", "x"]})
    con = store.open_db(db, read_only=True)
    try:
        start, end = store.sample_range(con)
        names = _recorded(monkeypatch)
        monkeypatch.setattr(whatif, "day_slices", lambda con, lo, hi: [
            (max(lo, T0 + timedelta(days=d)), min(hi, T0 + timedelta(days=d + 1, microseconds=-1))) for d in range(5)])
        got = whatif.peak_memory(con, placement, start, end)
        assert "whatif_peak_memory (raw)" in names and "whatif_peak_memory" in names
        monkeypatch.setattr(whatif, "raw_only", lambda span, lo, hi: False)
        union = whatif.peak_memory(con, placement, start, end)
    finally:
        con.close()
    assert got["node"].to_list() == ["x", "y"] and got.equals(union)


@pytest.mark.parametrize("days", [1, 4], ids=["raw samples only", "raw and rollups"])
def test_eviction_is_that_of_the_union_everywhere(db: Path, days: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from capplan.analysis import eviction
    from capplan.analysis.eviction import analysis

    con = store.open_db(db, read_only=True)
    try:
        options = eviction.EvictionOptions(window=timedelta(days=days))
        names = _recorded(monkeypatch)
        got = eviction.eviction_report(con, options)
        raw = {"pod_last_seen (raw)", "pod_memory_at_moments (raw)"}
        assert raw <= set(names) if days == 1 else not raw & set(names)
        monkeypatch.setattr(analysis, "raw_only", lambda span, lo, hi: False)
        union = eviction.eviction_report(con, options)
    finally:
        con.close()
    assert got.pods.height == 3 and got.pods["evicted_moments"].sum() > 0 and got.pods.equals(union.pods)
    assert got.containers.equals(union.containers) and got.nodes.equals(union.nodes)
