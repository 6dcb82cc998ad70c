"""store.scope: one cluster of a fleet store reads as a store holding that cluster alone."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from capplan import store
from capplan.analysis import fleet
from capplan.errors import NoDataError, UsageError
from tests.fleet.conftest import FleetStores

# Each table as the analyses see it, by content (series ids are the store's own numbering).
CONTENT = {
    **{t: f"SELECT * FROM {t}" for t in ("nodes", "pods", "containers", "owners", "workloads", "hpas",
                                         "resource_quotas", "restarts")},
    "series": "SELECT namespace, pod, container, node FROM series",
    "usage_samples": "SELECT s.namespace, s.pod, s.container, u.ts, u.cpu_cores, u.memory_bytes "
                     "FROM usage_samples AS u JOIN series AS s USING (series_id)",
    "usage_raw": "SELECT s.namespace, s.pod, s.container, u.ts, u.cpu_mcores, u.memory_kib "
                 "FROM usage_raw AS u JOIN series AS s USING (series_id)",
    "series_nodes": "SELECT s.namespace, s.pod, s.container, n.node, n.valid_from, n.valid_to "
                    "FROM series_nodes AS n JOIN series AS s USING (series_id)",
}


def _content(con: duckdb.DuckDBPyConnection, sql: str) -> pl.DataFrame:
    frame = con.execute(sql).pl()
    return frame.sort(frame.columns, nulls_last=True)


@pytest.mark.parametrize("cluster", ["east", "west"])
def test_a_scoped_cluster_reads_as_the_store_of_that_cluster_alone(fleet_stores: FleetStores, cluster: str) -> None:
    con = store.open_db(fleet_stores.fleet, read_only=True)
    alone = store.open_db(fleet_stores.alone[cluster], read_only=True)
    try:
        assert store.clusters(con) == ["east", "west"]
        with store.scope(con, cluster), store.scope(alone, "default"):
            assert store.active_cluster(con) == cluster
            for table, sql in CONTENT.items():
                got, expected = _content(con, sql), _content(alone, sql)
                assert got.height == expected.height > 0 or table == "hpas", table
                assert got.equals(expected), table
            assert store.sample_range(con) == store.sample_range(alone)
        # left the scope: the real tables again, both clusters
        assert store.active_cluster(con) is None
        both = con.execute("SELECT count(DISTINCT cluster), count(*) FROM nodes").fetchone()
        assert both == (2, 16)
    finally:
        con.close()
        alone.close()


def test_scope_filters_series_whose_ids_interleave(fleet_copy: Path) -> None:
    """A container new to east after west was imported gets an id above west's: east's ids are no
    longer one range, and the scope still shows east's series only."""
    con = store.open_db(fleet_copy)
    try:
        ts = datetime(2026, 11, 14, 0, 0)
        frame = pl.DataFrame({"namespace": ["web"], "pod": ["late-pod"], "container": ["app"], "node": ["node-1"],
                              "ts": [ts], "cpu_cores": [0.25], "memory_bytes": [2**20]})
        with store.transaction(con):
            store.write_usage(con, frame, cluster="east")
        top = con.execute("SELECT max(series_id) FROM series WHERE cluster = 'west'").fetchone()[0]
        new_id = con.execute("SELECT series_id FROM series WHERE pod = 'late-pod'").fetchone()[0]
        assert new_id > top
        expected = {c: con.execute("SELECT count(*) FROM usage_raw WHERE series_id IN "
                                   "(SELECT series_id FROM series WHERE cluster = ?)", [c]).fetchone()[0]
                    for c in ("east", "west")}
        for cluster in ("east", "west"):
            with store.scope(con, cluster):
                assert con.execute("SELECT count(*) FROM usage_samples").fetchone()[0] == expected[cluster]
                assert con.execute("SELECT count(*) FROM usage_raw").fetchone()[0] == expected[cluster]
                late = con.execute("SELECT count(*) FROM series WHERE pod = 'late-pod'").fetchone()[0]
                assert late == (1 if cluster == "east" else 0)
    finally:
        con.close()


def test_fleet_run_labels_frames_only_when_several_clusters_are_stored(fleet_stores: FleetStores) -> None:
    con = store.open_db(fleet_stores.fleet, read_only=True)
    alone = store.open_db(fleet_stores.alone["west"], read_only=True)
    try:
        def count(c: duckdb.DuckDBPyConnection) -> pl.DataFrame:
            return c.execute("SELECT count(*) AS pods FROM pods").pl()

        runs = fleet.run(con, None, count)
        frame = runs.frame()
        assert frame.columns == ["cluster", "pods"]
        per_cluster = dict(con.execute("SELECT cluster, count(*) FROM pods GROUP BY cluster").fetchall())
        assert dict(frame.iter_rows()) == per_cluster
        assert fleet.run(con, ["west"], count).frame().rows() == [("west", per_cluster["west"])]
        single = fleet.run(alone, None, count).frame()
        assert single.columns == ["pods"]  # one stored cluster: no cluster column
        with pytest.raises(UsageError, match="--cluster north: no such cluster in the database; it holds east, west"):
            fleet.run(con, ["north"], count)
    finally:
        con.close()
        alone.close()


def test_a_cluster_without_data_is_left_out_of_a_fleet_answer(fleet_stores: FleetStores) -> None:
    con = store.open_db(fleet_stores.fleet, read_only=True)
    try:
        def newest(c: duckdb.DuckDBPyConnection) -> pl.DataFrame:
            if store.active_cluster(c) == "west":
                raise NoDataError("nothing here")
            return pl.DataFrame({"newest": [store.sample_range(c)[1]]})

        runs = fleet.run(con, None, newest)
        assert runs.skipped == [("west", "nothing here")]
        assert runs.frame()["cluster"].to_list() == ["east"]
        with pytest.raises(NoDataError, match="cluster west: nothing here"):
            fleet.run(con, ["west"], newest)
        assert store.sample_range(con)[1] - store.sample_range(con)[0] > timedelta(days=7)
    finally:
        con.close()
