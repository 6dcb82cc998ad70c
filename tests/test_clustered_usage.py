"""Raw samples clustered in series-id blocks per complete UTC day (schema 009, store.cluster_usage).

Writers append in time order and record the span they appended (usage_raw_unclustered); the
writer's last step rewrites each complete day in store.CLUSTERED_ORDER. Checked here: the rows are
the same multiset before and after (EXCEPT ALL both ways), each complete day's rows lie in the
table (rowid order) exactly as a Python sort by (day, id // block, time, id) puts them, the
current day is left alone by hourly appends until a sample past its end arrives, a second run
does nothing, a repeated window marks nothing, a late sample has its day rewritten again, a
failure or a kill -9 in the middle leaves every day as it was or rewritten (never neither), a
file import is clustered too, migration 009 clusters a schema-8 database, and recommend answers
the same on both layouts.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from capplan import store
from capplan.analysis import recommend as rec
from capplan.analysis import series_parts
from tests.schema9 import to_schema_9

T0 = datetime(2026, 3, 1)
BLOCK = store.CLUSTER_SERIES_BLOCK
PODS = 150  # more than two blocks of series ids
STEP = timedelta(minutes=30)


def hour_frame(hour: int, pods: int = PODS, seed: int = 0) -> pl.DataFrame:
    """An hour of every pod's samples (a collector's hourly chunk), from T0 + hour hours."""
    rng = random.Random(seed * 100_003 + hour)
    rows = [(f"p{p:03d}", T0 + timedelta(hours=hour) + k * STEP, rng.randint(0, 4000) / 1000, float(rng.randint(2**20, 2**32)))
            for k in range(int(timedelta(hours=1) / STEP)) for p in range(pods)]
    return pl.DataFrame({"namespace": ["ns"] * len(rows), "pod": [r[0] for r in rows], "container": ["c"] * len(rows),
                         "node": ["n1"] * len(rows), "ts": [r[1] for r in rows], "cpu_cores": [r[2] for r in rows],
                         "memory_bytes": [r[3] for r in rows]})


def append_hours(con: duckdb.DuckDBPyConnection, hours: range, seed: int = 0) -> None:
    """Each hour its own commit, then the writer's last steps, as the collector's hourly run does."""
    for hour in hours:
        with store.transaction(con):
            store.write_usage(con, hour_frame(hour, seed=seed))
        store.refresh_node_usage(con)
        store.cluster_usage(con)


def physical(con: duckdb.DuckDBPyConnection) -> list[tuple[int, datetime]]:
    """(series id, ts) of every raw sample in the table's own order."""
    return [(int(r[0]), r[1]) for r in con.execute(
        "SELECT series_id, CAST(ts AS TIMESTAMP) FROM usage_raw ORDER BY rowid").fetchall()]


