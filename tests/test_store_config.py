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
