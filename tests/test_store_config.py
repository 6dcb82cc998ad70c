"""Every connection capplan opens gets a DuckDB memory limit sized for the process (issue 14)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from capplan import store


def test_default_limit_is_a_share_of_usable_memory_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(store.MEMORY_LIMIT_ENV, raising=False)
    monkeypatch.setattr(store, "_usable_memory_bytes", lambda: 1000 * 2**20)  # a 1000 MiB pod
    assert store.duckdb_config()["memory_limit"] == "400MB"
    monkeypatch.setattr(store, "_usable_memory_bytes", lambda: 64 * 2**30)  # a big machine: the cap
    assert store.duckdb_config()["memory_limit"] == "2048MB"
    con = store.open_db(tmp_path / "db.duckdb")
    plain = duckdb.connect(config={"memory_limit": "2048MB"})  # what DuckDB shows for that setting
    try:
        assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == \
            plain.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    finally:
        con.close()
        plain.close()


def test_environment_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(store.MEMORY_LIMIT_ENV, "300MB")
    monkeypatch.setenv(store.THREADS_ENV, "1")
    con = store.open_db(tmp_path / "db.duckdb")
    try:
        assert con.execute("SELECT current_setting('memory_limit'), current_setting('threads')").fetchone() == \
            ("286.1 MiB", 1)
    finally:
        con.close()


def _shown(limit: str) -> str:
    """How DuckDB shows a memory_limit setting (current_setting)."""
    plain = duckdb.connect(config={"memory_limit": limit})
    try:
        return str(plain.execute("SELECT current_setting('memory_limit')").fetchone()[0])
    finally:
        plain.close()


def test_bounded_memory_lowers_the_limit_for_the_load_then_restores_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(store.MEMORY_LIMIT_ENV, raising=False)
    monkeypatch.setattr(store, "_usable_memory_bytes", lambda: 64 * 2**30)  # DuckDB's cap: 2048MB
    con = store.open_db(tmp_path / "db.duckdb")
    try:
        def setting() -> str:
            return str(con.execute("SELECT current_setting('memory_limit')").fetchone()[0])

        inside = store.bounded_memory(con, setting)
        assert inside == _shown(f"{store.ANALYSIS_MEMORY_LIMIT_BYTES // 2**20}MB") != _shown("2048MB")
        assert setting() == _shown("2048MB")
        # never raised: a 200 MiB pod gives DuckDB 80 MiB, below the analysis limit
        monkeypatch.setattr(store, "_usable_memory_bytes", lambda: 200 * 2**20)
        assert store.bounded_memory(con, setting) == _shown("80MB")
        # an error inside the load restores the limit too
        monkeypatch.setattr(store, "_usable_memory_bytes", lambda: 64 * 2**30)
        with pytest.raises(ZeroDivisionError):
            store.bounded_memory(con, lambda: 1 / 0)
        assert setting() == _shown("2048MB")
    finally:
        con.close()


def test_bounded_memory_runs_the_load_again_at_the_full_limit_when_duckdb_runs_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(store.MEMORY_LIMIT_ENV, raising=False)
    monkeypatch.setattr(store, "_usable_memory_bytes", lambda: 64 * 2**30)
    con = store.open_db(tmp_path / "db.duckdb")
    seen: list[str] = []
    try:
        def load() -> int:
            seen.append(str(con.execute("SELECT current_setting('memory_limit')").fetchone()[0]))
            # DuckDB's own error: a sort of 3 M rows with nowhere to spill (no temp directory)
            # does not fit in 1 MiB, and fits in 2 GiB
            con.execute("SET temp_directory = ''")
            try:
                row = con.execute("SELECT count(*) FROM (SELECT range % 1000003 AS x FROM range(3000000) "
                                  "ORDER BY x DESC)").fetchone()
            finally:
                con.execute("RESET temp_directory")
            return int(row[0])

        assert store.bounded_memory(con, load, limit_bytes=2**20) == 3_000_000
        assert seen == [_shown("1MB"), _shown("2048MB")]
    finally:
        con.close()


def test_bounded_memory_keeps_an_explicit_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(store.MEMORY_LIMIT_ENV, "300MB")
    con = store.open_db(tmp_path / "db.duckdb")
    try:
        assert store.bounded_memory(con, lambda: con.execute("SELECT current_setting('memory_limit')").fetchone()[0]) \
            == _shown("300MB")
    finally:
        con.close()


def test_the_process_memory_can_be_given_in_place_of_the_cgroup(monkeypatch: pytest.MonkeyPatch) -> None:
    # deploy/deployment.yaml passes the container's limit (bytes); a quantity works too
    from capplan.errors import UsageError

    monkeypatch.delenv(store.MEMORY_LIMIT_ENV, raising=False)
    monkeypatch.setenv(store.PROCESS_MEMORY_ENV, "1000Mi")
    assert store.duckdb_config()["memory_limit"] == "400MB"
    monkeypatch.setenv(store.PROCESS_MEMORY_ENV, str(2 * 2**30))
    assert store.duckdb_config()["memory_limit"] == "819MB"  # 40% of 2 GiB, in whole MiB
    monkeypatch.setenv(store.PROCESS_MEMORY_ENV, "lots")
    with pytest.raises(UsageError, match="CAPPLAN_MEMORY_LIMIT"):
        store.duckdb_config()


def test_release_memory_empties_the_buffer_pool_and_keeps_the_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(store.MEMORY_LIMIT_ENV, raising=False)
    monkeypatch.setattr(store, "_usable_memory_bytes", lambda: 64 * 2**30)  # DuckDB's cap: 2048MB
    path = tmp_path / "db.duckdb"
    writer = duckdb.connect(str(path))
    writer.execute("CREATE TABLE t AS SELECT range AS i, random() AS x FROM range(4000000)")
    writer.close()
    con = store.open_db(path, read_only=True)
    try:
        def pool_bytes() -> int:
            return int(con.execute("SELECT memory_usage_bytes FROM duckdb_memory() WHERE tag = 'BASE_TABLE'")
                       .fetchone()[0])

        # reading the table leaves its blocks (4 M rows of two 8-byte columns, some 30+ MiB) in the pool
        assert con.execute("SELECT sum(i), count(x) FROM t").fetchone() == (sum(range(4000000)), 4000000)
        assert pool_bytes() > 16 * 2**20
        store.release_memory(con)
        assert pool_bytes() <= 2**20
        assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == _shown("2048MB")
        # the data is all still there: read again from the file
        assert con.execute("SELECT sum(i), count(x) FROM t").fetchone() == (sum(range(4000000)), 4000000)
        monkeypatch.setenv(store.MEMORY_LIMIT_ENV, "300MB")  # an explicit limit is the one restored
        store.release_memory(con)
        assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == _shown("300MB")
    finally:
        con.close()


def test_give_back_freed_keeps_the_limit_in_force(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(store.MEMORY_LIMIT_ENV, raising=False)
    monkeypatch.setattr(store, "_usable_memory_bytes", lambda: 64 * 2**30)  # DuckDB's cap: 2048MB
    con = store.open_db(tmp_path / "db.duckdb")
    try:
        def setting() -> str:
            return str(con.execute("SELECT current_setting('memory_limit')").fetchone()[0])

        def load() -> str:
            store.give_back_freed(con)
            return setting()

        assert store.bounded_memory(con, load, 48 * 2**20) == _shown("48MB")  # a bounded load's limit
        assert setting() == _shown("2048MB")
        store.give_back_freed(con)  # outside a load: the connection's
        assert setting() == _shown("2048MB")
    finally:
        con.close()