def assert_layout(con: duckdb.DuckDBPyConnection, clustered_days: set, pending_days: set) -> None:
    """The days in `clustered_days` lie contiguously in the clustered order (sorted by polars); those
    in `pending_days` are recorded in usage_raw_unclustered; every day is one or the other."""
    rows = pl.DataFrame(con.sql("SELECT series_id, CAST(ts AS TIMESTAMP) AS ts FROM usage_raw ORDER BY rowid")
                        ).with_row_index("position").with_columns(pl.col("ts").dt.date().alias("day"))
    pending = {d for lo, hi in con.execute("SELECT lo, hi FROM usage_raw_unclustered").fetchall()
               for d in (lo.date() + timedelta(days=i) for i in range((hi.date() - lo.date()).days + 1))}
    assert set(rows["day"].unique()) == clustered_days | pending_days
    assert pending == pending_days
    for day in clustered_days:
        got = rows.filter(pl.col("day") == day)
        assert got["position"].max() - got["position"].min() == got.height - 1, f"{day} is not contiguous"
        want = got.sort(pl.col("series_id") // BLOCK, "ts", "series_id")
        assert got.select("series_id", "ts").equals(want.select("series_id", "ts")), f"{day} is not clustered"


def snapshot(con: duckdb.DuckDBPyConnection, name: str) -> None:
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT series_id, ts, cpu_mcores, memory_kib FROM usage_raw")


def assert_same_rows(con: duckdb.DuckDBPyConnection, name: str) -> None:
    for a, b in ((name, "usage_raw"), ("usage_raw", name)):
        extra = con.execute(f"SELECT count(*) FROM (SELECT series_id, ts, cpu_mcores, memory_kib FROM {a} "
                            f"EXCEPT ALL SELECT series_id, ts, cpu_mcores, memory_kib FROM {b})").fetchone()[0]
        assert extra == 0, f"{extra} rows of {a} not in {b}"


def days(n: int) -> set:
    return {(T0 + timedelta(days=i)).date() for i in range(n)}


def test_hourly_appends_cluster_each_day_once_when_it_completes(tmp_path: Path) -> None:
    con = store.open_db(tmp_path / "db.duckdb")
    try:
        append_hours(con, range(0, 23))
        assert_layout(con, set(), days(1))  # the day is not complete: left in time order
        before = physical(con)
        append_hours(con, range(23, 24))
        assert physical(con) == before + physical(con)[len(before):]  # still only appended to
        assert_layout(con, set(), days(1))
        with store.transaction(con):
            store.write_usage(con, hour_frame(24))
        snapshot(con, "_before")
        assert store.cluster_usage(con) == 1  # the first sample past midnight completes day 1
        assert_same_rows(con, "_before")
        assert_layout(con, days(1), {T0.date() + timedelta(days=1)})
        append_hours(con, range(25, 60))
        assert_layout(con, days(2), {T0.date() + timedelta(days=2)})
        snapshot(con, "_before")
        order = physical(con)
        assert store.cluster_usage(con) == 0  # idempotent: nothing pending is complete
        assert physical(con) == order
        assert_same_rows(con, "_before")
    finally:
        con.close()


def test_rows_are_the_same_and_repeats_and_late_samples(tmp_path: Path) -> None:
    con = store.open_db(tmp_path / "db.duckdb")
    try:
        for hour in range(0, 50):  # two days and two hours, committed without the writer's last step
            with store.transaction(con):
                store.write_usage(con, hour_frame(hour))
        snapshot(con, "_before")
        assert store.cluster_usage(con) == 2
        assert_same_rows(con, "_before")
        assert_layout(con, days(2), {T0.date() + timedelta(days=2)})
        # an overlapping window: day 1's samples again (identical, skipped) with day 3's next hour
        order = physical(con)
        with store.transaction(con):
            assert store.write_usage(con, pl.concat([hour_frame(20), hour_frame(50)])) == hour_frame(50).height
        assert physical(con)[:len(order)] == order
        assert store.cluster_usage(con) == 0  # day 1 was not marked again
        assert_layout(con, days(2), {T0.date() + timedelta(days=2)})
        # a late sample of day 1 (a new pod): the day is rewritten once more, with it in its place
        late = hour_frame(7, pods=PODS + 1).filter(pl.col("pod") == f"p{PODS:03d}")
        with store.transaction(con):
            assert store.write_usage(con, late) == late.height
        snapshot(con, "_before")
        assert store.cluster_usage(con) == 1
        assert_same_rows(con, "_before")
        assert_layout(con, days(2), {T0.date() + timedelta(days=2)})
    finally:
        con.close()


def test_a_failure_inside_a_day_leaves_it_as_it_was(tmp_path: Path, monkeypatch) -> None:
    con = store.open_db(tmp_path / "db.duckdb")
    try:
        for hour in range(0, 73):
            with store.transaction(con):
                store.write_usage(con, hour_frame(hour))
        snapshot(con, "_before")
        order = physical(con)
        real = store.load_sql
        calls = {"n": 0}

        def failing(name: str) -> str:
            if name == "usage_cluster_day":
                calls["n"] += 1
                if calls["n"] == 2:  # the second day, after the first committed: its insert fails
                    # after its rows were deleted (text does not convert to a series id)
                    return ("SELECT 'x' || series_id AS series_id, ts, cpu_mcores, memory_kib FROM usage_raw "
                            "WHERE ts BETWEEN CAST($lo AS TIMESTAMP_S) AND CAST($hi AS TIMESTAMP_S) AND $block > 0")
            return real(name)

        monkeypatch.setattr(store, "load_sql", failing)
        with pytest.raises(duckdb.ConversionException):
            store.cluster_usage(con)
        monkeypatch.setattr(store, "load_sql", real)
        assert_same_rows(con, "_before")
        assert_layout(con, days(1), days(4) - days(1))
        assert sorted(physical(con)) == sorted(order)
        assert store.cluster_usage(con) == 2
        assert_same_rows(con, "_before")
        assert_layout(con, days(3), {T0.date() + timedelta(days=3)})
    finally:
        con.close()


CHILD = """
import sys, time
from capplan import store
con = store.open_db(sys.argv[1], refresh_sums=False)
print("ready", flush=True)
t0 = time.perf_counter()
store.cluster_usage(con)
print(time.perf_counter() - t0, flush=True)
con.close()
"""


def bulk_frame(day_count: int, pods: int) -> pl.DataFrame:
    """`pods` pods every 5 minutes for `day_count` days, plus one sample past the last day."""
    times = pl.datetime_range(T0, T0 + timedelta(days=day_count), timedelta(minutes=5), eager=True)
    frame = pl.DataFrame({"ts": times}).join(pl.DataFrame({"pod": [f"p{p:04d}" for p in range(pods)]}), how="cross")
    n = frame.height
    return frame.with_columns(
        namespace=pl.lit("ns"), container=pl.lit("c"), node=pl.lit("n1"),
        cpu_cores=(pl.int_range(n) * 7919 % 4001) / 1000.0,
        memory_bytes=(pl.int_range(n) * 104_729 % 2**30 + 2**20).cast(pl.Float64))


def run_child(db: Path, kill_after: float | None) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(db)], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "CAPPLAN_DUCKDB_THREADS": "1"})
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    if kill_after is not None:
        time.sleep(kill_after)
        child.send_signal(signal.SIGKILL)
    return child


