"""The stored sums' refresh (store.refresh_node_usage: node_usage, namespace_usage, scope_usage_daily)
against a brute force in polars over the stored tables themselves.

The refresh groups by integer ids and reads usage_raw alone where a slice holds no rolled-up sample
(queries/node_usage_refresh.sql, namespace_usage_refresh.sql). The brute force reads usage_raw,
usage_hourly and usage_daily as they are stored, puts them together in polars (a rolled-up hour or
day counts as one sample stamped at its start: its CPU p95 and memory max, as the usage_samples view
shows them) and sums per cluster and node (each series' current node) or namespace and time. The
store here has two clusters with the same node and namespace names, a container on no node, rolled-up
hours and days beside raw samples, a series that moves node after its old samples were rolled up
(its whole span pending) and writes left pending across several refresh slices, both kinds of slice
(raw-only and with rollups) among them. Each refresh runs both ways: on one connection, and side by
side (the node sums on one connection, the namespace sums and daily figures on a second), and a side
that fails leaves what it did not write pending for the next refresh. Migration 010 (the sums by integer ids behind views of the
old names) is checked on the sample turned back into schema 9 as main wrote it (tests/schema9.py):
every row kept, and later refreshes keep the ids and number new names after them.
"""

from __future__ import annotations

import random
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from capplan import rollup, store
from tests.schema9 import to_schema_9

T0 = datetime(2026, 5, 1, 7)
STEP = timedelta(minutes=5)


def usage(cluster_pods: dict[tuple[str, str, str], str], steps: range, seed: int) -> pl.DataFrame:
    """Rows of (namespace, pod, container) -> node at T0 + 5 min x step, random usage (some NULL)."""
    rng = random.Random(seed)
    rows = [(ns, pod, container, node, T0 + STEP * step,
             None if rng.random() < 0.02 else rng.uniform(0, 3), None if rng.random() < 0.02 else float(rng.randint(2**20, 2**32)))
            for (ns, pod, container), node in cluster_pods.items() for step in steps]
    return pl.DataFrame(rows, schema={"namespace": pl.Utf8, "pod": pl.Utf8, "container": pl.Utf8, "node": pl.Utf8,
                                      "ts": pl.Datetime("us"), "cpu_cores": pl.Float64, "memory_bytes": pl.Float64},
                        orient="row")


