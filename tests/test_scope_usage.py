"""The materialised daily usage figures per scope (schema 007) and the namespace sums per sample
time (schema 008) equal a brute-force recomputation.

`scope_usage_daily` holds, per cluster, UTC day and scope (the cluster, each namespace), the day's
sample times and the 95th percentile of the scope's summed usage per sample time; every writer marks
the times it touched as pending (with the node sums' ranges) and `refresh_node_usage` recomputes the
days they touch. Checked against a brute force in polars over the usage_samples view (every sample,
summed per scope and time, then per day) after an import, overlapping writes, `--replace`, a series
moving to another node, prune (by time and by namespace), compaction, a killed writer, the migration
and per cluster; before each refresh, what the forecast reads (load_usage_daily: the stored days, the
pending and partial days from the samples, the pools from the node sums) must already equal it. The
same for `namespace_usage` (every sum exact: the view's REAL cores added in a DOUBLE, KiB) and for
what the namespaces read of it (load_namespace_usage: the stored sums, pending days from the samples).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from capplan import rollup, store
from capplan.analysis.forecast import forecast_report, load_usage_daily
from capplan.analysis.namespaces import load_namespace_usage
from capplan.prune import prune
from tests.schema9 import to_schema_9

T0 = datetime(2026, 3, 1, 20)  # 20:00: the writes below start and end inside days
POOLS = pl.DataFrame({"node": ["n1", "n2", "n3"], "pool": ["big", "small", "small"]})
KEYS = ["scope_kind", "scope_name", "day"]
# DuckDB and polars interpolate the same sums: at most the last bits apart
CPU_TOLERANCE = 1e-12


def brute_force(con: duckdb.DuckDBPyConnection, pools: pl.DataFrame = POOLS,
                start: datetime | None = None, end: datetime | None = None) -> pl.DataFrame:
    """Per scope (cluster, pool, namespace) and day of [start, end]: sample times, first and last,
    and the linear 95th percentile of the per-time sums, from every sample in the view."""
    raw = con.execute(
        "SELECT u.ts, s.namespace, s.node, u.cpu_cores, u.memory_bytes FROM usage_samples AS u "
        "JOIN series AS s USING (series_id)").pl()
    if start is not None and end is not None:
        raw = raw.filter(pl.col("ts").is_between(start, end))
    # the cluster and namespaces add the view's REAL cores (as the forecast always did); pools add the
    # node sums' whole millicores
    raw = raw.with_columns(pl.col("cpu_cores").cast(pl.Float64),
                           (pl.col("cpu_cores").cast(pl.Float64) * 1000).round().cast(pl.Int64).alias("mcores"))
    with_pool = raw.join(pools, on="node", how="left")
    scoped = pl.concat([
        raw.with_columns(scope_kind=pl.lit("cluster"), scope_name=pl.lit("cluster"), by_mcores=pl.lit(False)),
        with_pool.filter(pl.col("pool").is_not_null()).with_columns(
            scope_kind=pl.lit("pool"), scope_name=pl.col("pool"), by_mcores=pl.lit(True)),
        raw.with_columns(scope_kind=pl.lit("namespace"), scope_name=pl.col("namespace"), by_mcores=pl.lit(False)),
    ], how="diagonal_relaxed")
    sums = scoped.group_by("scope_kind", "scope_name", "ts").agg(
        pl.when(pl.col("by_mcores").first()).then(pl.col("mcores").sum() / 1000).otherwise(pl.col("cpu_cores").sum())
        .alias("cpu"), pl.col("memory_bytes").sum().cast(pl.Float64).alias("memory"))
    return sums.group_by("scope_kind", "scope_name", pl.col("ts").dt.date().alias("day")).agg(
        pl.len().alias("sample_times"), pl.col("ts").min().alias("first_ts"), pl.col("ts").max().alias("last_ts"),
        pl.col("cpu").quantile(0.95, interpolation="linear"), pl.col("memory").quantile(0.95, interpolation="linear"),
    ).sort(KEYS)


def brute_namespace_sums(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """namespace, ts, cpu, memory: every sample in the view summed per namespace and time (CPU the
    view's REAL cores as doubles, memory in bytes)."""
    raw = con.execute("SELECT s.namespace, u.ts, u.cpu_cores, u.memory_bytes FROM usage_samples AS u "
                      "JOIN series AS s USING (series_id)").pl()
    return raw.group_by("namespace", "ts").agg(
        pl.col("cpu_cores").cast(pl.Float64).sum().alias("cpu"), pl.col("memory_bytes").sum().alias("memory"),
    ).sort("namespace", "ts")


def stored_namespace_sums(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return con.execute("SELECT namespace, ts, cpu_cores AS cpu, memory_kib * 1024 AS memory FROM namespace_usage").pl(
    ).sort("namespace", "ts")


def assert_namespace_sums(got: pl.DataFrame, want: pl.DataFrame) -> None:
    """The same sums, exactly: integer bytes, and doubles that hold every partial sum exactly."""
    assert got.select("namespace", "ts").to_dicts() == want.select("namespace", "ts").to_dicts()
    assert got["memory"].to_list() == want["memory"].to_list()
    assert got["cpu"].to_list() == want["cpu"].to_list()


def assert_namespace_usage(con: duckdb.DuckDBPyConnection, start: datetime | None = None,
                           end: datetime | None = None) -> None:
    """What the namespaces read over [start, end] (default: every sample) equals the count, p95 and
    max of the brute-force sums, pending days or not."""
    if start is None or end is None:
        start, end = store.sample_range(con)
    sums = brute_namespace_sums(con).filter(pl.col("ts").is_between(start, end))
    want = sums.group_by("namespace").agg(
        pl.len().alias("points"), pl.col("cpu").quantile(0.95, interpolation="linear").alias("cpu_p95"),
        pl.col("cpu").max().alias("cpu_max"),
        pl.col("memory").cast(pl.Float64).quantile(0.95, interpolation="linear").alias("memory_p95"),
        pl.col("memory").max().alias("memory_max")).sort("namespace")
    got = load_namespace_usage(con, start, end)
    assert got["namespace"].to_list() == want["namespace"].to_list()
    assert got["usage_points"].to_list() == want["points"].to_list()
    assert got["cpu_usage_max_cores"].to_list() == want["cpu_max"].to_list()
    assert [int(v) for v in got["memory_usage_max_bytes"].to_list()] == want["memory_max"].to_list()
    assert got["cpu_usage_p95_cores"].to_list() == pytest.approx(want["cpu_p95"].to_list(), abs=CPU_TOLERANCE)
    assert got["memory_usage_p95_bytes"].to_list() == pytest.approx(want["memory_p95"].to_list(), rel=1e-14)


def stored_table(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return con.execute(
        "SELECT scope_kind, scope_name, day, sample_times, first_ts, last_ts, cpu_cores_p95 AS cpu, "
        "memory_bytes_p95 AS memory FROM scope_usage_daily").pl().sort(KEYS)


def read_by_forecast(con: duckdb.DuckDBPyConnection, start: datetime | None = None,
                     end: datetime | None = None) -> pl.DataFrame:
    """What the forecast reads over [start, end] (default: every sample), pending days included."""
    if start is None or end is None:
        start, end = store.sample_range(con)
    return load_usage_daily(con, start, end, POOLS).sort(KEYS)


def assert_same(got: pl.DataFrame, want: pl.DataFrame, bounds: bool = True) -> None:
    assert got.select(KEYS).to_dicts() == want.select(KEYS).to_dicts()
    assert got["sample_times"].to_list() == want["sample_times"].to_list()
    if bounds:
        assert got["first_ts"].to_list() == want["first_ts"].to_list()
        assert got["last_ts"].to_list() == want["last_ts"].to_list()
    # the same sums (exact integers), interpolated by DuckDB and by polars: at most the last bit apart
    assert got["memory"].to_list() == pytest.approx(want["memory"].to_list(), rel=1e-14)
    assert got["cpu"].to_list() == pytest.approx(want["cpu"].to_list(), abs=CPU_TOLERANCE)


def assert_current(con: duckdb.DuckDBPyConnection) -> None:
    """The forecast reads the brute-force figures now; after a refresh, the table holds them."""
    want = brute_force(con)
    assert_same(read_by_forecast(con), want, bounds=False)
    assert_namespace_usage(con)
    store.refresh_node_usage(con)
    assert store.fetch_row(con, "SELECT count(*) FROM scope_usage_pending")[0] == 0
    assert_same(stored_table(con), want.filter(pl.col("scope_kind") != "pool"))
    assert_same(read_by_forecast(con), want, bounds=False)
    assert_namespace_sums(stored_namespace_sums(con), brute_namespace_sums(con))
    assert_namespace_usage(con)


def frame(rows: list[tuple[str, str, str, datetime, float, float]]) -> pl.DataFrame:
    """rows of (pod, container, node, ts, cores, bytes) in namespace ns (pod p9: namespace other)."""
    return pl.DataFrame({
        "namespace": ["other" if r[0] == "p9" else "ns" for r in rows], "pod": [r[0] for r in rows],
        "container": [r[1] for r in rows], "node": [r[2] for r in rows], "ts": [r[3] for r in rows],
        "cpu_cores": [r[4] for r in rows], "memory_bytes": [r[5] for r in rows],
    })


def random_rows(pods: dict[tuple[str, str], str], steps: range, seed: int) -> list:
    rng = random.Random(seed)
    return [(pod, container, node, T0 + timedelta(minutes=5 * step), rng.uniform(0, 4), float(rng.randint(2**20, 2**33)))
            for (pod, container), node in pods.items() for step in steps]


def test_the_imported_sample_is_materialised(sample_db_readonly: Path) -> None:
    con = store.open_db(sample_db_readonly, read_only=True)
    try:
        assert store.fetch_row(con, "SELECT count(*) FROM scope_usage_pending")[0] == 0
        want = brute_force(con).filter(pl.col("scope_kind") != "pool")
        assert want.height > 50 and want["day"].n_unique() >= 14
        assert_same(stored_table(con), want)
        assert_namespace_sums(stored_namespace_sums(con), brute_namespace_sums(con))
        assert_namespace_usage(con)
    finally:
        con.close()


def test_writes_replace_moves_prune_and_compaction_keep_it_current(tmp_path: Path) -> None:
    con = store.open_db(tmp_path / "db.duckdb")
    # a pod on no node counts for the cluster and its namespace only
    pods = {("p1", "a"): "n1", ("p1", "b"): "n1", ("p2", "a"): "n2", ("p9", "a"): "n1", ("p5", "a"): ""}
    with store.transaction(con):
        store.write_usage(con, frame(random_rows(pods, range(0, 600), seed=1)))
        # the day before: only p5, on no node (so no node sums there)
        store.write_usage(con, frame(random_rows({("p5", "a"): ""}, range(-200, 0), seed=13)))
    assert store.fetch_row(con, "SELECT count(*) FROM scope_usage_pending")[0] > 0
    assert store.fetch_row(con, "SELECT count(*) FROM scope_usage_daily")[0] == 0
    assert_current(con)
    assert stored_table(con)["day"].n_unique() == 3  # 03:20 on day 1 (p5 only until 20:00) to 22:00 on day 3
    # an overlapping write adds the new times only; a conflicting one changes nothing without --replace
    with store.transaction(con):
        store.write_usage(con, frame(random_rows(pods, range(500, 900), seed=2)))
    assert_current(con)
    # --replace: the stored values of 100 times change
    with store.transaction(con):
        written = store.ingest_usage(con, frame(random_rows(pods, range(300, 400), seed=3)), replace=True)
    assert written.replaced > 0
    assert_current(con)
    # a container first seen without a node, then on n2: its earlier samples now count for n2's pool
    with store.transaction(con):
        store.write_usage(con, frame(random_rows({("p3", "a"): ""}, range(0, 400), seed=4)))
    assert_current(con)
    with store.transaction(con):
        store.write_usage(con, frame(random_rows({("p3", "a"): "n2"}, range(400, 500), seed=5)))
    assert_current(con)
    # p2 moves from n2 to n3 (both pool small), p1's b from n1 to n2 (big to small)
    with store.transaction(con):
        store.write_usage(con, frame(random_rows({("p2", "a"): "n3", ("p1", "b"): "n2"}, range(900, 950), seed=6)))
    assert_current(con)
    # prune by namespace (the day figures of ns stay, other's go), then by time on both ends
    prune(con, before=T0 + timedelta(days=1), namespaces=["other"])
    assert_current(con)
    prune(con, before=T0 + timedelta(hours=5), after=T0 + timedelta(minutes=5 * 930))
    assert_current(con)
    # a prune where only node-less samples lie before the bound (no node sums to bound the range)
    assert store.fetch_row(con, "SELECT count(*) FROM node_usage WHERE ts < $t", {"t": T0})[0] == 0
    prune(con, before=T0 - timedelta(hours=4))
    assert_current(con)
    # compaction: raw samples older than a day become hourly rows stamped at the hour, older ones daily
    with store.transaction(con):
        summary = rollup.compact(con, raw_retention=timedelta(days=1), daily_after=timedelta(days=2))
    assert summary.raw_samples_rolled > 0 and summary.hourly_rows_rolled > 0
    assert_current(con)
    con.close()


def test_an_hour_written_into_a_day_recomputes_that_hours_namespace_sums_only(tmp_path: Path) -> None:
    """An hourly collect's write: the namespace sums of its hour are computed again and the rest of
    the day's stand (the same rows, DuckDB row ids unchanged), while the day's figures are of the
    whole day; everything then equals the brute force over the samples."""
    con = store.open_db(tmp_path / "db.duckdb")
    pods = {("p1", "a"): "n1", ("p2", "a"): "n2", ("p9", "a"): "n1", ("p5", "a"): ""}
    with store.transaction(con):
        store.write_usage(con, frame(random_rows(pods, range(-200, -80), seed=21)))  # 03:20-13:15 of one day
    assert_current(con)
    # (row ids of the stored rows: namespace_usage is a view of namespace_sums since schema 010)
    before = con.execute("SELECT rowid, namespace_id, ts, cpu_cores, memory_kib FROM namespace_sums").fetchall()
    assert (T0 - timedelta(minutes=5 * 200)).date() == (T0 - timedelta(minutes=5 * 69)).date()
    with store.transaction(con):
        store.write_usage(con, frame(random_rows(pods, range(-80, -68), seed=22)))  # the next hour
    store.refresh_node_usage(con)
    after = set(con.execute("SELECT rowid, namespace_id, ts, cpu_cores, memory_kib FROM namespace_sums").fetchall())
    assert set(before) <= after  # not one earlier row rewritten
    assert len(after) - len(before) == 2 * 12  # two namespaces x the hour's 12 times
    assert_current(con)
    con.close()


def test_a_killed_run_leaves_pending_days_for_readers_and_the_next_writer(tmp_path: Path) -> None:
    path = tmp_path / "db.duckdb"
    con = store.open_db(path)
    with store.transaction(con):
        store.write_usage(con, frame(random_rows({("p1", "a"): "n1", ("p2", "a"): "n2"}, range(0, 700), seed=7)))
    store.refresh_node_usage(con)
    with store.transaction(con):  # a second write, its days never refreshed: killed after its commit
        store.write_usage(con, frame(random_rows({("p1", "a"): "n1", ("p9", "a"): "n3"}, range(650, 1000), seed=8)))
    stale = stored_table(con)
    con.close()
    con = store.open_db(path, read_only=True)
    try:
        assert store.fetch_row(con, "SELECT count(*) FROM scope_usage_pending")[0] > 0
        # the stored rows are stale (no namespace other yet), what the forecast reads is not
        assert "other" not in stale["scope_name"].to_list()
        assert_same(read_by_forecast(con), brute_force(con), bounds=False)
        # a window ending mid-day and starting mid-day: partial days from the samples of the window
        lo, hi = T0 + timedelta(hours=7, minutes=2), T0 + timedelta(hours=60, minutes=1)
        assert_same(read_by_forecast(con, lo, hi), brute_force(con, start=lo, end=hi), bounds=False)
        # the namespaces too: stale stored sums are not read, pending days come from the samples
        assert_namespace_usage(con)
        assert_namespace_usage(con, lo, hi)
    finally:
        con.close()
    con = store.open_db(path)  # a writable open refreshes, a day per transaction
    try:
        assert store.fetch_row(con, "SELECT count(*) FROM scope_usage_pending")[0] == 0
        assert_same(stored_table(con), brute_force(con).filter(pl.col("scope_kind") != "pool"))
        assert_namespace_sums(stored_namespace_sums(con), brute_namespace_sums(con))
    finally:
        con.close()


def test_a_refresh_killed_between_days_keeps_the_rest_pending(tmp_path: Path) -> None:
    path = tmp_path / "db.duckdb"
    con = store.open_db(path)
    with store.transaction(con):
        store.write_usage(con, frame(random_rows({("p1", "a"): "n1", ("p9", "a"): ""}, range(0, 800), seed=9)))
    calls = 0
    original = con.execute

    class Killed(Exception):
        pass

    class Dying:  # a connection whose third day's insert never happens (the process dies there)
        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            return getattr(con, name)

        def execute(self, sql: str, *args, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal calls
            if sql.startswith("INSERT INTO scope_usage_daily"):
                calls += 1
                if calls == 3:
                    raise Killed
            return original(sql, *args, **kwargs)

    with pytest.raises(Killed):
        store.refresh_scope_usage(Dying())  # type: ignore[arg-type]
    # two whole days stored, the rest pending: readers still see the brute force
    assert stored_table(con)["day"].n_unique() == 2
    assert store.fetch_row(con, "SELECT count(*) FROM scope_usage_pending")[0] > 0
    assert_same(read_by_forecast(con), brute_force(con), bounds=False)
    # the namespace sums of the two days stored with their figures, none of the killed day's
    stored_days = set(stored_table(con)["day"].to_list())
    assert set(stored_namespace_sums(con)["ts"].dt.date().to_list()) == stored_days
    assert_namespace_sums(stored_namespace_sums(con),
                          brute_namespace_sums(con).filter(pl.col("ts").dt.date().is_in(list(stored_days))))
    assert_namespace_usage(con)
    assert store.refresh_scope_usage(con) == 2  # 20:00 + 800 x 5 min touch four days: the last two
    assert_same(stored_table(con), brute_force(con).filter(pl.col("scope_kind") != "pool"))
    assert_namespace_sums(stored_namespace_sums(con), brute_namespace_sums(con))
    con.close()


def test_a_database_from_schema_6_is_filled_by_the_migration(sample_db: Path) -> None:
    # schema 6 as today's main writes it: everything but schema 007's tables
    con = duckdb.connect(str(sample_db))
    to_schema_9(con)
    con.execute("DROP TABLE scope_usage_daily; DROP TABLE scope_usage_pending; DROP TABLE namespace_usage; "
                "DROP TABLE usage_raw_unclustered; UPDATE schema_version SET version = 6")
    con.close()
    con = store.open_db(sample_db, read_only=True)
    try:
        assert store.schema_version(con) == store.SCHEMA_VERSION == 10
        assert store.fetch_row(con, "SELECT count(*) FROM scope_usage_pending")[0] == 0
        assert_same(stored_table(con), brute_force(con).filter(pl.col("scope_kind") != "pool"))
        assert_namespace_sums(stored_namespace_sums(con), brute_namespace_sums(con))
    finally:
        con.close()


def test_a_database_from_schema_7_is_filled_by_migration_8(sample_db: Path) -> None:
    # schema 7 as today's main writes it: everything but schema 008's table
    con = duckdb.connect(str(sample_db))
    before = stored_table(con)
    to_schema_9(con)
    con.execute("DROP TABLE namespace_usage; DROP TABLE usage_raw_unclustered; UPDATE schema_version SET version = 7")
    con.close()
    con = store.open_db(sample_db, read_only=True)
    try:
        assert store.schema_version(con) == store.SCHEMA_VERSION == 10
        assert store.fetch_row(con, "SELECT count(*) FROM scope_usage_pending")[0] == 0
        # the daily figures, now computed from the namespace sums, are the ones schema 7 stored
        assert stored_table(con).equals(before)
        assert_namespace_sums(stored_namespace_sums(con), brute_namespace_sums(con))
        assert_namespace_usage(con)
    finally:
        con.close()


def test_clusters_keep_their_own_figures(tmp_path: Path) -> None:
    # two clusters with the same namespaces and nodes: each scope sees its own figures only
    con = store.open_db(tmp_path / "db.duckdb")
    with store.transaction(con):
        store.write_usage(con, frame(random_rows({("p1", "a"): "n1", ("p9", "a"): "n2"}, range(0, 300), seed=10)), cluster="a")
        store.write_usage(con, frame(random_rows({("p1", "a"): "n1", ("p3", "a"): "n1"}, range(100, 400), seed=11)), cluster="b")
    store.refresh_node_usage(con)
    assert con.execute("SELECT DISTINCT cluster FROM scope_usage_daily ORDER BY 1").fetchall() == [("a",), ("b",)]
    for cluster in ("a", "b"):
        with store.scope(con, cluster):
            want = brute_force(con)
            assert_same(stored_table(con), want.filter(pl.col("scope_kind") != "pool"))
            assert_same(read_by_forecast(con), want, bounds=False)
            assert_namespace_sums(stored_namespace_sums(con), brute_namespace_sums(con))
            assert_namespace_usage(con)
    # read whole (no scope), a namespace's sums add both clusters' (as summing every sample does)
    assert_namespace_usage(con)
    # while cluster b's new times are pending, readers in either scope still get their own figures
    with store.transaction(con):
        store.write_usage(con, frame(random_rows({("p4", "a"): "n2"}, range(50, 350), seed=12)), cluster="b")
    for cluster in ("a", "b"):
        with store.scope(con, cluster):
            assert_same(read_by_forecast(con), brute_force(con), bounds=False)
            assert_namespace_usage(con)
    assert_namespace_usage(con)
    con.close()


def test_the_forecast_from_the_table_equals_the_forecast_from_the_samples(sample_db: Path) -> None:
    # every day pending: the forecast computes every figure from the samples; the same frame
    con = store.open_db(sample_db)
    try:
        stored = forecast_report(con, timedelta(days=14))
        with store.transaction(con):
            store.mark_node_usage_pending(con, *store.sample_range(con))
        recomputed = forecast_report(con, timedelta(days=14))
        store.refresh_node_usage(con)
        again = forecast_report(con, timedelta(days=14))
    finally:
        con.close()
    assert stored.filter(pl.col("basis") == "usage").height == 16  # cluster, 2 pools, 5 namespaces x cpu, memory
    assert stored.equals(recomputed) and stored.equals(again)
