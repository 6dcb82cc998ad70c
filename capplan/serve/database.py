"""The service's way into the store: a read-only connection per computation, the data version
its caches are keyed on, and the newest collection run.

DuckDB lets one process write a file or several read it, never both at once, and refuses a
read-only and a read-write connection to one file inside one process; so the service opens the
file read-only when it computes and closes it after. A database the service cannot use (newer
schema, not a DuckDB file, held by a writer for longer than `lock_wait_seconds`) is the server's
state, not the client's mistake: DatabaseUnavailable, HTTP 503 with the reason.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from capplan import store
from capplan.errors import BadInputError, CapplanError, LockedError


class DatabaseUnavailable(CapplanError):
    """The database exists but cannot be used now (HTTP 503)."""

    exit_code = 4


class Database:
    """The database file the service reads."""

    def __init__(self, path: Path | None, *, lock_wait_seconds: float = 3.0) -> None:
        self.path = store.resolve_db_path(path)
        self.lock_wait_seconds = lock_wait_seconds

    @contextlib.contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection, closed afterwards. A missing file is NoDataError (404)."""
        try:
            con = store.open_db(self.path, read_only=True, wait_seconds=self.lock_wait_seconds)
        except (BadInputError, LockedError) as err:
            raise DatabaseUnavailable(str(err)) from err
        try:
            yield con
        finally:
            con.close()

    def version(self) -> tuple[Any, ...]:
        """A fingerprint of the file's state: (mtime_ns, size, inode) of the database and of its
        write-ahead log. Every committed transaction of another process changes one of them, and
        reading it costs two stat() calls instead of opening DuckDB: the caches stay valid until
        a collection or import commits. (A checkpoint changes it too without changing the data;
        that costs one recomputation.)"""
        out: list[Any] = []
        for path in (self.path, self.path.with_name(self.path.name + ".wal")):
            try:
                st = os.stat(path)
            except FileNotFoundError:
                out.append(None)
                continue
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(out)


@dataclass
class CollectionStatus:
    """The newest collection run recorded in the store (collection_runs)."""

    started_at: datetime | None
    finished_at: datetime | None
    status: str | None
    samples: int | None
    series: int | None
    last_ok_finished_at: datetime | None

    @property
    def duration_seconds(self) -> float | None:
        """Wall-clock seconds the newest finished run took."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


def collection_status(con: duckdb.DuckDBPyConnection) -> CollectionStatus:
    """The newest collection run and the newest successful one."""
    row = con.execute(store.load_sql("service_last_collection")).fetchone()
    if row is None:
        return CollectionStatus(None, None, None, None, None, None)
    return CollectionStatus(*row)


def newest_sample(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """The newest stored usage sample, None when there is none."""
    row = con.execute("SELECT max(ts) FROM usage_samples").fetchone()
    return row[0] if row else None


def utcnow() -> datetime:
    """Now as the store keeps times: naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


def epoch_seconds(ts: datetime) -> float:
    """Unix seconds of a naive UTC time."""
    return ts.replace(tzinfo=UTC).timestamp()
