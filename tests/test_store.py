"""The store: schema creation and migration, newer schemas refused, spec history, idempotent writes."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from capplan import store
from capplan.errors import BadInputError, LockedError, NoDataError

T0 = datetime(2026, 1, 1)


def test_new_database_gets_the_current_schema(tmp_path: Path) -> None:
    con = store.open_db(tmp_path / "new.duckdb")
    assert store.schema_version(con) == store.SCHEMA_VERSION
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"nodes", "pods", "containers", "series", "usage_samples", "restarts", "collection_runs",
            "high_water_marks"} <= tables
    con.close()


def test_migrations_are_forward_and_numbered_from_one() -> None:
    versions = [v for v, _ in store.migrations()]
    # strictly increasing from 1; a number may be missing while the change that reserved it
    # (TEAM.md: 002 ingest gate, 003 storage) has not landed yet
    assert versions[0] == 1 and versions == sorted(set(versions))
    assert set(range(1, versions[-1] + 1)) - set(versions) <= {2, 3}
    assert versions[-1] == store.SCHEMA_VERSION


def test_reopening_does_not_migrate_again(tmp_path: Path) -> None:
    path = tmp_path / "db.duckdb"
    store.open_db(path).close()
    con = store.open_db(path)
    assert con.execute("SELECT count(*) FROM schema_version").fetchone()[0] == 1
    con.close()


def test_old_schema_is_migrated_forward(tmp_path: Path) -> None:
    # An existing DuckDB file at version 0 (no capplan tables yet) is migrated to the newest.
    path = tmp_path / "old.duckdb"
    raw = duckdb.connect(str(path))
    raw.execute("CREATE TABLE unrelated (x INTEGER)")
    raw.close()
    con = store.open_db(path)
    assert store.schema_version(con) == store.SCHEMA_VERSION
    con.close()


def test_newer_schema_is_refused_with_exit_4_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "newer.duckdb"
    store.open_db(path).close()
    raw = duckdb.connect(str(path))
    raw.execute("UPDATE schema_version SET version = ?", [store.SCHEMA_VERSION + 1])
    raw.close()
    before = path.read_bytes()
    for read_only in (False, True):
        with pytest.raises(BadInputError) as err:
            store.open_db(path, read_only=read_only)
        assert err.value.exit_code == 4
        assert "newer" in str(err.value)
    assert path.read_bytes() == before


def test_read_only_open_of_a_missing_database_is_no_data(tmp_path: Path) -> None:
    with pytest.raises(NoDataError):
        store.open_db(tmp_path / "missing.duckdb", read_only=True)
    assert not (tmp_path / "missing.duckdb").exists()


def test_collection_lock_is_exclusive(tmp_path: Path) -> None:
    path = tmp_path / "db.duckdb"
    with store.collection_lock(path):
        with pytest.raises(LockedError) as err:
            with store.collection_lock(path):
                pass
        assert err.value.exit_code == 5
    with store.collection_lock(path):  # released when the holder leaves
        pass


def _pod_frame(valid_from: datetime, valid_to: datetime, node: str) -> pl.DataFrame:
    return pl.DataFrame({"namespace": ["ns"], "pod": ["p"], "valid_from": [valid_from], "valid_to": [valid_to],
                         "node": [node], "phase": ["Running"]})


def test_spec_intervals_extend_when_values_stay_and_split_when_they_change(tmp_path: Path) -> None:
    con = store.open_db(tmp_path / "db.duckdb")
    # 00:00-01:00 on node a, then the same again (nothing new), then 01:05-02:00 still on a
    # (extends), then 02:05-03:00 on node b (a move: a new row).
    assert store.write_spec(con, "pods", _pod_frame(T0, T0 + timedelta(hours=1), "a")) == 1
    assert store.write_spec(con, "pods", _pod_frame(T0, T0 + timedelta(hours=1), "a")) == 0
    assert store.write_spec(con, "pods", _pod_frame(T0 + timedelta(minutes=65), T0 + timedelta(hours=2), "a")) == 0
    assert store.write_spec(con, "pods", _pod_frame(T0 + timedelta(minutes=125), T0 + timedelta(hours=3), "b")) == 1
    rows = con.execute("SELECT node, valid_from, valid_to FROM pods ORDER BY valid_from").fetchall()
    assert rows == [
        ("a", T0, T0 + timedelta(hours=2)),
        ("b", T0 + timedelta(minutes=125), T0 + timedelta(hours=3)),
    ]
    con.close()


def _usage(ts: list[datetime], cpu: list[float]) -> pl.DataFrame:
    n = len(ts)
    return pl.DataFrame({"namespace": ["ns"] * n, "pod": ["p"] * n, "container": ["c"] * n, "node": ["n1"] * n,
                         "ts": ts, "cpu_cores": cpu, "memory_bytes": [100 * (i + 1) for i in range(n)]})


def test_usage_overlapping_windows_insert_no_duplicates(tmp_path: Path) -> None:
    con = store.open_db(tmp_path / "db.duckdb")
    first = [T0 + timedelta(minutes=5 * i) for i in range(4)]      # 00:00..00:15
    second = [T0 + timedelta(minutes=5 * i) for i in range(2, 6)]  # 00:10..00:25, two overlap
    assert store.write_usage(con, _usage(first, [0.1, 0.2, 0.3, 0.4])) == 4
    assert store.write_usage(con, _usage(second, [0.3, 0.4, 0.5, 0.6])) == 2
    assert con.execute("SELECT count(*), count(DISTINCT series_id) FROM usage_samples").fetchone() == (6, 1)
    assert con.execute("SELECT count(*) FROM series").fetchone()[0] == 1
    con.close()


def test_a_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    con = store.open_db(tmp_path / "db.duckdb")
    with pytest.raises(RuntimeError):
        with store.transaction(con):
            store.write_usage(con, _usage([T0], [0.5]))
            raise RuntimeError("killed mid-chunk")
    assert con.execute("SELECT count(*) FROM usage_samples").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM series").fetchone()[0] == 0
    con.close()


def test_high_water_mark_only_moves_forward(tmp_path: Path) -> None:
    con = store.open_db(tmp_path / "db.duckdb")
    assert store.high_water_mark(con, "src", "m") is None
    store.set_high_water_mark(con, "src", "m", T0 + timedelta(hours=2))
    store.set_high_water_mark(con, "src", "m", T0 + timedelta(hours=1))
    assert store.high_water_mark(con, "src", "m") == T0 + timedelta(hours=2)
    con.close()


def test_creation_that_fails_midway_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A run killed while creating must not leave an empty database behind (the next run would
    # find a file with no schema): the schema is built beside it and renamed into place.
    def broken_migrate(con):
        con.execute("CREATE TABLE half (x INTEGER)")
        raise KeyboardInterrupt("killed while migrating")

    monkeypatch.setattr(store, "migrate", broken_migrate)
    with pytest.raises(KeyboardInterrupt):
        store.open_db(tmp_path / "db.duckdb")
    assert list(tmp_path.iterdir()) == []


_TYPED_ROWS = """
    SELECT CAST(i AS INTEGER) AS series_id, CAST(i * 7 AS BIGINT) AS samples, i % 2 = 0 AS even,
           TIMESTAMP '2026-11-01' + to_seconds(i) AS ts, CAST(TIMESTAMP '2026-11-01' + to_seconds(i) AS TIMESTAMP_S) AS ts_s,
           DATE '2026-11-01' + CAST(i % 30 AS INTEGER) AS day, CAST(i / 1000 AS REAL) AS cores,
           CAST(i / 7 AS DECIMAL(12, 3)) AS amount, 'pod-' || i AS pod, CAST(NULL AS VARCHAR) AS unknown,
           CASE WHEN i % 3 = 0 THEN NULL ELSE [i * 0.5, i * 1.5] END AS levels,
           CASE WHEN i % 5 = 0 THEN NULL ELSE CAST(i AS DOUBLE) END AS maybe
    FROM range($n) t(i)"""


@pytest.mark.parametrize("own_below", [10**9, 1])
def test_frame_of_gives_duckdbs_frame_copied_or_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    own_below: int) -> None:
    """frame_of's frame, copied into polars' own buffers (results below store.OWN_BELOW_ROWS) or as
    DuckDB exports it, has the values and types of DuckDB's own conversion (.pl()), with and
    without parameters."""
    monkeypatch.setattr(store, "OWN_BELOW_ROWS", own_below)
    con = store.open_db(tmp_path / "db.duckdb")
    try:
        for n in (0, 3, 5000):
            want = con.execute(_TYPED_ROWS, {"n": n}).pl()
            got = store.frame_of(con, _TYPED_ROWS, {"n": n})
            assert got.schema == want.schema and got.equals(want)
            plain = _TYPED_ROWS.replace("$n", str(n))
            assert store.frame_of(con, plain).equals(con.execute(plain).pl())
        assert want["levels"].null_count() > 0 and want["unknown"].null_count() == want.height
    finally:
        con.close()