def samples(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Every stored sample in polars: series_id, ts, cpu_mcores, memory_kib, with its series' cluster,
    node and namespace."""
    raw = con.execute("SELECT series_id, ts, cpu_mcores, memory_kib FROM usage_raw").pl()
    parts = [raw.with_columns(pl.col("ts").cast(pl.Datetime("us")))]
    for table, column in (("usage_hourly", "hour"), ("usage_daily", "day")):
        rolled = con.execute(f"SELECT series_id, {column} AS ts, cpu_mcores_p95 AS cpu_mcores, "
                             f"memory_kib_max AS memory_kib FROM {table}").pl()
        parts.append(rolled.with_columns(pl.col("ts").cast(pl.Datetime("us"))))
    series = con.execute("SELECT series_id, cluster, node, namespace FROM series").pl()
    return pl.concat(parts).join(series, on="series_id")


def brute_node_sums(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    on_nodes = samples(con).filter(pl.col("node") != "")
    sums = on_nodes.group_by("cluster", "node", "ts").agg(
        # sum() of an all-null group is 0 in polars: NULL when no sample had the value, as stored
        pl.when(pl.col("cpu_mcores").is_not_null().any()).then(pl.col("cpu_mcores").cast(pl.Int64).sum()).alias("cpu"),
        pl.when(pl.col("memory_kib").is_not_null().any()).then(pl.col("memory_kib").cast(pl.Int64).sum()).alias("memory"))
    return sorted(sums.rows())


def brute_namespace_sums(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    # CPU: each sample's cores as the view's REAL (mcores x 0.001 rounded to a float), added in a double
    cores = (pl.col("cpu_mcores").cast(pl.Float64) / 1000).cast(pl.Float32).cast(pl.Float64)
    sums = samples(con).group_by("cluster", "namespace", "ts").agg(
        pl.when(pl.col("cpu_mcores").is_not_null().any()).then(cores.sum()).alias("cpu"),
        pl.when(pl.col("memory_kib").is_not_null().any()).then(pl.col("memory_kib").cast(pl.Int64).sum()).alias("memory"))
    return sorted(sums.rows())


def stored(con: duckdb.DuckDBPyConnection, table: str, name: str, cpu: str) -> list[tuple]:
    return sorted(con.execute(f"SELECT cluster, {name}, ts, {cpu}, memory_kib FROM {table}").fetchall())


def assert_stored_equal_brute_force(con: duckdb.DuckDBPyConnection) -> None:
    assert store.fetch_row(con, "SELECT count(*) FROM node_usage_pending")[0] == 0
    assert store.fetch_row(con, "SELECT count(*) FROM scope_usage_pending")[0] == 0
    want_nodes = brute_node_sums(con)
    assert want_nodes and stored(con, "node_usage", "node", "cpu_mcores") == want_nodes
    got = stored(con, "namespace_usage", "namespace", "cpu_cores")
    want = brute_namespace_sums(con)
    assert [r[:3] + r[4:] for r in got] == [r[:3] + r[4:] for r in want]
    # a float32 per sample, rounded from a double in polars, from the exact decimal in DuckDB: the
    # same float but in a rare tie, so the sums agree to the last bits
    assert [r[3] is None for r in got] == [r[3] is None for r in want]
    assert [r[3] for r in got if r[3] is not None] == pytest.approx([r[3] for r in want if r[3] is not None],
                                                                    rel=1e-12, abs=1e-12)
    # the daily figures are taken of the stored namespace sums, per cluster: every (cluster, day) that has sums
    days = {(c, ts.date()) for c, _, ts, _, _ in got}
    assert set(con.execute("SELECT cluster, day FROM scope_usage_daily WHERE scope_kind = 'cluster'").fetchall()) == days


def side_by_side_runs(monkeypatch: pytest.MonkeyPatch, side_by_side: bool) -> list[int]:
    """Make refresh_node_usage refresh the node and scope sums side by side (on two connections)
    whenever both have a second pending, or never; the list it returns grows by one per side-by-side
    refresh."""
    monkeypatch.setattr(store, "SIDE_BY_SIDE_SECONDS", 1 if side_by_side else 10**12)
    runs: list[int] = []
    inner = store._refresh_side_by_side

    def counted(*args: Any, **kwargs: Any) -> int:
        runs.append(1)
        return inner(*args, **kwargs)

    monkeypatch.setattr(store, "_refresh_side_by_side", counted)
    return runs


@pytest.mark.parametrize("side_by_side", [False, True], ids=["one connection", "side by side"])
def test_the_refresh_equals_a_brute_force_in_polars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     side_by_side: bool) -> None:
    runs = side_by_side_runs(monkeypatch, side_by_side)
    con = store.open_db(tmp_path / "db.duckdb")
    a_pods = {("web", "p1", "c"): "n1", ("web", "p1", "d"): "n1", ("web", "p2", "c"): "n2", ("db", "p3", "c"): "n2",
              ("db", "lost", "c"): ""}  # no node: in its namespace's sums, in no node's
    b_pods = {("web", "p1", "c"): "n1", ("ops", "p4", "c"): "n1"}  # cluster b: the same names, other sums
    with store.transaction(con):
        store.write_usage(con, usage(a_pods, range(0, 3 * 288), seed=1), cluster="a")
        store.write_usage(con, usage(b_pods, range(100, 3 * 288), seed=2), cluster="b")
    store.refresh_node_usage(con)
    assert_stored_equal_brute_force(con)

    # the first two days become hourly and daily rows; new raw samples after them, not yet refreshed
    with store.transaction(con):
        summary = rollup.compact(con, raw_retention=timedelta(hours=20), daily_after=timedelta(days=2))
        assert summary.raw_samples_rolled > 0 and summary.hourly_rows_rolled > 0
        store.write_usage(con, usage(a_pods, range(3 * 288, 4 * 288), seed=3), cluster="a")
    # p2 moves from n2 to n3: all of its samples, rolled up or not, now count for n3
    with store.transaction(con):
        store.write_usage(con, usage({("web", "p2", "c"): "n3"}, range(4 * 288, 4 * 288 + 12), seed=4), cluster="a")
    assert con.execute("SELECT node FROM series WHERE cluster = 'a' AND pod = 'p2'").fetchone() == ("n3",)
    assert store.fetch_row(con, "SELECT count(*) FROM node_usage_pending")[0] > 0

    # slices of 7 hours: some hold rolled-up samples (the union), the others read usage_raw alone
    kinds = []
    load_sql = store.load_sql

    def recording(name: str, *, raw: bool = False) -> str:
        if name in ("node_usage_refresh", "namespace_usage_refresh"):
            kinds.append((name, raw))
        return load_sql(name, raw=raw)

    monkeypatch.setattr(store, "load_sql", recording)
    store.refresh_node_usage(con, timedelta(hours=7))
    assert {(n, raw) for n, raw in kinds} == {(n, raw) for n in ("node_usage_refresh", "namespace_usage_refresh")
                                              for raw in (False, True)}
    assert_stored_equal_brute_force(con)
    assert len(runs) == (2 if side_by_side else 0)
    con.close()


@pytest.mark.parametrize("failing", ["node_usage_refresh", "namespace_usage_refresh"])
@pytest.mark.parametrize("error", [RuntimeError, duckdb.OutOfMemoryException])
def test_a_side_by_side_refresh_that_fails_leaves_the_rest_pending(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  failing: str, error: type[Exception]) -> None:
    # four days pending; the second slice of one side fails. An error is raised once both sides have
    # stopped, DuckDB has its threads back, what was not written stays pending, and the next refresh
    # makes every sum what the samples say. Out of memory (two slices at once need more than one),
    # the same refresh goes on with what is pending, one side after the other on one connection.
    runs = side_by_side_runs(monkeypatch, True)
    con = store.open_db(tmp_path / "db.duckdb")
    pods = {("web", "p1", "c"): "n1", ("web", "p2", "c"): "n2", ("db", "p3", "c"): "n2"}
    with store.transaction(con):
        store.write_usage(con, usage(pods, range(0, 4 * 288), seed=7))
    threads = store.fetch_row(con, "SELECT current_setting('threads')")[0]
    calls: list[str] = []
    load_sql = store.load_sql

    def failing_second_slice(name: str, *, raw: bool = False) -> str:
        if name == failing:
            calls.append(name)
            if len(calls) == 2:
                raise error(f"the second slice of {name} fails")
        return load_sql(name, raw=raw)

    monkeypatch.setattr(store, "load_sql", failing_second_slice)
    workers = threading.active_count()
    pending = "node_usage_pending" if failing == "node_usage_refresh" else "scope_usage_pending"
    if error is duckdb.OutOfMemoryException:
        written = store.refresh_node_usage(con)
        assert written == store.fetch_row(con, "SELECT count(*) FROM node_sums")[0] > 0
        assert len(calls) > 2  # the failed side's slices after the second, on one connection
    else:
        with pytest.raises(error, match=f"second slice of {failing}"):
            store.refresh_node_usage(con)
        assert store.fetch_row(con, f"SELECT count(*) FROM {pending}")[0] == 1
    assert runs == [1] and threading.active_count() == workers
    assert store.fetch_row(con, "SELECT current_setting('threads')")[0] == threads
    monkeypatch.setattr(store, "load_sql", load_sql)
    store.refresh_node_usage(con)
    assert_stored_equal_brute_force(con)
    con.close()


def test_the_refresh_goes_side_by_side_only_with_enough_time_pending_and_duckdb_memory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = side_by_side_runs(monkeypatch, True)
    monkeypatch.setattr(store, "SIDE_BY_SIDE_SECONDS", 6 * 3600)
    con = store.open_db(tmp_path / "db.duckdb")
    pods = {("web", "p1", "c"): "n1", ("db", "p3", "c"): "n2"}
    try:
        for steps, limit, side_by_side in ((range(0, 12), "1GB", False),  # an hour pending
                                           (range(12, 12 + 2 * 288), "64MB", False),  # two days, 64 MB
                                           (range(12 + 2 * 288, 12 + 4 * 288), "128MB", True)):
            with store.transaction(con):
                store.write_usage(con, usage(pods, steps, seed=steps.start))
            con.execute(f"SET memory_limit = '{limit}'")
            before = len(runs)
            store.refresh_node_usage(con)
            assert len(runs) - before == int(side_by_side)
        assert_stored_equal_brute_force(con)
    finally:
        con.close()


def test_the_scope_refresh_walks_a_short_pending_range_and_cuts_a_long_one_to_what_is_stored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # two days of samples; then pending days with nothing stored around them: up to
    # SCOPE_WALK_UNCLIPPED_DAYS every day is walked, past it only the days holding samples are
    monkeypatch.setattr(store, "SCOPE_WALK_UNCLIPPED_DAYS", 5)
    con = store.open_db(tmp_path / "db.duckdb")
    try:
        with store.transaction(con):
            store.write_usage(con, usage({("web", "p1", "c"): "n1", ("db", "p2", "c"): "n2"}, range(0, 2 * 288), seed=9))
        store.refresh_node_usage(con)
        for days_before, walked in ((2, 5), (300, 3)):  # (T0 is 07:00: the samples touch three days)
            with store.transaction(con):
                store.mark_node_usage_pending(con, T0 - timedelta(days=days_before), T0 + timedelta(days=2))
            assert store.refresh_scope_usage(con) == walked
            assert store.fetch_row(con, "SELECT count(*) FROM scope_usage_pending")[0] == 0
        store.refresh_node_usage(con)
        assert_stored_equal_brute_force(con)
    finally:
        con.close()


def test_migration_10_moves_every_sum_and_later_refreshes_keep_the_ids(sample_db: Path) -> None:
    # schema 9 as main wrote it (node_usage and namespace_usage tables of texts), from the imported sample
    con = duckdb.connect(str(sample_db))
    to_schema_9(con)
    tables = ("node_usage", "namespace_usage", "scope_usage_daily")
    before = {t: sorted(con.execute(f"SELECT * FROM {t}").fetchall()) for t in tables}
    assert all(before.values())
    con.close()
    con = store.open_db(sample_db)
    try:
        assert store.schema_version(con) == store.SCHEMA_VERSION == 10
        for table in tables:  # the views show the very rows schema 9 stored
            assert sorted(con.execute(f"SELECT * FROM {table}").fetchall()) == before[table]
        assert store.fetch_row(con, "SELECT count(*) FROM node_usage_pending")[0] == 0
        # numbered in name order, every stored row in (ts, id) order
        names = con.execute("SELECT node_id, cluster, node FROM node_names ORDER BY node_id").fetchall()
        assert [r[0] for r in names] == list(range(1, len(names) + 1))
        assert [r[1:] for r in names] == sorted({(r[0], r[1]) for r in before["node_usage"]})
        keys = con.execute("SELECT ts, node_id FROM node_sums ORDER BY rowid").fetchall()
        assert keys == sorted(keys)
        assert_stored_equal_brute_force(con)
        # a new node and namespace after the migration: the next ids, the old ones unchanged
        namespaces = con.execute("SELECT namespace_id, cluster, namespace FROM namespace_names ORDER BY 1").fetchall()
        end = store.fetch_row(con, "SELECT max(ts) FROM node_usage")[0]
        steps = range(int((end - T0) / STEP) + 1, int((end - T0) / STEP) + 13)
        with store.transaction(con):
            store.write_usage(con, usage({("zz-new", "p", "c"): "zz-node", ("web", "p", "c"): names[0][2]}, steps, seed=5))
        store.refresh_node_usage(con)
        after = con.execute("SELECT node_id, cluster, node FROM node_names ORDER BY node_id").fetchall()
        assert after == [*names, (len(names) + 1, "default", "zz-node")]
        after = con.execute("SELECT namespace_id, cluster, namespace FROM namespace_names ORDER BY 1").fetchall()
        assert after[:len(namespaces)] == namespaces and after[len(namespaces):] == [
            (len(namespaces) + 1, "default", name) for name in sorted({"zz-new", "web"} - {n[2] for n in namespaces})]
        assert_stored_equal_brute_force(con)
    finally:
        con.close()


def test_the_sums_are_sorted_before_they_are_stored_unless_duckdb_runs_on_one_thread_over_clustered_days(
        tmp_path: Path) -> None:
    # on one thread DuckDB emits a slice's sums about in time order by itself when the slice's raw
    # samples are in the clustered order (store._SUMS_ORDER_BY); a day written since is not
    con = store.open_db(tmp_path / "db.duckdb")
    day = (T0, T0 + timedelta(days=1))
    try:
        for name, key in (("node_usage_refresh", "node_id"), ("namespace_usage_refresh", "namespace_id")):
            for threads, unclustered, last_line in ((2, False, f"ORDER BY ts, m.{key}"),
                                                    (1, False, f"GROUP BY m.{key}, u.ts"),
                                                    (1, True, f"ORDER BY ts, m.{key}")):
                con.execute(f"SET threads = {threads}")
                with store.transaction(con):
                    con.execute("DELETE FROM usage_raw_unclustered")
                    if unclustered:
                        store.mark_unclustered(con, T0 + timedelta(hours=20), T0 + timedelta(days=3))
                    sql = store._SumsSource(con, [day]).sql(name, *day)
                assert sql.rstrip().splitlines()[-1] == last_line
    finally:
        con.close()


def test_node_sums_of_the_largest_stored_values_are_exact(tmp_path: Path) -> None:
    # queries/node_usage_refresh.sql adds the integers in a DOUBLE: 40 containers on one node at the
    # gate's largest CPU (10,000 cores) and INTEGER's largest KiB sum far past INTEGER, and each sum
    # must be the exact integer (Python's own), not a rounded one; one container's value is odd
    con = store.open_db(tmp_path / "db.duckdb")
    pods = {("big", f"p{i}", "c"): "n1" for i in range(40)}
    frame = usage(pods, range(3), seed=5).with_columns(
        pl.lit(10_000.0).alias("cpu_cores"), pl.lit(float((2**31 - 1) * 1024)).alias("memory_bytes"))
    frame = frame.with_columns(pl.when(pl.col("pod") == "p7").then(pl.lit(9_999.999)).otherwise(pl.col("cpu_cores"))
                               .alias("cpu_cores"))
    with store.transaction(con):
        store.write_usage(con, frame)
    store.refresh_node_usage(con)
    got = con.execute("SELECT ts, cpu_mcores, memory_kib FROM node_usage ORDER BY ts").fetchall()
    assert [(cpu, memory) for _, cpu, memory in got] == [(39 * 10_000_000 + 9_999_999, 40 * (2**31 - 1))] * 3
    assert_stored_equal_brute_force(con)
    con.close()
