"""Schema 005 (the fleet): a database from before clusters migrates to the cluster `default`,
row for row, and every analysis answers as on a database written by this capplan."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from capplan import store
from capplan.cli import app
from tests.answers import assert_same_csv

# Every data table of schema 4, each by all its columns (the order of rows is not data).
V4_TABLES = ("nodes", "pods", "containers", "owners", "workloads", "hpas", "resource_quotas", "series",
             "series_nodes", "usage_raw", "usage_hourly", "usage_daily", "restarts", "collection_runs",
             "high_water_marks", "collector_sources")
CLUSTER_TABLES = ("nodes", "pods", "containers", "owners", "workloads", "hpas", "resource_quotas", "series",
                  "restarts", "collection_runs", "high_water_marks", "collector_sources")


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? AND table_schema = 'main' "
        "AND table_catalog = current_database() ORDER BY ordinal_position", [table]).fetchall()]


def _rows(con: duckdb.DuckDBPyConnection, table: str, columns: list[str]) -> list[tuple]:
    cols = ", ".join(columns)
    return con.execute(f"SELECT {cols} FROM {table} ORDER BY {cols}").fetchall()


@pytest.fixture(scope="module")
def v4_db(sample_db_readonly: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A schema-4 database holding what the bundled sample's import stores: migrations 001-004
    (the files shipped), filled with the rows of today's import minus the cluster column, plus a
    collector's high-water mark and measured source (tables the import leaves empty)."""
    path = tmp_path_factory.mktemp("v4") / "v4.duckdb"
    con = duckdb.connect(str(path))
    try:
        assert store.migrate(con, upto=4) == 4
        con.execute(f"ATTACH '{sample_db_readonly}' AS src (READ_ONLY)")
        for table in V4_TABLES:
            columns = _columns(con, table)
            con.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM src.main.{table}")
        con.execute("INSERT INTO high_water_marks VALUES ('http://prom:9090', 'kube_pod_info', '2026-11-14 00:00:00')")
        con.execute("INSERT INTO collector_sources VALUES ('http://prom:9090', 'cadvisor', 30.0, '', '2026-11-14 00:00:00')")
        con.execute("INSERT INTO collection_runs (run_id, source, started_at, status) "
                    "VALUES (1, 'http://prom:9090', '2026-11-14 00:00:00', 'ok')")
        assert "cluster" not in _columns(con, "series")
    finally:
        con.close()
    return path


def test_migration_keeps_every_row_under_cluster_default(v4_db: Path, tmp_path: Path) -> None:
    path = tmp_path / "migrated.duckdb"
    path.write_bytes(v4_db.read_bytes())
    before = duckdb.connect(str(v4_db), read_only=True)
    con = store.open_db(path)  # migrates
    try:
        assert store.schema_version(con) == store.SCHEMA_VERSION >= 5
        for table in V4_TABLES:
            old_columns = _columns(before, table)
            assert _rows(con, table, old_columns) == _rows(before, table, old_columns), table
        for table in CLUSTER_TABLES:
            assert "cluster" in _columns(con, table), table
            assert con.execute(f"SELECT DISTINCT cluster FROM {table}").fetchall() in ([("default",)], []), table
        # the new keys: the same container in another cluster is another series
        with pytest.raises(duckdb.ConstraintException):
            con.execute("INSERT INTO series (series_id, cluster, namespace, pod, container, node) "
                        "SELECT 10**6, cluster, namespace, pod, container, '' FROM series LIMIT 1")
        con.execute("INSERT INTO series (series_id, cluster, namespace, pod, container, node) "
                    "SELECT 10**6, 'other', namespace, pod, container, '' FROM series LIMIT 1")
        assert store.high_water_mark(con, "http://prom:9090", "kube_pod_info") is not None
        assert store.high_water_mark(con, "http://prom:9090", "kube_pod_info", cluster="other") is None
    finally:
        con.close()
        before.close()


@pytest.mark.parametrize("command", [["nodes"], ["recommend"], ["forecast"], ["eviction"], ["whatif"]])
def test_migrated_database_answers_as_a_fresh_import(command: list[str], v4_db: Path, sample_db_readonly: Path,
                                                     tmp_path: Path) -> None:
    path = tmp_path / "migrated.duckdb"
    path.write_bytes(v4_db.read_bytes())
    runner = CliRunner()
    migrated = runner.invoke(app, [*command, "--db", str(path), "-f", "csv"])
    fresh = runner.invoke(app, [*command, "--db", str(sample_db_readonly), "-f", "csv"])
    assert migrated.exit_code == fresh.exit_code == 0, (migrated.output, fresh.output)
    assert migrated.stdout.count("\n") > 2
    assert_same_csv(migrated.stdout, fresh.stdout)
