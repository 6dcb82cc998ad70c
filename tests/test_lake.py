"""`capplan export-lake`: the lake holds exactly the store (read back with DuckDB's own Hive
reader, compared row for row with the tables), a rerun writes nothing, a new day writes one
partition, a changed day rewrites that day only, a pruned day is removed, and a killed export
leaves only whole files that a rerun completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from capplan import lake, store
from capplan.cli import app
from capplan.errors import BadInputError
from capplan.prune import prune

ROOT = Path(__file__).resolve().parent.parent


def export(db: Path, directory: Path) -> lake.ExportSummary:
    con = store.open_db(db, read_only=True)
    try:
        return lake.export_lake(con, directory)
    finally:
        con.close()


def lake_files(directory: Path) -> dict[str, tuple[int, int]]:
    """Every visible Parquet file of the lake -> (inode, mtime_ns): what a rerun must not touch."""
    return {str(p.relative_to(directory)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in directory.rglob("*.parquet") if not p.name.startswith(".")}


def assert_lake_is_the_store(db: Path, directory: Path) -> None:
    """Each stored table read back from the lake (DuckDB's Hive reader, not capplan's code) is
    the table, row for row; every row in cluster `default`; usage in the day (month) of its time."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'").fetchall()]
        exported = set(tables) - lake.EXCLUDED_TABLES
        manifest = json.loads((directory / lake.MANIFEST).read_text())
        assert manifest["finished"] is True
        assert set(manifest["tables"]) == exported
        for table in sorted(exported):
            columns = [r[0] for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = $t ORDER BY ordinal_position",
                {"t": table}).fetchall()]
            cols = ", ".join(f'"{c}"' for c in columns)
            stored = con.execute(f'SELECT {cols} FROM "{table}"').pl()
            files = sorted(str(p) for p in (directory / table).rglob("*.parquet")) if (directory / table).exists() else []
            if not files:
                assert stored.is_empty(), table
                schema = con.execute(f"SELECT * FROM read_parquet('{directory / lake.SCHEMA_DIR / table}.parquet')").pl()
                assert schema.columns == columns and schema.is_empty()
                continue
            back = con.execute("SELECT * FROM read_parquet($files, hive_partitioning = true)", {"files": files}).pl()
            assert set(back["cluster"].unique()) == {"default"}
            if table in lake.TIME_PARTITIONS:
                column, key, fmt = lake.TIME_PARTITIONS[table]
                assert (back[column].dt.strftime(fmt) == back[key].cast(pl.Utf8)).all()
            # Parquet has no whole-second timestamps: TIMESTAMP_S comes back in microseconds.
            back = back.select(columns).with_columns(
                pl.col(c).cast(t) for c, t in stored.schema.items() if isinstance(t, pl.Datetime))
            assert back.schema == stored.schema, table
            assert back.sort(columns).equals(stored.sort(columns)), table
    finally:
        con.close()


def test_the_lake_is_the_store_and_a_rerun_writes_nothing(sample_db: Path, tmp_path: Path):
    directory = tmp_path / "lake"
    first = export(sample_db, directory)
    assert first.written > 14  # 14 days of usage, then the spec tables
    assert_lake_is_the_store(sample_db, directory)
    days = sorted(p.name for p in (directory / "usage_raw" / "cluster=default").iterdir())
    assert days == [f"day=2026-11-{d:02d}" for d in range(1, 15)]
    before = lake_files(directory)
    again = export(sample_db, directory)
    assert (again.written, again.removed, again.rows_written) == (0, 0, 0)
    assert again.unchanged == first.written
    assert lake_files(directory) == before  # not one file rewritten


def _usage(day: str, cpu_cores: float) -> pl.DataFrame:
    return pl.DataFrame({
        "namespace": ["web"], "pod": ["frontend-7d4b9c-abcde"], "container": ["app"], "node": ["node-1"],
        "ts": [datetime.fromisoformat(day)], "cpu_cores": [cpu_cores], "memory_bytes": [100 * 2**20]})


def test_a_new_day_writes_one_partition_and_a_changed_day_only_that_day(sample_db: Path, tmp_path: Path):
    directory = tmp_path / "lake"
    export(sample_db, directory)
    before = lake_files(directory)
    con = store.open_db(sample_db)
    with store.transaction(con):
        store.write_usage(con, _usage("2026-11-15T00:10:00", 0.25))
    con.close()
    summary = export(sample_db, directory)
    # the new day, and the series table that gained the container (its node history too)
    new_day = "usage_raw/cluster=default/day=2026-11-15"
    assert new_day in summary.written_partitions
    assert [p for p in summary.written_partitions if p.startswith("usage_raw/")] == [new_day]
    after = lake_files(directory)
    changed = {k for k in after if after[k] != before.get(k)}
    assert {k.rsplit("/", 1)[0] for k in changed} == set(summary.written_partitions)
    assert_lake_is_the_store(sample_db, directory)

    # One stored sample of 2026-11-05 replaced by another value: that day is rewritten, no other.
    con = store.open_db(sample_db)
    ts, series_id, cpu = con.execute(
        "SELECT ts, series_id, cpu_mcores FROM usage_raw WHERE ts >= '2026-11-05' AND ts < '2026-11-06' LIMIT 1").fetchone()
    with store.transaction(con):
        con.execute("UPDATE usage_raw SET cpu_mcores = cpu_mcores + 7 WHERE series_id = $s AND ts = $t",
                    {"s": series_id, "t": ts})
    con.close()
    summary = export(sample_db, directory)
    assert summary.written_partitions == ["usage_raw/cluster=default/day=2026-11-05"]
    assert_lake_is_the_store(sample_db, directory)