def test_kill_9_while_clustering_leaves_each_day_as_it_was_or_rewritten(tmp_path: Path) -> None:
    base = tmp_path / "base.duckdb"
    con = store.open_db(base)
    with store.transaction(con):  # six days and a sample, in time order, not clustered yet
        store.write_usage(con, bulk_frame(6, 240))
    snapshot(con, "_reference")
    con.execute(f"ATTACH '{tmp_path / 'reference.duckdb'}' AS ref")
    con.execute("CREATE TABLE ref.rows AS SELECT * FROM _reference")
    con.execute("DETACH ref")
    con.close()
    # how long an undisturbed run takes (not judged: the kills are spread over it)
    whole = tmp_path / "whole.duckdb"
    whole.write_bytes(base.read_bytes())
    child = run_child(whole, None)
    assert child.stdout is not None
    seconds = float(child.stdout.readline())
    print(f"undisturbed clustering: {seconds:.2f} s")
    assert child.wait() == 0
    rng = random.Random(14)
    for trial in range(3):
        db = tmp_path / f"kill{trial}.duckdb"
        db.write_bytes(base.read_bytes())
        run_child(db, rng.uniform(0.0, seconds)).wait()
        con = store.open_db(db, refresh_sums=False)
        try:
            con.execute(f"ATTACH '{tmp_path / 'reference.duckdb'}' AS ref (READ_ONLY)")
            con.execute("CREATE TEMP TABLE _ref AS SELECT * FROM ref.rows")
            assert_same_rows(con, "_ref")
            pending = con.execute("SELECT lo, hi FROM usage_raw_unclustered").fetchall()
            pending_days = {d for lo, hi in pending
                            for d in (lo.date() + timedelta(days=i) for i in range((hi.date() - lo.date()).days + 1))}
            assert_layout(con, days(7) - pending_days, pending_days)
            store.cluster_usage(con)  # the next writer finishes the rest
            assert_same_rows(con, "_ref")
            assert_layout(con, days(6), {T0.date() + timedelta(days=6)})
        finally:
            con.close()


