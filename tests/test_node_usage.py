"""The materialised node-level usage series (schema 006) equals the sum computed on the fly.

`node_usage` holds each node's summed container usage per sample time; every writer marks the
times it touched as pending and `refresh_node_usage` recomputes them. Checked against a brute-force
sum over the usage_samples view (what every analysis summed before the table existed) after an
import, overlapping writes, `--replace`, a series moving to another node, prune (by time and by
namespace) and compaction; before each refresh, readers (node_usage_window) must already see the
brute-force sums. The per-node aggregates the analyses read (percentiles, daily maxima, eviction
exposure) are checked against the same computations on the whole series in polars.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from capplan import rollup, store
from capplan.analysis import node_series
from capplan.analysis.eviction import EvictionInputs, EvictionOptions, eviction_analysis, eviction_report
from capplan.analysis.node_series import (
    daily_memory,
    load_daily_memory,
    load_node_usage,
    node_usage_percentiles,
)
from capplan.analysis.pods import load_current_nodes
from capplan.prune import prune
from tests.schema9 import to_schema_9

T0 = datetime(2026, 3, 1)
# Both sum whole millicores (the brute force from the view's REAL cores, back in millicores).
CPU_TOLERANCE = 1e-9

BRUTE_FORCE = """
SELECT s.node, u.ts, sum(CAST(round(CAST(u.cpu_cores AS DOUBLE) * 1000) AS BIGINT)) / 1000 AS cpu_cores,
       sum(u.memory_bytes) AS memory_bytes