def test_a_pruned_day_leaves_the_lake(sample_db: Path, tmp_path: Path):
    directory = tmp_path / "lake"
    export(sample_db, directory)
    con = store.open_db(sample_db)
    prune(con, before=datetime(2026, 11, 2), after=None, namespaces=None, dry_run=False)
    con.close()
    summary = export(sample_db, directory)
    assert summary.removed >= 1
    assert not (directory / "usage_raw" / "cluster=default" / "day=2026-11-01").exists()
    assert_lake_is_the_store(sample_db, directory)


_KILL_AFTER = """
import os, signal, sys
from capplan import lake, store
done = []
def progress(line):
    done.append(line)
    if len(done) == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)
con = store.open_db(sys.argv[1], read_only=True)
lake.export_lake(con, sys.argv[2], progress=progress)
"""


def test_a_killed_export_leaves_whole_files_and_a_rerun_completes_it(sample_db: Path, tmp_path: Path):
    directory = tmp_path / "lake"
    export(sample_db, directory)
    old_rows = {p: pl.read_parquet(directory / p).height for p in lake_files(directory)}
    # Changes in many partitions: a new day, every day's values, spec history cut.
    con = store.open_db(sample_db)
    with store.transaction(con):
        con.execute("UPDATE usage_raw SET memory_kib = memory_kib + 1")
        store.write_usage(con, _usage("2026-11-15T00:10:00", 0.25))
    con.close()
    done = subprocess.run([sys.executable, "-c", _KILL_AFTER, str(sample_db), str(directory), "3"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr
    manifest = json.loads((directory / lake.MANIFEST).read_text())
    assert manifest["finished"] is False  # readers (the Spark engine) refuse it
    # A temporary file left by a kill mid-write is hidden: no reader's glob sees it.
    leftover = directory / "usage_raw" / "cluster=default" / "day=2026-11-09" / f".{lake.PART_FILE}.tmp-999"
    leftover.write_bytes(b"PAR1 half a file")
    con = duckdb.connect(str(sample_db), read_only=True)
    for rel in lake_files(directory):  # every visible file is a whole Parquet file, old or new
        rows = pl.read_parquet(directory / rel).height
        if not rel.startswith("usage_raw/") or "2026-11-15" in rel:
            continue
        day = rel.split("day=")[1][:10]
        stored = con.execute("SELECT count(*) FROM usage_raw WHERE strftime(ts, '%Y-%m-%d') = $d", {"d": day}).fetchone()[0]
        assert rows in (old_rows.get(rel), stored)
    con.close()
    summary = export(sample_db, directory)
    assert summary.written >= 14
    assert not leftover.exists()
    assert_lake_is_the_store(sample_db, directory)


def test_a_folder_that_is_not_a_lake_is_left_alone(sample_db: Path, tmp_path: Path):
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"meow")
    with pytest.raises(BadInputError, match="neither empty nor a capplan lake"):
        export(sample_db, other)
    assert sorted(os.listdir(other)) == ["cat.jpg"]


def test_cli_export_lake(sample_db: Path, tmp_path: Path, runner):
    directory = tmp_path / "lake"
    result = runner.invoke(app, ["export-lake", str(directory), "--db", str(sample_db)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"exported {directory}: ")
    assert "0 removed" in result.stdout
    result = runner.invoke(app, ["export-lake", str(directory), "--db", str(sample_db)])
    assert result.exit_code == 0
    assert ": 0 partitions written (0 rows)" in result.stdout
    result = runner.invoke(app, ["export-lake", str(directory), "--db", str(tmp_path / "none.duckdb")])
    assert result.exit_code == 6


def test_a_partition_no_manifest_names_goes_and_a_missing_one_comes_back(sample_db: Path, tmp_path: Path):
    """A partition on disk that the store does not hold (left by a killed export of a day since
    pruned) goes at the next export, so readers of the folder never count it; a partition file
    that went missing is written again."""
    directory = tmp_path / "lake"
    export(sample_db, directory)
    orphan = directory / "usage_raw" / "cluster=default" / "day=2026-10-31" / lake.PART_FILE
    orphan.parent.mkdir()
    (directory / "usage_raw" / "cluster=default" / "day=2026-11-01" / lake.PART_FILE).rename(orphan)
    summary = export(sample_db, directory)
    assert summary.removed == 1 and not orphan.parent.exists()
    assert summary.written_partitions == ["usage_raw/cluster=default/day=2026-11-01"]
    assert_lake_is_the_store(sample_db, directory)
