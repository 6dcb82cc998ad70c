"""eviction --usage p95's per-pod working set (queries/pod_memory_stats.sql through
eviction.analysis.pod_memory_stats, in parts of the pods): each pod's p95, peak and latest of the
sum over its containers per sample time, checked against numpy on the samples; several parts give
the same rows as one."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from capplan import rollup, store
from capplan.analysis.eviction.analysis import pod_memory_stats
from capplan.analysis.rollup_span import rollup_span, stored_bounds
from tests.analysis.cluster_builder import GiB, MiB, build_store, ctr, node, pod

T0 = datetime(2026, 3, 1)
STEPS = 3 * 288  # three days of 5-minute samples
# 70 pods, more than a stored block of 64 series (store.CLUSTER_SERIES_BLOCK): parts are cut at
# those blocks, so small parts give several. Every 5th pod has a sidecar whose samples miss some
# times; every 7th pod runs on n2.
PODS = [(f"p{i:02d}", "n2" if i % 7 == 0 else "n1", ("app", "side") if i % 5 == 0 else ("app",)) for i in range(70)]


def _samples() -> list[dict]:
    rng = random.Random(5)
    rows = []
    for name, on, containers in PODS:
        for container in containers:
            for step in range(STEPS):
                if container == "side" and step % 3 == 1:
                    continue
                rows.append({"namespace": "ns", "pod": name, "container": container, "node": on,
                             "ts": T0 + timedelta(minutes=5 * step), "cpu_cores": 0.1,
                             "memory_bytes": float(rng.randint(1, 3000) * MiB)})
    return rows


def _build(path: Path, rows: list[dict]) -> Path:
    return build_store(path, [node("n1", 64.0, 512 * GiB), node("n2", 64.0, 512 * GiB)],
                       [pod("ns", name, on, "ReplicaSet") for name, on, _ in PODS],
                       [ctr("ns", name, c, 0.1, None, 1 * GiB, None) for name, _, cs in PODS for c in cs], rows)


def _expected(samples: list[tuple[str, str, datetime, int]]) -> dict[tuple[str, str], tuple[float, int, int, datetime]]:
    """Per (node, pod) from (node, pod, ts, bytes) samples: numpy's linear p95 (quantile_cont's),
    the peak and the latest of the per-time sums, and the last time."""
    sums: dict[tuple[str, str], dict[datetime, int]] = defaultdict(lambda: defaultdict(int))
    for on, name, ts, value in samples:
        sums[(on, name)][ts] += value
    out = {}
    for key, per_ts in sums.items():
        times = sorted(per_ts)
        values = np.array([per_ts[t] for t in times], dtype=np.float64)
        out[key] = (float(np.percentile(values, 95)), int(values.max()), per_ts[times[-1]], times[-1])
    return out


def _actual(frame: pl.DataFrame) -> dict[tuple[str, str], tuple[float, int, int, datetime]]:
    assert frame["namespace"].unique().to_list() == ["ns"]
    return {(r["node"], r["pod"]): (r["working_set_p95_bytes"], r["working_set_peak_bytes"],
                                    r["working_set_latest_bytes"], r["last_seen"]) for r in frame.iter_rows(named=True)}


def _stats(path: Path, samples_per_part: int) -> pl.DataFrame:
    con = store.open_db(path, read_only=True)
    try:
        start, end = store.analysis_window(con, timedelta(days=30))
        return pod_memory_stats(con, start, end, rollup_span(con, start, end), samples_per_part)
    finally:
        con.close()


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return _samples()


@pytest.fixture(scope="module")
def raw_db(tmp_path_factory: pytest.TempPathFactory, rows: list[dict]) -> Path:
    return _build(tmp_path_factory.mktemp("podstats") / "raw.duckdb", rows)


@pytest.fixture(scope="module")
def rolled_db(tmp_path_factory: pytest.TempPathFactory, rows: list[dict]) -> Path:
    """The same samples, those older than 1.5 days rolled up into hours (max memory per hour)."""
    path = _build(tmp_path_factory.mktemp("podstats") / "rolled.duckdb", rows)
    con = store.open_db(path)
    with store.transaction(con):
        rollup.compact(con, raw_retention=timedelta(days=1, hours=12))
    con.close()
    return path


def test_p95_peak_latest_are_numpys_on_the_samples(raw_db: Path, rows: list[dict]) -> None:
    expected = _expected([(r["node"], r["pod"], r["ts"], int(r["memory_bytes"])) for r in rows])
    actual = _actual(_stats(raw_db, 10**9))
    assert actual.keys() == expected.keys() and len(expected) == len(PODS)
    for key, (p95, peak, latest, last) in expected.items():
        assert actual[key][0] == pytest.approx(p95, rel=1e-12), key
        assert actual[key][1:] == (peak, latest, last), key
    # the pods with a sidecar sum it: their sums differ from their app container's alone
    app_only = _expected([(r["node"], r["pod"], r["ts"], int(r["memory_bytes"])) for r in rows if r["container"] == "app"])
    assert all(app_only[("n1", "p05")][i] != expected[("n1", "p05")][i] for i in range(3))


def test_rolled_up_hours_count_as_samples(rolled_db: Path) -> None:
    """Across usage_raw and usage_hourly: numpy on the stored rows as a plain SELECT reads them."""
    con = store.open_db(rolled_db, read_only=True)
    try:
        hourly = con.execute("SELECT count(*) FROM usage_hourly").fetchone()[0]
        stored = con.execute(
            "SELECT s.node, s.pod, CAST(u.ts AS TIMESTAMP), u.memory_kib FROM usage_raw u JOIN series s USING (series_id) "
            "UNION ALL SELECT s.node, s.pod, CAST(h.hour AS TIMESTAMP), h.memory_kib_max FROM usage_hourly h "
            "JOIN series s USING (series_id)").fetchall()
    finally:
        con.close()
    assert hourly > 0
    expected = _expected([(on, name, ts, int(kib) * 1024) for on, name, ts, kib in stored if kib is not None])
    actual = _actual(_stats(rolled_db, 10**9))
    assert actual.keys() == expected.keys()
    for key, (p95, peak, latest, last) in expected.items():
        assert actual[key][0] == pytest.approx(p95, rel=1e-12), key
        assert actual[key][1:] == (peak, latest, last), key


@pytest.mark.parametrize("db_name", ["raw_db", "rolled_db"])
def test_several_parts_equal_one(db_name: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    path = request.getfixturevalue(db_name)
    runs: list[dict] = []
    query = store.query

    def recording(con, name, params=None, *, raw=False):  # type: ignore[no-untyped-def]
        if name == "pod_memory_stats":
            runs.append(params)
        return query(con, name, params, raw=raw)

    monkeypatch.setattr(store, "query", recording)
    one = _stats(path, 10**9)
    assert len(runs) == 1
    runs.clear()
    several = _stats(path, 1_000)
    assert len(runs) >= 2
    assert several.equals(one)
    assert several.height == len(PODS)


def _stored_rows(path: Path) -> list[tuple[str, str, datetime, int]]:
    """(node, pod, ts, bytes) of every stored row a plain SELECT of the three tables reads."""
    con = store.open_db(path, read_only=True)
    try:
        rows = con.execute(
            "SELECT s.node, s.pod, CAST(u.ts AS TIMESTAMP), u.memory_kib FROM usage_raw u JOIN series s USING (series_id) "
            "UNION ALL SELECT s.node, s.pod, CAST(h.hour AS TIMESTAMP), h.memory_kib_max FROM usage_hourly h "
            "JOIN series s USING (series_id) "
            "UNION ALL SELECT s.node, s.pod, CAST(d.day AS TIMESTAMP), d.memory_kib_max FROM usage_daily d "
            "JOIN series s USING (series_id)").fetchall()
    finally:
        con.close()
    return [(on, name, ts, int(kib) * 1024) for on, name, ts, kib in rows if kib is not None]


def _distinct_times(path: Path) -> bool:
    con = store.open_db(path, read_only=True)
    try:
        start, end = store.analysis_window(con, timedelta(days=30))
        return bool(store.fetch_row(con, store.load_sql("stored_times_distinct"), stored_bounds(start, end))[0])
    finally:
        con.close()


@pytest.fixture(scope="module")
def overlap_db(tmp_path_factory: pytest.TempPathFactory, rows: list[dict]) -> Path:
    """rolled_db's samples, then raw samples written into hours already rolled up (a backfill before
    the next compact): p01 (one container) at the start of hours that have an hourly row, so one
    series has a raw and an hourly row of the same time."""
    path = _build(tmp_path_factory.mktemp("podstats") / "overlap.duckdb", rows)
    con = store.open_db(path)
    with store.transaction(con):
        rollup.compact(con, raw_retention=timedelta(days=1, hours=12))
    late = pl.DataFrame({"namespace": ["ns"] * 3, "pod": ["p01"] * 3, "container": ["app"] * 3, "node": ["n1"] * 3,
                         "ts": [T0 + timedelta(hours=h) for h in (2, 3, 7)], "cpu_cores": [0.1] * 3,
                         "memory_bytes": [float(4000 * MiB)] * 3})
    with store.transaction(con):
        store.write_usage(con, late)
    con.close()
    return path


def test_stored_times_distinct(raw_db: Path, rolled_db: Path, overlap_db: Path) -> None:
    """Raw samples alone, and raw samples after their rolled-up hours, have one row per series and
    time; raw samples written into rolled-up hours may not (and here do not)."""
    assert _distinct_times(raw_db) and _distinct_times(rolled_db)
    assert not _distinct_times(overlap_db)
    stored = _stored_rows(overlap_db)
    assert len({(on, name, ts) for on, name, ts, _ in stored if name == "p01"}) < sum(1 for r in stored if r[1] == "p01")


def test_a_series_with_two_rows_of_one_time_sums_them(overlap_db: Path) -> None:
    """Where a series has a raw and an hourly row of one time, the pod's sum at that time adds both,
    as it adds its containers' samples (the per-time sums, not the samples, are what the p95 is of):
    numpy on the stored rows, in one part and in several."""
    expected = _expected(_stored_rows(overlap_db))
    for per_part in (10**9, 1_000):
        actual = _actual(_stats(overlap_db, per_part))
        assert actual.keys() == expected.keys()
        for key, (p95, peak, latest, last) in expected.items():
            assert actual[key][0] == pytest.approx(p95, rel=1e-12), key
            assert actual[key][1:] == (peak, latest, last), key
    # the late samples changed p01's peak: 4000 MiB plus its hourly peak at one of those hours
    assert expected[("n1", "p01")][1] > 4000 * MiB