def test_a_database_of_schema_8_is_clustered_by_the_first_writer_after_migration_9(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from capplan.cli import app

    path = tmp_path / "db.duckdb"
    con = store.open_db(path)
    for hour in range(0, 52):
        with store.transaction(con):
            store.write_usage(con, hour_frame(hour))
    # schema 8 as today's main writes it: the samples in time order, no schema 009 table (nor 010's)
    to_schema_9(con)
    con.execute("DROP TABLE usage_raw_unclustered; UPDATE schema_version SET version = 8")
    snapshot(con, "_before")
    con.execute(f"ATTACH '{tmp_path / 'reference.duckdb'}' AS ref")
    con.execute("CREATE TABLE ref.rows AS SELECT * FROM _before")
    con.execute("DETACH ref")
    before = physical(con)
    assert before == sorted(before, key=lambda r: (r[1], r[0]))
    con.close()
    con = store.open_db(path, read_only=True)  # the first open migrates (as a writer): no sample moves
    try:
        assert store.schema_version(con) == store.SCHEMA_VERSION
        assert physical(con) == before
        assert_layout(con, set(), days(3))  # the whole span is recorded
    finally:
        con.close()
    # prune --dry-run changes nothing; prune --compact (nothing old enough to roll up) clusters
    runner = CliRunner()
    result = runner.invoke(app, ["prune", "--compact", "--dry-run", "--db", str(path)])
    assert result.exit_code == 0, result.output
    con = store.open_db(path, read_only=True)
    try:
        assert physical(con) == before
    finally:
        con.close()
    result = runner.invoke(app, ["prune", "--compact", "--db", str(path)])
    assert result.exit_code == 0 and "rolled up: 0 raw samples" in result.output, result.output
    con = store.open_db(path, read_only=True)
    try:
        con.execute(f"ATTACH '{tmp_path / 'reference.duckdb'}' AS ref (READ_ONLY)")
        con.execute("CREATE TEMP TABLE _ref AS SELECT * FROM ref.rows")
        assert_same_rows(con, "_ref")
        assert_layout(con, days(2), {T0.date() + timedelta(days=2)})
    finally:
        con.close()


def test_a_file_import_is_clustered(tmp_path: Path) -> None:
    from capplan.importer import import_path

    frame = pl.concat([hour_frame(h, seed=3) for h in range(0, 60)])
    path = tmp_path / "usage.csv"
    frame.rename({"ts": "timestamp"}).with_columns(pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%SZ")).write_csv(path)
    db = tmp_path / "db.duckdb"
    import_path(path, db)
    con = store.open_db(db, read_only=True)
    try:
        # the import sorts each day of the file straight into the clustered order, its last day too
        # (capplan.file_ingest.write_staged): nothing is left for cluster_usage
        assert_layout(con, days(3), set())
        stored = con.execute("SELECT s.pod, CAST(u.ts AS TIMESTAMP) AS ts, u.cpu_mcores, u.memory_kib FROM usage_raw AS u "
                             "JOIN series AS s USING (series_id) ORDER BY s.pod, ts").pl()
    finally:
        con.close()
    want = frame.select("pod", "ts", (pl.col("cpu_cores") * 1000).round(0).cast(pl.Int32).alias("cpu_mcores"),
                        (pl.col("memory_bytes") / 1024).round(0).cast(pl.Int32).alias("memory_kib")).sort("pod", "ts")
    assert stored.equals(want)


def test_id_ranges_cover_every_id_once_cut_at_blocks() -> None:
    rng = random.Random(3)
    for _ in range(500):
        first = rng.randint(0, 3000)
        last = first + rng.randint(-1, 20_000)
        parts = rng.randint(1, 40)
        block = rng.choice([1, 2, 7, 64, 128])
        ranges = series_parts.id_ranges(first, last, parts, block)
        assert 1 <= len(ranges) <= parts
        ids = [i for lo, hi in ranges for i in range(lo, hi + 1)]
        assert ids == list(range(first, last + 1))
        for lo, _hi in ranges[1:]:
            assert lo % block == 0
        blocks = last // block - first // block + 1
        if last >= first:
            assert len(ranges) == min(parts, blocks)


@pytest.fixture(scope="module")
def both_layouts(tmp_path_factory) -> tuple[Path, Path]:
    """The same samples (three days and four hours, a day per commit) in time order, nothing
    clustered, and with the complete days clustered."""
    frames = [pl.concat([hour_frame(h, seed=5) for h in range(start, min(start + 24, 76))]) for start in range(0, 76, 24)]
    paths = []
    for clustered in (False, True):
        path = tmp_path_factory.mktemp("layouts") / f"{clustered}.duckdb"
        con = store.open_db(path)
        for f in frames:
            with store.transaction(con):
                store.write_usage(con, f)
        if clustered:
            assert store.cluster_usage(con) == 3
        else:
            con.execute("DELETE FROM usage_raw_unclustered")
        con.close()
        paths.append(path)
    return paths[0], paths[1]


@pytest.mark.parametrize("strategy", ["simple", "vpa", "auto", "max-target"])
def test_recommend_answers_the_same_on_both_layouts(both_layouts: tuple[Path, Path], strategy: str, monkeypatch) -> None:
    """The same recommend table from either layout, with the percentiles in several parts (parts of
    60 series' samples: three ranges of ids)."""
    monkeypatch.setattr(rec, "PERCENTILE_SAMPLES_PER_PART", 60 * 76 * 2)
    answers = []
    for path in both_layouts:
        con = store.open_db(path, read_only=True)
        try:
            answers.append(rec.recommend(con, strategy, window=timedelta(days=30)))
        finally:
            con.close()
    assert answers[0].height == PODS and answers[0].equals(answers[1])