FROM usage_samples AS u JOIN series AS s USING (series_id)
WHERE s.node <> ''
GROUP BY s.node, u.ts
"""


def brute_force(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return con.execute(BRUTE_FORCE).pl().with_columns(
        pl.col("cpu_cores", "memory_bytes").cast(pl.Float64)).sort("node", "ts")


def through_window(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """What readers get (node_usage_window over everything), pending ranges included."""
    params = {**store.node_usage_params(con, datetime(2000, 1, 1), datetime(2100, 1, 1)), "nodes": None}
    return store.query(con, "node_sums_series", params).with_columns(
        pl.col("cpu_cores", "memory_bytes").cast(pl.Float64)).sort("node", "ts")


def stored_table(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return con.execute(
        "SELECT node, ts, cpu_mcores / 1000 AS cpu_cores, memory_kib * 1024 AS memory_bytes FROM node_usage"
    ).pl().with_columns(pl.col("cpu_cores", "memory_bytes").cast(pl.Float64)).sort("node", "ts")


def assert_same(got: pl.DataFrame, want: pl.DataFrame) -> None:
    assert got["node"].to_list() == want["node"].to_list()
    assert got["ts"].to_list() == want["ts"].to_list()
    assert got["memory_bytes"].to_list() == want["memory_bytes"].to_list()
    assert got["cpu_cores"].to_list() == pytest.approx(want["cpu_cores"].to_list(), abs=CPU_TOLERANCE)


def assert_current(con: duckdb.DuckDBPyConnection) -> None:
    """Readers see the brute-force sums now; after a refresh, so does the table itself."""
    want = brute_force(con)
    assert_same(through_window(con), want)
    store.refresh_node_usage(con)
    assert store.fetch_row(con, "SELECT count(*) FROM node_usage_pending")[0] == 0
    assert_same(stored_table(con), want)
    assert_same(through_window(con), want)


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
        assert store.fetch_row(con, "SELECT count(*) FROM node_usage_pending")[0] == 0
        want = brute_force(con)
        assert want.height > 1000
        assert_same(stored_table(con), want)
    finally:
        con.close()


def test_writes_replace_moves_prune_and_compaction_keep_it_current(tmp_path: Path) -> None:
    con = store.open_db(tmp_path / "db.duckdb")
    pods = {("p1", "a"): "n1", ("p1", "b"): "n1", ("p2", "a"): "n2", ("p9", "a"): "n1"}
    with store.transaction(con):
        store.write_usage(con, frame(random_rows(pods, range(0, 600), seed=1)))
    assert store.fetch_row(con, "SELECT count(*) FROM node_usage_pending")[0] > 0
    assert_current(con)
    # an overlapping write adds the new times only; a conflicting one changes nothing without --replace
    with store.transaction(con):
        store.write_usage(con, frame(random_rows(pods, range(500, 900), seed=2)))
    assert_current(con)
    # --replace: the stored values of 100 times change
    with store.transaction(con):
        written = store.ingest_usage(con, frame(random_rows(pods, range(300, 400), seed=3)), replace=True)
    assert written.replaced > 0
    assert_current(con)
    # a container first seen without a node, then on n2: its earlier samples now count for n2
    with store.transaction(con):
        store.write_usage(con, frame(random_rows({("p3", "a"): ""}, range(0, 400), seed=4)))
    assert_current(con)
    with store.transaction(con):
        store.write_usage(con, frame(random_rows({("p3", "a"): "n2"}, range(400, 500), seed=5)))
    assert con.execute("SELECT node FROM series WHERE pod = 'p3'").fetchone() == ("n2",)
    assert_current(con)
    # p2 moves from n2 to n3 (its latest node): all of its samples go with it
    with store.transaction(con):
        store.write_usage(con, frame(random_rows({("p2", "a"): "n3"}, range(900, 950), seed=6)))
    assert_current(con)
    # prune by namespace, then by time on both ends
    prune(con, before=T0 + timedelta(days=1), namespaces=["other"])
    assert_current(con)
    prune(con, before=T0 + timedelta(hours=5), after=T0 + timedelta(minutes=5 * 930))
    assert_current(con)
    # prune removes every sample p2 had on n3: its latest node is n2 again
    prune(con, after=T0 + timedelta(minutes=5 * 899))
    assert con.execute("SELECT node FROM series WHERE pod = 'p2'").fetchone() == ("n2",)
    assert_current(con)
    # compaction: raw samples older than a day become hourly rows stamped at the hour
    with store.transaction(con):
        summary = rollup.compact(con, raw_retention=timedelta(days=1), daily_after=timedelta(days=2))
    assert summary.raw_samples_rolled > 0 and summary.hourly_rows_rolled > 0
    assert_current(con)
    con.close()


def test_a_killed_run_leaves_pending_ranges_for_readers_and_the_next_writer(tmp_path: Path) -> None:
    path = tmp_path / "db.duckdb"
    con = store.open_db(path)
    with store.transaction(con):
        store.write_usage(con, frame(random_rows({("p1", "a"): "n1", ("p2", "a"): "n2"}, range(0, 700), seed=7)))
    con.close()  # no refresh: as if the writer was killed after its commit
    con = store.open_db(path, read_only=True)
    try:
        assert store.fetch_row(con, "SELECT count(*) FROM node_usage_pending")[0] > 0
        assert store.fetch_row(con, "SELECT count(*) FROM node_usage")[0] == 0
        assert_same(through_window(con), brute_force(con))
    finally:
        con.close()
    con = store.open_db(path)  # a writable open refreshes, a day per transaction
    try:
        assert store.fetch_row(con, "SELECT count(*) FROM node_usage_pending")[0] == 0
        assert_same(stored_table(con), brute_force(con))
    finally:
        con.close()


def test_a_database_from_before_the_table_is_filled_by_the_migration(sample_db: Path) -> None:
    # schema 5 as it was: no node tables (nor schema 007's and 008's)
    con = duckdb.connect(str(sample_db))
    to_schema_9(con)
    con.execute("DROP TABLE namespace_usage; DROP TABLE scope_usage_daily; DROP TABLE scope_usage_pending; "
                "DROP TABLE node_usage; DROP TABLE node_usage_pending; DROP TABLE usage_raw_unclustered; "
                "UPDATE schema_version SET version = 5")
    con.close()
    con = store.open_db(sample_db, read_only=True)
    try:
        assert store.schema_version(con) == store.SCHEMA_VERSION
        assert store.fetch_row(con, "SELECT count(*) FROM node_usage_pending")[0] == 0
        assert_same(stored_table(con), brute_force(con))
    finally:
        con.close()


def test_clusters_keep_their_own_node_sums(tmp_path: Path) -> None:
    # two clusters with nodes of the same names: each scope sees its own sums, nothing of the other's
    con = store.open_db(tmp_path / "db.duckdb")
    with store.transaction(con):
        store.write_usage(con, frame(random_rows({("p1", "a"): "n1", ("p2", "a"): "n2"}, range(0, 300), seed=8)), cluster="a")
        store.write_usage(con, frame(random_rows({("p1", "a"): "n1", ("p3", "a"): "n1"}, range(100, 400), seed=9)), cluster="b")
    store.refresh_node_usage(con)
    assert con.execute("SELECT DISTINCT cluster FROM node_usage ORDER BY 1").fetchall() == [("a",), ("b",)]
    for cluster in ("a", "b"):
        with store.scope(con, cluster):
            assert_same(stored_table(con), brute_force(con))
            assert_same(through_window(con), brute_force(con))
    # while cluster b's new times are pending, readers in either scope still get their own sums
    with store.transaction(con):
        store.write_usage(con, frame(random_rows({("p4", "a"): "n2"}, range(50, 350), seed=10)), cluster="b")
    for cluster in ("a", "b"):
        with store.scope(con, cluster):
            assert_same(through_window(con), brute_force(con))
    con.close()


# --- the aggregates the analyses read ----------------------------------------------------------

@pytest.mark.parametrize("batch_rows", [node_series.PERCENTILE_BATCH_ROWS, 5_000])
def test_node_percentiles_and_daily_maxima_equal_the_whole_series_in_polars(sample_db_readonly: Path, batch_rows: int,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # 5,000 sums a batch: one of the sample's nodes (4,032 sums each over 14 days) a query
    monkeypatch.setattr(node_series, "PERCENTILE_BATCH_ROWS", batch_rows)
    con = store.open_db(sample_db_readonly, read_only=True)
    try:
        start, end = store.analysis_window(con, timedelta(days=14))
        series = brute_force(con).filter(pl.col("ts").is_between(start, end))
        nodes = load_current_nodes(con, end)
        got, want = load_node_usage(con, start, end), node_usage_percentiles(series)
        assert got.columns == want.columns and got["node"].to_list() == want["node"].to_list()
        assert got["usage_points"].to_list() == want["usage_points"].to_list()
        for column in got.columns[2:]:
            # interpolation between two sums: DuckDB and polars may differ in the last bit
            expected = (pytest.approx(want[column].to_list(), abs=CPU_TOLERANCE) if "cpu" in column
                        else pytest.approx(want[column].to_list(), rel=1e-14))
            assert got[column].to_list() == expected, column
        got_daily, want_daily = load_daily_memory(con, start, end, nodes), daily_memory(series, nodes)
        assert got_daily.schema == want_daily.schema
        assert got_daily.to_dicts() == want_daily.to_dicts()
        assert want_daily["breach_points"].sum() > 0  # the sample's node-8 crosses its threshold
    finally:
        con.close()


POD_MOMENTS = """
SELECT s.node, u.ts, s.namespace, s.pod, CAST(sum(u.memory_bytes) AS BIGINT) AS working_set_bytes
FROM usage_samples AS u JOIN series AS s USING (series_id)
WHERE u.ts BETWEEN $start AND $end AND s.node <> '' AND u.memory_bytes IS NOT NULL
GROUP BY ALL
"""


def whole_series_inputs(con: duckdb.DuckDBPyConnection, window: timedelta, usage: str) -> EvictionInputs:
    """Every pod at every moment, and the node moments summed from them: eviction_analysis then
    computes the exposure itself in polars (the path the hand-made tests take)."""
    start, end = store.analysis_window(con, window)
    params = {"start": start, "end": end}
    pod_moments = con.execute(POD_MOMENTS, params).pl().with_columns(pl.col("ts").cast(pl.Datetime("us")))
    moments = pod_moments.group_by("node", "ts").agg(pl.col("working_set_bytes").sum())
    # each pod's p95, peak and latest of its per-moment sums, in polars (the store's run in parts)
    pod_stats = pod_moments.sort("ts").group_by("node", "namespace", "pod").agg(
        pl.col("working_set_bytes").quantile(0.95, "linear").alias("working_set_p95_bytes"),
        pl.col("working_set_bytes").max().alias("working_set_peak_bytes"),
        pl.col("working_set_bytes").last().alias("working_set_latest_bytes"),
        pl.col("ts").max().alias("last_seen")).sort("node", "namespace", "pod")
    return EvictionInputs(
        start=start, end=end, nodes=store.query(con, "window_nodes", params),
        containers=store.query(con, "window_containers", params), moments=moments,
        pod_stats=pod_stats, restarts=store.query(con, "restarts_in_window", params),
        pod_moments=pod_moments)


@pytest.mark.parametrize(("usage", "hard"), [("peak", "100Mi"), ("p95", "100Mi"), ("latest", "100Mi"), ("peak", "75%")])
def test_eviction_from_the_store_equals_the_whole_series_in_polars(sample_db_readonly: Path, usage: str, hard: str) -> None:
    # 75% of capacity puts four nodes under pressure, most on every day: the per-day slices all count
    con = store.open_db(sample_db_readonly, read_only=True)
    try:
        options = EvictionOptions(window=timedelta(days=30), usage=usage, eviction_hard=hard)
        got = eviction_report(con, options)
        want = eviction_analysis(whole_series_inputs(con, options.window, usage), options)
    finally:
        con.close()
    if hard == "75%":
        assert got.nodes["under_pressure"].sum() >= 4 and got.pods["evicted_moments"].sum() > 1000
    for name in ("nodes", "pods", "containers", "advice", "qos"):
        g, w = getattr(got, name), getattr(want, name)
        assert g.schema == w.schema, name
        assert g.to_dicts() == w.to_dicts(), name
