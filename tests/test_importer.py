"""`capplan import`: the bundled sample and long-format files, idempotently."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from capplan import store
from capplan.errors import BadInputError
from capplan.importer import import_long_format, import_sample

from .conftest import SAMPLE_DIR


def test_importing_the_sample_twice_gives_the_same_row_counts(tmp_path: Path) -> None:
    db = tmp_path / "db.duckdb"
    first = import_sample(SAMPLE_DIR, db)
    con = store.open_db(db, read_only=True)
    counts_once = store.table_counts(con)
    con.close()
    second = import_sample(SAMPLE_DIR, db)
    con = store.open_db(db, read_only=True)
    counts_twice = store.table_counts(con)
    con.close()
    assert counts_once == counts_twice
    assert second.samples == 0 and second.spec_rows == 0
    # every sample of the file landed once
    assert first.samples == pl.read_parquet(SAMPLE_DIR / "usage.parquet").height == counts_once["usage_samples"]
    assert counts_once["pods"] == pl.read_parquet(SAMPLE_DIR / "pods.parquet").height


def test_sample_file_matches_the_seeded_generator(sample_cluster) -> None:
    from capplan.sample import usage_frames

    generated = pl.concat(list(usage_frames(sample_cluster))).sort("namespace", "pod", "container", "ts")
    bundled = pl.read_parquet(SAMPLE_DIR / "usage.parquet")
    assert generated.height == bundled.height
    assert generated["memory_bytes"].to_list() == bundled["memory_bytes"].to_list()


def _write_long(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "usage.csv"
    pl.DataFrame(rows).write_csv(path)
    return path


LONG_ROWS = [
    {"namespace": "a", "pod": "p1", "container": "c", "timestamp": "2026-01-01T00:05:00Z", "cpu_cores": "0.5",
     "memory_bytes": "100Mi", "memory_limit_bytes": "1Gi", "cpu_request_cores": "250m"},
    {"namespace": "a", "pod": "p1", "container": "c", "timestamp": "2026-01-01T00:00:00Z", "cpu_cores": "0.25",
     "memory_bytes": "200Mi", "memory_limit_bytes": "1Gi", "cpu_request_cores": "250m"},
]


def test_long_format_csv_in_any_order_and_twice(tmp_path: Path) -> None:
    db = tmp_path / "db.duckdb"
    path = _write_long(tmp_path, LONG_ROWS)
    assert import_long_format(path, db).samples == 2
    assert import_long_format(path, db).samples == 0
    con = store.open_db(db, read_only=True)
    rows = con.execute("SELECT ts, cpu_cores, memory_bytes FROM usage_samples ORDER BY ts").fetchall()
    spec = con.execute("SELECT cpu_request_cores, memory_limit_bytes, cpu_limit_cores FROM containers").fetchall()
    con.close()
    assert [(r[1], r[2]) for r in rows] == [(0.25, 200 * 2**20), (0.5, 100 * 2**20)]
    assert spec == [(0.25, 2**30, None)]


def test_long_format_with_a_bad_quantity_is_exit_4_and_writes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "db.duckdb"
    rows = [dict(LONG_ROWS[0], memory_bytes="lots")]
    with pytest.raises(BadInputError) as err:
        import_long_format(_write_long(tmp_path, rows), db)
    assert "lots" in str(err.value)
    assert not db.exists()


def test_long_format_missing_column_is_named(tmp_path: Path) -> None:
    rows = [{k: v for k, v in LONG_ROWS[0].items() if k != "container"}]
    with pytest.raises(BadInputError, match="container"):
        import_long_format(_write_long(tmp_path, rows), tmp_path / "db.duckdb")
