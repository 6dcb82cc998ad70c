"""The DuckDB store: opening, schema migrations, named SQL, and the bulk writers.

Every writer takes polars frames and writes them through Arrow in one statement per table, so
the collector and `capplan import` share one path into the database. Writers never commit;
callers wrap a chunk in `transaction()` so a chunk lands whole or not at all.
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import importlib.util
import io
import itertools
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

import duckdb
import polars as pl

from capplan import gate
from capplan.errors import BadInputError, LockedError, NoDataError, UsageError
from capplan.quantity import parse_memory_bytes

# DuckDB tries to import pandas on every execute with parameters (to convert pandas values); where
# pandas is not installed each try searches sys.path again: ~0.15 ms per statement, ~0.3 s of CPU
# over bench/collect_bench.py's M first run (~2,000 statements). Marked absent once, a try fails
# at once (None in sys.modules).
if "pandas" not in sys.modules and importlib.util.find_spec("pandas") is None:
    sys.modules["pandas"] = None  # type: ignore[assignment]

SCHEMA_VERSION = 10  # 002 series identity, 003 compact storage and rollups, 004 the collector's collector_sources, 005 clusters,
# 006 the node-level usage series, 007 the daily usage figures per scope (cluster, namespace), 008 the namespace sums,
# 009 raw samples clustered in series-id blocks per day (usage_raw_unclustered), 010 the node and namespace sums keyed
# by integer ids (node_sums, namespace_sums; node_usage and namespace_usage are views)
DEFAULT_DB = "capplan.duckdb"
# The cluster of everything written without one, and of databases from before clusters (schema 5).
DEFAULT_CLUSTER = "default"
# Spec observations this close to an existing interval with the same values extend it.
SPEC_GAP = timedelta(hours=1)

_PACKAGE_DIR = Path(__file__).resolve().parent


def queries_dir() -> Path:
    """The folder of named SQL: installed inside the package, or `queries/` in a source tree."""
    for candidate in (_PACKAGE_DIR / "queries", _PACKAGE_DIR.parent / "queries"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("capplan's queries/ folder is missing from this installation")


# A query reads the stored samples of a span through the table macro usage_stored_in(lo, hi): raw
# samples and rollups (queries/node_usage_macros.sql). Run with raw=True, it reads them through
# usage_raw_in(lo, hi) instead: usage_raw alone, the same rows for a span without rolled-up samples
# (capplan.analysis.rollup_span), which DuckDB runs faster than the union.
_STORED_SOURCE = re.compile(r"\busage_stored_in\(")


def load_sql(name: str, *, raw: bool = False) -> str:
    """The text of `queries/NAME.sql`; with `raw`, reading its samples from usage_raw alone (see
    _STORED_SOURCE)."""
    text = (queries_dir() / f"{name}.sql").read_text()
    if not raw:
        return text
    text, sources = _STORED_SOURCE.subn("usage_raw_in(", text)
    if not sources:
        raise ValueError(f"queries/{name}.sql reads no usage_stored_in(lo, hi): it cannot read usage_raw alone")
    return text


def resolve_db_path(path: str | os.PathLike[str] | None) -> Path:
    """`--db PATH`, else `$CAPPLAN_DB`, else `./capplan.duckdb` (CONTRACT.md)."""
    return Path(path or os.environ.get("CAPPLAN_DB") or DEFAULT_DB)


# DuckDB's own default is 80% of the machine's RAM, whatever the container's limit; capplan gives it
# a share of the memory the process may really use (the cgroup limit, else physical RAM) and lets
# big aggregations spill to disk beyond it. 40%: the rest is for Python, polars frames and the
# service (bench/RESULTS.md: peak RSS per command; docs/serve.md: pod limits).
DUCKDB_MEMORY_SHARE = 0.4
# At most 2 GiB: issue 14's budget is 2 GiB per command at L. A cap of 1 GiB (used for bench/RESULTS.md's
# L figures) made `forecast --window 365d` at L fail with DuckDB's out-of-memory error.
DUCKDB_MEMORY_CAP_BYTES = 2 * 2**30
MEMORY_LIMIT_ENV = "CAPPLAN_DUCKDB_MEMORY_LIMIT"  # e.g. 2GB; DuckDB's syntax
# The memory the process may use, in place of its cgroup limit (e.g. 2Gi; deploy/deployment.yaml sets
# it from the container's limit; the bench's serve step from that manifest, as a pod would see it).
PROCESS_MEMORY_ENV = "CAPPLAN_MEMORY_LIMIT"
THREADS_ENV = "CAPPLAN_DUCKDB_THREADS"


def _usable_memory_bytes() -> int:
    """$CAPPLAN_MEMORY_LIMIT when set, else the cgroup (v2, then v1) memory limit of this process,
    else the machine's RAM."""
    given = os.environ.get(PROCESS_MEMORY_ENV)
    if given:
        try:
            return parse_memory_bytes(given)
        except (ValueError, BadInputError) as exc:
            raise UsageError(f"${PROCESS_MEMORY_ENV}: not a memory size (e.g. 2Gi or bytes): {given[:40]!r}") from exc
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            return min(int(text), physical)
    return physical


def _duckdb_limit_bytes() -> int:
    """DuckDB's share of the usable memory, at most the cap (without the environment override)."""
    return int(min(_usable_memory_bytes() * DUCKDB_MEMORY_SHARE, DUCKDB_MEMORY_CAP_BYTES))


def duckdb_config() -> dict[str, str | bool | int | float | list[str]]:
    """memory_limit and threads for every connection capplan opens (environment overrides)."""
    config: dict[str, str | bool | int | float | list[str]] = {"memory_limit": _full_limit()}
    threads = os.environ.get(THREADS_ENV)
    if threads:
        config["threads"] = threads
    return config


# What a sliced analysis (forecast's day slices, recommend's per-series aggregates) needs of DuckDB
# at a time is small, but every block it reads stays in DuckDB's buffer pool up to memory_limit, and
# none is read twice: at the bench's L (86.5 M samples) that pool alone was 450 MiB of the peak
# RSS, so the peak grew with the samples. Under this limit the pool drops blocks already read.
# 128 MiB: the forecast and recommend auto/vpa at L ran with it at the same CPU time and the same
# answers, peak RSS 902 -> 531 MiB (forecast) and 1042 -> 569 MiB (auto); 32 MiB ran out of memory
# (recommend auto at M), which bounded_memory answers by running the load again at the full limit.
ANALYSIS_MEMORY_LIMIT_BYTES = 128 * 2**20

T = TypeVar("T")


# The memory_limit setting bounded_memory gave DuckDB for the load running now (None: none runs).
_BOUNDED_LIMIT: contextvars.ContextVar[str | None] = contextvars.ContextVar("capplan_bounded_limit", default=None)


def _full_limit() -> str:
    """The memory_limit setting of a connection as capplan opens it (duckdb_config)."""
    return os.environ.get(MEMORY_LIMIT_ENV) or f"{_duckdb_limit_bytes() // 2**20}MB"


def bounded_memory(con: duckdb.DuckDBPyConnection, load: Callable[[], T],
                   limit_bytes: int = ANALYSIS_MEMORY_LIMIT_BYTES) -> T:
    """`load()` with DuckDB's memory limit lowered to `limit_bytes` (never raised), then the
    connection's limit as capplan opens it (duckdb_config) again. DuckDB running out of memory
    under the lower limit makes `load()` run once more at the full limit: slower, never wrong.
    $CAPPLAN_DUCKDB_MEMORY_LIMIT, when set, is the limit throughout. The limit belongs to the
    database instance, shared by the process's connections to the file: `capplan serve` runs one
    analysis at a time (capplan.serve.cache)."""
    if os.environ.get(MEMORY_LIMIT_ENV):
        return load()
    full_mb = _duckdb_limit_bytes() // 2**20
    low = f"{min(limit_bytes // 2**20, full_mb)}MB"
    con.execute(f"SET memory_limit = '{low}'")
    token = _BOUNDED_LIMIT.set(low)
    try:
        return load()
    except duckdb.OutOfMemoryException:
        con.execute(f"SET memory_limit = '{full_mb}MB'")
        _BOUNDED_LIMIT.set(f"{full_mb}MB")
        return load()
    finally:
        _BOUNDED_LIMIT.reset(token)
        con.execute(f"SET memory_limit = '{full_mb}MB'")


def give_back_freed(con: duckdb.DuckDBPyConnection) -> None:
    """Make DuckDB return to the OS the memory it freed, which its allocator otherwise keeps for
    later queries: setting the memory limit does that, so it is set again to the one in force (a
    bounded_memory load's, else the connection's). After recommend auto's percentiles at the bench's
    L it kept 96 MiB that the polars work after them could not use."""
    con.execute(f"SET memory_limit = '{_BOUNDED_LIMIT.get() or _full_limit()}'")


# What release_memory lowers DuckDB's limit to for a moment: low enough that the buffer pool keeps
# none of the blocks already read (1 MiB: the least DuckDB accepts with a block to spare).
RELEASE_LIMIT = "1MB"


def release_memory(con: duckdb.DuckDBPyConnection) -> None:
    """Give back what DuckDB still holds after an analysis: the blocks its buffer pool kept (up to
    the limit it ran under, e.g. 108 MiB after eviction at the bench's L) and what its allocator
    kept of the memory it freed (setting the limit flushes it: 96 MiB after recommend auto's
    percentiles at L). Between analyses that read other data nothing is lost but a re-read of blocks
    from the OS's file cache. Then the limit the connection had (duckdb_config)."""
    full = _full_limit()
    try:
        con.execute(f"SET memory_limit = '{RELEASE_LIMIT}'")
    except duckdb.OutOfMemoryException:
        pass  # blocks still pinned (a temporary table in use): what could be freed has been
    finally:
        con.execute(f"SET memory_limit = '{full}'")


def _connect(path: Path, read_only: bool, wait_seconds: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=duckdb_config())
        except duckdb.IOException as exc:
            text = str(exc)
            if "lock" in text.lower() and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            if "lock" in text.lower():
                raise LockedError(f"database {path} is busy: another capplan process holds it") from exc
            if "read-only" in text.lower() or "permission" in text.lower():
                raise BadInputError(f"cannot open database {path} for writing: {text.splitlines()[0]}") from exc
            raise BadInputError(f"cannot open database {path}: {text.splitlines()[0]}") from exc
        except duckdb.Error as exc:
            raise BadInputError(f"{path} is not a capplan database: {str(exc).splitlines()[0]}") from exc


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The schema version stored in the database, 0 for an empty one."""
    has_table = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
    ).fetchone()
    if not has_table or has_table[0] == 0:
        return 0
    row = con.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrations() -> list[tuple[int, Path]]:
    """The forward migrations `queries/schema/NNN_name.sql`, in order."""
    found = []
    for path in sorted((queries_dir() / "schema").glob("*.sql")):
        found.append((int(path.name.split("_", 1)[0]), path))
    return found


def migrate(con: duckdb.DuckDBPyConnection, upto: int | None = None) -> int:
    """Bring the schema up to SCHEMA_VERSION (or `upto`: tests build older databases), each
    migration in its own transaction."""
    current = schema_version(con)
    for version, path in migrations():
        if version <= current or (upto is not None and version > upto):
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(path.read_text())
            con.execute("DELETE FROM schema_version")
            con.execute("INSERT INTO schema_version VALUES (?)", [version])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        current = version
    return current


def _check_version(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    version = schema_version(con)
    if version > SCHEMA_VERSION:
        raise BadInputError(
            f"database {path} has schema version {version}, newer than this capplan supports "
            f"({SCHEMA_VERSION}); upgrade capplan"
        )
    return version


def open_db(
    path: str | os.PathLike[str] | None = None,
    *,
    read_only: bool = False,
    create: bool = True,
    wait_seconds: float = 10.0,
    end: datetime | None = None,
    refresh_sums: bool = True,
    current: bool = False,
) -> duckdb.DuckDBPyConnection:
    """Open (and create or migrate) the capplan database.

    `refresh_sums=False`: a writer that refreshes the stored sums itself (the collector, after each
    chunk) leaves what is pending for it. `current=True`: this process opened the database as a
    writer before (its schema is current), so a writer's open skips the read-only look at the
    version first (one connect less: the collector's chunks, ~20 ms each at the bench's M).

    Read-only opens never change the file; they fail with NoDataError when it does not exist.
    `end` (`--end`): analyses on the connection end at the newest sample at or before it.
    A database written by a newer capplan raises BadInputError (exit 4) before anything is
    written. Lock conflicts are retried for `wait_seconds`, then raise LockedError.
    """
    db_path = resolve_db_path(path)
    if not db_path.exists():
        if read_only or not create:
            raise NoDataError(f"no database at {db_path}: run `capplan collect` or `capplan import` first")
    elif read_only:
        con = _connect(db_path, True, wait_seconds)
        try:
            if _check_version(con, db_path) < SCHEMA_VERSION:
                # An older schema must be migrated once by a writer; do it, then reopen read-only.
                con.close()
                open_db(db_path, read_only=False, wait_seconds=wait_seconds).close()
                con = _connect(db_path, True, wait_seconds)
            define_macros(con)
            if end is not None:
                set_end(con, end)
        except BaseException:
            con.close()
            raise
        return con
    elif not current:
        # Look before writing: a newer database must stay untouched.
        probe = _connect(db_path, True, wait_seconds)
        try:
            _check_version(probe, db_path)
        finally:
            probe.close()
    if db_path.parent and not db_path.parent.exists():
        raise BadInputError(f"folder {db_path.parent} for database {db_path} does not exist")
    if not db_path.exists():
        _create_atomically(db_path, wait_seconds)
    con = _connect(db_path, False, wait_seconds)
    try:
        _check_version(con, db_path)
        migrate(con)
        define_macros(con)
        # Sums left pending by a run killed before it finished, or a migration: made current here.
        if refresh_sums:
            refresh_node_usage(con)
        if end is not None:
            set_end(con, end)
    except BaseException:
        con.close()
        raise
    return con


def _create_atomically(db_path: Path, wait_seconds: float) -> None:
    """Build a new database with its whole schema beside the target, then rename it into place,
    so a run killed while creating leaves either no file or a complete one, never an empty one."""
    staging = db_path.with_name(f".{db_path.name}.creating-{os.getpid()}")
    for leftover in (staging, staging.with_name(staging.name + ".wal")):
        leftover.unlink(missing_ok=True)
    try:
        con = _connect(staging, False, wait_seconds)
        try:
            migrate(con)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        if not db_path.exists():  # another process may have won the race: keep theirs
            os.replace(staging, db_path)
    except OSError as exc:
        raise BadInputError(f"cannot create database {db_path}: {exc.strerror or exc}") from exc
    finally:
        staging.unlink(missing_ok=True)
        staging.with_name(staging.name + ".wal").unlink(missing_ok=True)


def define_macros(con: duckdb.DuckDBPyConnection) -> None:
    """The connection's table macros (queries/node_usage_macros.sql, scope_usage_macros.sql); DuckDB checks their tables
    when they are created, so after the migrations."""
    con.execute(load_sql("node_usage_macros"))
    con.execute(load_sql("scope_usage_macros"))


def fetch_row(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None) -> tuple[Any, ...]:
    """The one row an aggregate query returns (an aggregate without GROUP BY always returns one)."""
    row = con.execute(sql, params).fetchone()
    if row is None:
        raise RuntimeError(f"the aggregate returned no row: {sql}")
    return row


# Frames go to DuckDB and back through the Arrow C stream interface (PyCapsules) rather than
# pyarrow: `con.register(name, frame.to_arrow())` and `.pl()` import pyarrow (and its dataset
# module, numpy), ~0.25 s of CPU in every process that touches the store (`python -X importtime`;
# issue 15's next hour is two such processes against a 1.5 s target). Same Arrow data both ways:
# the frames are identical (tests/test_store.py).
_FRAME_IDS = itertools.count()


def frame_of(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | list[Any] | None = None) -> pl.DataFrame:
    """The result of one SELECT as a polars frame (what `con.execute(sql, params).pl()` returns,
    without importing pyarrow).

    With parameters the query runs as a prepared `CREATE TEMP TABLE ... AS` and the frame is read
    from that table: a relation made by `con.sql(sql, params=...)` is planned without the values,
    and forecast's pod-day query (queries/forecast_pod_days.sql, a week of the bench's L) took 0.75 s
    that way against 0.16 s prepared (0.17 s through the temporary table; bench/RESULTS.md)."""
    if not params:
        relation = con.sql(sql)
        if relation is None:  # not a query: nothing to return
            raise ValueError(f"not a query: {sql[:60]}")
        return _compact(pl.DataFrame(relation))
    table = f"_frame_of_{next(_FRAME_IDS)}"
    con.execute(f"CREATE TEMP TABLE {table} AS {sql}", params)
    try:
        return _compact(pl.DataFrame(con.sql(f"SELECT * FROM temp.{table}")))
    finally:
        con.execute(f"DROP TABLE IF EXISTS temp.{table}")


# frame_of copies results of fewer rows than this into polars' own buffers (owned_frame): DuckDB's
# Arrow export allocates its buffers for a batch of a million rows, so a small result kept as it
# comes pins up to ~60 MiB (one of recommend's L percentile parts, 1,700 rows: 61 MiB). Below half
# a batch most of the export's memory is waste and the copy is small (~1 ms per 30,000 rows);
# larger results are kept as they come (their copy would cost more and double them for a moment).
# At the bench's L (load 5-10, alternating with f33771e, twice each): report's peak RSS 563/539 ->
# 496/496 MiB at 26.0/26.8 -> 25.2/24.2 CPU-s, serve's VmHWM over every endpoint 784/760 -> 634/616
# MiB (bench/RESULTS.md, issue 14, RV).
OWN_BELOW_ROWS = 500_000


def _compact(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` in polars' own buffers when it has fewer than OWN_BELOW_ROWS rows, else as it is."""
    return owned_frame(frame) if frame.height < OWN_BELOW_ROWS else frame


def owned_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` in buffers of polars' own (an Arrow IPC copy, polars' own writer and reader: no
    pyarrow). polars takes a DuckDB result's Arrow buffers without copying, and a frame kept keeps
    them (OWN_BELOW_ROWS)."""
    buffer = io.BytesIO()
    frame.write_ipc(buffer, compression="uncompressed")
    buffer.seek(0)
    return pl.read_ipc(buffer, memory_map=False)


@contextlib.contextmanager
def staged_table(con: duckdb.DuckDBPyConnection, name: str, frame: pl.DataFrame) -> Iterator[None]:
    """`frame` as the temporary relation `name` for the statements inside (an Arrow stream is read
    once; the statements may read it several times). Columns of unknown type (all NULL, polars'
    Null) stay untyped NULLs, as pyarrow's null columns were: they compare and insert as NULL
    whatever the other side's type."""
    nulls = [c for c, t in frame.schema.items() if t == pl.Null]
    if len(nulls) == frame.width:
        frame, nulls = frame.with_columns(pl.col(nulls).cast(pl.Utf8)), []
    data = f"{name}__data" if nulls else name
    stream = f"{name}__stream"
    con.register(stream, frame.drop(nulls).__arrow_c_stream__())
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {data} AS SELECT * FROM {stream}")
    finally:
        con.unregister(stream)
    if nulls:
        columns = ", ".join(f'"{c}"' if c not in nulls else f'NULL AS "{c}"' for c in frame.columns)
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {columns} FROM {data}")
    def drop() -> None:
        if nulls:
            con.execute(f"DROP VIEW IF EXISTS temp.{name}")
        con.execute(f"DROP TABLE IF EXISTS temp.{data}")

    try:
        yield
    except BaseException:
        # A failed statement inside (a full disk, say) aborts the transaction: dropping then fails
        # too, and must not hide the first error. The rollback that follows drops what it made.
        with contextlib.suppress(duckdb.Error):
            drop()
        raise
    drop()


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """One all-or-nothing transaction."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


@contextlib.contextmanager
def collection_lock(path: str | os.PathLike[str] | None, *, wait: bool = False) -> Iterator[Path]:
    """Hold the writer lock `DB.lock` (flock) for a collection or import.

    A second writer raises LockedError at once, or waits when `wait` is true. The kernel drops
    the lock when the process dies, so a killed run never leaves a stale lock behind.
    """
    db_path = resolve_db_path(path)
    lock_path = db_path.with_name(db_path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise BadInputError(f"cannot create lock file {lock_path}: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError as exc:
            raise LockedError(
                f"another collection holds the lock on {db_path} (use --wait to queue behind it)"
            ) from exc
        yield lock_path
    finally:
        os.close(fd)


class QueryEngine(Protocol):
    """Another engine that runs some named queries instead of DuckDB (`--engine spark`,
    capplan.engines): the same SQL, over a copy of the store (the lake), giving the same frame."""

    def runs(self, name: str) -> bool:
        """Whether this engine runs `queries/NAME.sql`."""
        ...

    def query(self, con: duckdb.DuckDBPyConnection, name: str, params: dict[str, Any]) -> pl.DataFrame:
        """The result of `queries/NAME.sql`, with the columns and types DuckDB gives on `con`."""
        ...


# The engine in use (None: DuckDB runs everything). A context variable, so analyses keep calling
# query() as they always do and the CLI picks the engine around them (using_engine).
_ENGINE: contextvars.ContextVar[QueryEngine | None] = contextvars.ContextVar("capplan_engine", default=None)


@contextlib.contextmanager
def using_engine(engine: QueryEngine | None) -> Iterator[None]:
    """Within the block, the named queries `engine` runs go to it instead of DuckDB."""
    token = _ENGINE.set(engine)
    try:
        yield
    finally:
        _ENGINE.reset(token)


def engine_for(name: str) -> QueryEngine | None:
    """The engine that runs `queries/NAME.sql` now, None for DuckDB."""
    engine = _ENGINE.get()
    return engine if engine is not None and engine.runs(name) else None


def query(con: duckdb.DuckDBPyConnection, name: str, params: dict[str, Any] | None = None, *,
          raw: bool = False) -> pl.DataFrame:
    """Run `queries/NAME.sql` with named parameters ($name) and return a polars frame (on the
    engine in use when it runs that query, see using_engine); `raw`: its samples from usage_raw
    alone (load_sql), for a span the caller knows holds no rolled-up sample."""
    engine = engine_for(name)
    if engine is not None:
        return engine.query(con, name, params or {})
    return frame_of(con, load_sql(name, raw=raw), params)


# `--end T`: analyses on a connection end at the newest sample at or before T instead of the newest
# stored one, so one late row cannot hide the cluster. Kept on the connection (a DuckDB session
# variable) so every analysis that asks for its window gets it without a parameter of its own.
_END_VARIABLE = "capplan_end"


def set_end(con: duckdb.DuckDBPyConnection, end: datetime | None) -> None:
    """Make analyses on `con` end at the newest sample at or before `end` (None: the newest)."""
    if end is None:
        con.execute(f"RESET VARIABLE {_END_VARIABLE}")
    else:
        con.execute(f"SET VARIABLE {_END_VARIABLE} = CAST($end AS TIMESTAMP)", {"end": end})


def analysis_end(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """The `--end` set on this connection, or None."""
    row = con.execute(f"SELECT getvariable('{_END_VARIABLE}')").fetchone()
    return row[0] if row else None


def sample_range(con: duckdb.DuckDBPyConnection) -> tuple[datetime, datetime]:
    """The oldest and newest stored usage sample (the newest at or before `--end` when one is set);
    NoDataError when there is none."""
    end = analysis_end(con)
    row = con.execute(load_sql("sample_range"), {"end": end}).fetchone()
    if row is None or row[1] is None:
        if end is not None:
            raise NoDataError(f"no usage samples at or before --end {end:%Y-%m-%dT%H:%M:%SZ}")
        raise NoDataError("the database holds no usage samples: run `capplan collect` or `capplan import`")
    return row[0], row[1]


def analysis_window(con: duckdb.DuckDBPyConnection, window: timedelta) -> tuple[datetime, datetime]:
    """The window `[newest - window, newest]` that analyses use (CONTRACT.md `--window`, `--end`)."""
    oldest, newest = sample_range(con)
    return max(oldest, newest - window), newest



# --- the node-level usage series (schema 006) -----------------------------------------------

# Pending ranges are recomputed a slice at a time, each in its own transaction: one day of the
# bench's L cluster (1,296 nodes, 2.9 M samples) sums into 373,000 rows, so a refresh holds a
# day's aggregate, never the window's (peak RSS must not grow with the samples, issue 14).
NODE_USAGE_SLICE = timedelta(days=1)
# A stand-in for "no pending range": lo after hi, so node_usage_window sums nothing from the samples.
_NO_RANGE = (datetime(9999, 1, 1), datetime(1, 1, 1))


def _whole_seconds(lo: datetime, hi: datetime) -> tuple[datetime, datetime]:
    """[lo, hi] widened to whole seconds (stored times are whole seconds, the refresh's
    bounds are too: queries/node_usage_refresh.sql)."""
    ceil = hi.replace(microsecond=0) + (timedelta(seconds=1) if hi.microsecond else timedelta(0))
    return lo.replace(microsecond=0), ceil


def mark_node_usage_pending(con: duckdb.DuckDBPyConnection, lo: datetime | None, hi: datetime | None) -> None:
    """Record that the node sums (schema 006) and the daily scope figures (schema 007) in [lo, hi]
    may be stale (inside the writer's transaction)."""
    if lo is None or hi is None:
        return
    bounds = dict(zip(("lo", "hi"), _whole_seconds(lo, hi), strict=True))
    con.execute("INSERT INTO node_usage_pending (lo, hi) VALUES ($lo, $hi)", bounds)
    con.execute("INSERT INTO scope_usage_pending (lo, hi) VALUES ($lo, $hi)", bounds)


def mark_series_pending(con: duckdb.DuckDBPyConnection, series_ids: list[int]) -> None:
    """The node sums over the whole span of these series (they moved to another node)."""
    if series_ids:
        lo, hi = fetch_row(con, "SELECT min(ts), max(ts) FROM usage_samples WHERE series_id IN (SELECT unnest($ids))",
                           {"ids": series_ids})
        mark_node_usage_pending(con, lo, hi)


def mark_node_usage_beyond(con: duckdb.DuckDBPyConnection, bound: datetime, op: str) -> None:
    """The stored node sums before (`op` "<") or after (">") `bound` may be stale: samples there were
    removed or rolled up (into rows stamped at the start of their hour or day: the range starts at
    the day of the first sum)."""
    # the scope figures count series on no node too, which have no node sums: both tables bound it
    if op == "<":
        row = fetch_row(con, "SELECT least((SELECT date_trunc('day', min(ts)) FROM node_sums WHERE ts <= $t), "
                             "(SELECT CAST(min(day) AS TIMESTAMP) FROM scope_usage_daily WHERE first_ts <= $t))",
                        {"t": bound})
        mark_node_usage_pending(con, row[0], bound)
    else:
        row = fetch_row(con, "SELECT greatest((SELECT max(ts) FROM node_sums WHERE ts >= $t), "
                             "(SELECT max(last_ts) FROM scope_usage_daily WHERE last_ts >= $t))", {"t": bound})
        mark_node_usage_pending(con, bound, row[0])


def node_usage_params(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> dict[str, datetime]:
    """The parameters of node_usage_window over [start, end]: $start, $end, and $dirty_lo/$dirty_hi,
    the hull of the pending ranges within the window (summed from the samples)."""
    row = fetch_row(con, "SELECT min(lo), max(hi) FROM node_usage_pending WHERE hi >= $start AND lo <= $end",
                    {"start": start, "end": end})
    dirty_lo, dirty_hi = (row[0], row[1]) if row[0] is not None else _NO_RANGE
    return {"start": start, "end": end, "dirty_lo": dirty_lo, "dirty_hi": dirty_hi}


def _merged(ranges: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + timedelta(seconds=1):
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


# Node sums and namespace sums (with the daily figures) are refreshed side by side, each on its own
# connection and on one DuckDB thread, when both have at least this much time pending: the two read
# the same samples and write different tables, and two statements on one thread each use both cores
# better than one after the other on two (the bench's L import, 10 days: 2.83-2.92 -> 2.20-2.49 s
# wall, 5.0-5.4 -> 4.2-4.7 CPU-s; bench/RESULTS.md, SB). An hourly collect's refresh (an hour
# pending) stays on one connection: a second one's ids would cost more than it saves.
SIDE_BY_SIDE_SECONDS = 6 * 3600
# ... and when DuckDB may use at least this much memory: two slices at once under the CSV import's
# 64 MB (61 MiB, capplan.file_ingest) stored the L CSV's node sums in more row groups (the file 41.2
# -> 44.0 MiB) or ran out of memory, and took longer than one after the other (4.31 against 4.02 s);
# under the Parquet import's 128 MB (122 MiB), 256 MB and 1 GB the file was the one a refresh on one
# connection writes (bench/RESULTS.md, SB).
SIDE_BY_SIDE_MIN_MEMORY_BYTES = 100 * 2**20


def refresh_node_usage(con: duckdb.DuckDBPyConnection, slice_length: timedelta = NODE_USAGE_SLICE, *,
                       scope: bool = True) -> int:
    """Recompute what is pending of the stored sums, a slice per transaction (a killed refresh
    leaves the rest pending): the node sums (schema 006), then (unless `scope` is False: they stay
    pending) the daily scope figures of the days touched (schema 007, refresh_scope_usage). The
    number of node rows written. Call outside a transaction."""
    node_ranges, scope_ranges = _pending(con, "node_usage_pending"), _pending(con, "scope_usage_pending")
    # one set of ids and one look at the rollups for both (an hourly collect's refresh at the
    # bench's M: building them is most of its ~50 ms of CPU)
    source = _SumsSource(con, node_ranges + scope_ranges)
    if (scope and min(_span_seconds(node_ranges), _span_seconds(scope_ranges)) >= SIDE_BY_SIDE_SECONDS
            and _duckdb_memory_limit(con) >= SIDE_BY_SIDE_MIN_MEMORY_BYTES):
        return _refresh_side_by_side(con, slice_length, source, node_ranges + scope_ranges)
    written = _refresh_node_sums(con, slice_length, source)
    if scope:
        refresh_scope_usage(con, source)
    return written


def _duckdb_memory_limit(con: duckdb.DuckDBPyConnection) -> int:
    """DuckDB's memory limit in bytes, from the setting as DuckDB shows it ('61.0 MiB', '1.9 GiB')."""
    shown = str(fetch_row(con, "SELECT current_setting('memory_limit')")[0])
    return parse_memory_bytes(shown.replace(" bytes", "").replace("iB", "i").replace(" ", ""))


def _span_seconds(ranges: list[tuple[datetime, datetime]]) -> float:
    return sum((hi - lo).total_seconds() for lo, hi in ranges)


def _refresh_side_by_side(con: duckdb.DuckDBPyConnection, slice_length: timedelta, source: _SumsSource,
                          ranges: list[tuple[datetime, datetime]]) -> int:
    """refresh_node_usage's node sums on `con` and, meanwhile, its scope refresh on a second
    connection to the same database (a cursor), DuckDB on one thread for both; the number of node
    rows written. A failure of the node sums interrupts the scope refresh; either failure is raised
    once both have stopped (what they did not finish stays pending), except DuckDB running out of
    memory: two slices at once need more of it than one (the L CSV import's two days under the CSV
    import's 64 MB, capplan.file_ingest), so what is left pending is then refreshed on `con`, one
    after the other, as refresh_node_usage does below SIDE_BY_SIDE_SECONDS."""
    from concurrent.futures import ThreadPoolExecutor

    with transaction(con):
        source.prepare()  # new names numbered and committed before the second connection reads them
    second = con.cursor()
    threads = fetch_row(con, "SELECT current_setting('threads')")[0]
    committed: list[int] = []
    try:
        define_macros(second)
        con.execute("SET threads = 1")  # (a setting of the database: both connections)
        with ThreadPoolExecutor(max_workers=1) as pool:
            scope_done = pool.submit(refresh_scope_usage, second, _SumsSource(second, ranges))
            try:
                _refresh_node_sums(con, slice_length, source, committed)
            except BaseException:
                second.interrupt()  # (the pool waits for the scope refresh: stop it at once)
                raise
            scope_done.result()
        return sum(committed)
    except duckdb.OutOfMemoryException:
        pass
    finally:
        con.execute(f"SET threads = {int(threads)}")
        second.close()
    again = _SumsSource(con, ranges)  # (on the connection's own threads now)
    _refresh_node_sums(con, slice_length, again, committed)
    refresh_scope_usage(con, again)
    return sum(committed)


def _pending(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[datetime, datetime]]:
    return _merged([(r[0], r[1]) for r in con.execute(f"SELECT lo, hi FROM {table}").fetchall()])


class _SumsSource:
    """What a refresh's slices read: the integer ids of the nodes and namespaces (schema 010: new
    names numbered, each series' ids in temp tables; queries/sums_refresh_ids.sql, at the first
    slice, in its transaction) and where the rolled-up samples are
    (a slice outside their span reads usage_raw alone: the rows are the same, and DuckDB aggregates
    the table alone faster than the union with the two empty rollup branches, as
    capplan.analysis.rollup_span says: bench L import, a day's node sums 0.18 -> 0.08 CPU-s)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, ranges: list[tuple[datetime, datetime]]) -> None:
        self._con = con
        self._hull = (min(r[0] for r in ranges), max(r[1] for r in ranges)) if ranges else None
        self._ready = False
        self._span: tuple[datetime, datetime] | None = None
        self._one_thread: bool | None = None
        self._unclustered: list[tuple[datetime, datetime]] = []

    def prepare(self, lo: datetime | None = None, hi: datetime | None = None) -> None:
        """The ids and the rollups' span, once (in the caller's transaction); [lo, hi]: the hull
        when the source was made without ranges."""
        if not self._ready:
            self._con.execute(load_sql("sums_refresh_ids"))
            lo_all, hi_all = self._hull or (lo, hi)
            first, last = fetch_row(self._con, load_sql("rollup_span"), {"lo": lo_all, "hi": hi_all})
            self._span = None if first is None else (first, last)
            # (a refresh runs outside the writes: the days not in the clustered order stay the same)
            self._unclustered = _pending(self._con, "usage_raw_unclustered")
            self._ready = True

    def sql(self, name: str, lo: datetime, hi: datetime) -> str:
        """queries/NAME.sql for the slice [lo, hi] (whole seconds), without its closing ORDER BY
        where DuckDB runs on one thread and the slice's raw samples alone, in the clustered order,
        are read (see _SUMS_ORDER_BY)."""
        self.prepare(lo, hi)
        raw = self._span is None or hi < self._span[0] or lo > self._span[1]
        if self._one_thread is None:  # (read at the first slice: the side-by-side refresh sets it first)
            self._one_thread = int(fetch_row(self._con, "SELECT current_setting('threads')")[0]) == 1
        text = load_sql(name, raw=raw)
        clustered = not any(a <= hi and b >= lo for a, b in self._unclustered)
        if not (self._one_thread and raw and clustered):
            return text
        text, clauses = _SUMS_ORDER_BY.subn("\n", text)
        if not clauses:
            raise ValueError(f"queries/{name}.sql ends in no ORDER BY")
        return text


# The closing ORDER BY of a sums refresh's query (queries/node_usage_refresh.sql,
# namespace_usage_refresh.sql). It puts the rows in time order, so the file holds each time as one
# run (ts is run-length coded), but costs a sort of every slice's sums. DuckDB's aggregate on one
# thread (the side-by-side refresh, _refresh_side_by_side) emits its groups in about the order it
# first met them, so a slice of raw samples in the clustered order (each series-id block in time
# order: cluster_usage, or a Parquet import's days written so) comes out in runs of times without
# it. The bench's Parquet imports (10 days), unsorted on one thread against sorted: L 754 / 756
# blocks in the whole file (831 unsorted on two threads), 5.74-6.09 / 6.30-6.55 s for the whole
# import (10.1-10.5 / 11.1-11.4 CPU-s); M 93 / 90 blocks (the sums 21 / 18: +3% of the file). Samples
# in another order come out worse: the L CSV import (2 days, in file order when refreshed) grew from
# 7.93 to 8.61 B/sample unsorted (bench/RESULTS.md, SB). So the clause is left out only for slices
# of clustered raw samples on one thread.
_SUMS_ORDER_BY = re.compile(r"\nORDER BY [^\n;]*;?\s*$")


def _refresh_node_sums(con: duckdb.DuckDBPyConnection, slice_length: timedelta, source: _SumsSource,
                       committed: list[int] | None = None) -> int:
    """The pending node sums, a slice per transaction; the rows written (each committed slice's
    also appended to `committed`, which keeps them when a later slice fails)."""
    ranges = _pending(con, "node_usage_pending")
    committed = [] if committed is None else committed
    before = len(committed)
    while ranges:
        lo, hi = ranges[0]
        upto = min(hi, lo + slice_length - timedelta(seconds=1))
        rest = ([(upto + timedelta(seconds=1), hi)] if upto < hi else []) + ranges[1:]
        with transaction(con):
            con.execute("DELETE FROM node_sums WHERE ts BETWEEN $lo AND $hi", {"lo": lo, "hi": upto})
            row = con.execute(source.sql("node_usage_refresh", lo, upto), {"lo": lo, "hi": upto}).fetchone()
            con.execute("DELETE FROM node_usage_pending")
            if rest:
                con.execute("INSERT INTO node_usage_pending SELECT unnest($lo), unnest($hi)",
                            {"lo": [r[0] for r in rest], "hi": [r[1] for r in rest]})
        committed.append(int(row[0]) if row else 0)
        ranges = rest
    return sum(committed[before:])


# refresh_scope_usage walks the pending ranges a day at a time. Ranges over more days than this (a
# writer's generous bound, as a prune's) are first cut to the span of what is stored
# (scope_usage_span.sql). Right after a write that span is not in DuckDB's statistics yet and the
# query reads every stored time: 0.1 s of the longer side of the L Parquet import's side-by-side
# refresh (10 days; 9 ms after a CHECKPOINT), while a pending day with nothing stored costs ~8 ms to
# walk (14 such days of the L file: 0.11 s; bench/RESULTS.md, SB).
SCOPE_WALK_UNCLIPPED_DAYS = 14


def refresh_scope_usage(con: duckdb.DuckDBPyConnection, source: _SumsSource | None = None) -> int:
    """Recompute the namespace sums (namespace_usage, schema 008) of the pending ranges and the daily
    scope figures (scope_usage_daily, schema 007) of every UTC day a pending range touches, a day
    per transaction (the whole day's figures: a figure is of the day's samples); the number of days
    recomputed (`source`: refresh_node_usage's ids, else built here). Call outside a transaction."""
    ranges = _pending(con, "scope_usage_pending")
    pending = list(ranges)  # as recorded: where samples changed (the namespace sums of the rest stand)
    if sum((b.date() - a.date()).days + 1 for a, b in ranges) > SCOPE_WALK_UNCLIPPED_DAYS:
        # only days with samples or stored rows can change: a range reaching far past both (a
        # writer's generous bound) is not walked a day at a time (scope_usage_span.sql)
        span_lo, span_hi = fetch_row(con, load_sql("scope_usage_span"))
        if span_lo is None:
            ranges = []
        else:
            ranges = [(max(a, span_lo), min(b, span_hi)) for a, b in ranges if b >= span_lo and a <= span_hi]
        if not ranges:
            with transaction(con):
                con.execute("DELETE FROM scope_usage_pending")
    source = source or _SumsSource(con, pending)
    days = 0
    while ranges:
        lo, hi = ranges[0]
        day_start = datetime.combine(lo.date(), datetime.min.time())
        day_end = day_start + timedelta(days=1) - timedelta(seconds=1)  # stored times are whole seconds
        # every range's part after this day (two ranges of one day are one recomputation)
        rest = [(max(a, day_end + timedelta(seconds=1)), b) for a, b in ranges if b > day_end]
        with transaction(con):
            # the day's namespace sums (schema 008) where its samples changed (a pending part of the
            # day: an hourly collect's hour, not the whole day, bench/collect_bench.py's M next hour
            # ~25 ms of CPU less; the sums of the other times of the day are of unchanged samples,
            # as the node sums, which are refreshed by range too), then the day's figures from the
            # day's sums (one pass over them)
            bounds = {"lo": day_start, "hi": day_end}
            for a, b in pending:
                if a <= day_end and b >= day_start:
                    part = {"lo": max(a, day_start), "hi": min(b, day_end)}
                    con.execute("DELETE FROM namespace_sums WHERE ts BETWEEN $lo AND $hi", part)
                    con.execute(source.sql("namespace_usage_refresh", part["lo"], part["hi"]), part)
            con.execute("DELETE FROM scope_usage_daily WHERE day = $day", {"day": lo.date()})
            con.execute(
                "INSERT INTO scope_usage_daily (cluster, day, scope_kind, scope_name, sample_times, first_ts, last_ts, "
                "cpu_cores_p95, memory_bytes_p95) SELECT cluster, day, scope_kind, scope_name, sample_times, first_ts, "
                "last_ts, cpu_cores_p95, memory_bytes_p95 FROM scope_usage_from_sums($lo, $hi) "
                "ORDER BY cluster, scope_kind, scope_name", bounds)
            con.execute("DELETE FROM scope_usage_pending")
            if rest:
                con.execute("INSERT INTO scope_usage_pending SELECT unnest($lo), unnest($hi)",
                            {"lo": [r[0] for r in rest], "hi": [r[1] for r in rest]})
        ranges = rest
        days += 1
    return days


def scope_usage_pending_days(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> set[date]:
    """The UTC days of [start, end] whose stored scope figures may be stale (readers compute them
    from the samples)."""
    rows = con.execute("SELECT lo, hi FROM scope_usage_pending WHERE hi >= $start AND lo <= $end",
                       {"start": start, "end": end}).fetchall()
    days: set[date] = set()
    for lo, hi in rows:
        day, last = max(lo, start).date(), min(hi, end).date()
        while day <= last:
            days.add(day)
            day += timedelta(days=1)
    return days

# --- writers -------------------------------------------------------------------------------

SPEC_TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # table: (key columns, value columns); valid_from/valid_to come on top.
    "nodes": (
        ("node",),
        (
            "cpu_capacity_cores",
            "memory_capacity_bytes",
            "pods_capacity",
            "cpu_allocatable_cores",
            "memory_allocatable_bytes",
            "pods_allocatable",
            "labels",
            "taints",
        ),
    ),
    "pods": (
        ("namespace", "pod"),
        (
            "node",
            "owner_kind",
            "owner_name",
            "priority_class",
            "qos_class",
            "phase",
            "overhead_cpu_cores",
            "overhead_memory_bytes",
        ),
    ),
    "containers": (
        ("namespace", "pod", "container"),
        (
            "init_container",
            "restartable",
            "init_order",
            "cpu_request_cores",
            "cpu_limit_cores",
            "memory_request_bytes",
            "memory_limit_bytes",
        ),
    ),
    "owners": (("namespace", "kind", "name"), ("owner_kind", "owner_name")),
    "workloads": (("namespace", "kind", "name"), ("replicas", "strategy", "max_surge_pods")),
    "hpas": (("namespace", "hpa", "metric_name"), ("target_kind", "target_name")),
    "resource_quotas": (("namespace", "quota", "resource"), ("hard",)),
}


def _conform(frame: pl.DataFrame, table: str, columns: tuple[str, ...]) -> pl.DataFrame:
    """Select the table's columns in order, adding missing optional ones as NULL."""
    missing_required = [c for c in ("valid_from", "valid_to") if c not in frame.columns]
    if missing_required:
        raise BadInputError(f"{table}: missing column(s) {', '.join(missing_required)}")
    exprs = [pl.col(c) if c in frame.columns else pl.lit(None).alias(c) for c in columns]
    return frame.select(exprs)


def write_spec(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame, gap: timedelta = SPEC_GAP, *,
               origin: gate.Origin | None = None, validated: bool = False, cluster: str = DEFAULT_CLUSTER) -> int:
    """Merge spec intervals of one cluster into `table`, keeping history (keys: the cluster, then
    the table's keys in SPEC_TABLES).

    A staged interval whose values equal an existing interval of the same key, and that overlaps
    it or lies within `gap` of it, widens that interval; otherwise it is a new row. Writing the
    same intervals again therefore changes nothing. Returns the number of new rows.
    """
    if frame.is_empty():
        return 0
    keys, values = SPEC_TABLES[table]
    for key in keys:
        if key not in frame.columns:
            raise BadInputError(f"{table}: missing key column {key}")
    if not validated:
        gate.check_spec(table, frame, origin or gate.store_origin(table))
    keys = ("cluster", *keys)
    columns = keys + ("valid_from", "valid_to") + values
    staged = _conform(frame.with_columns(cluster=pl.lit(cluster, pl.Utf8)), table, columns)
    # Collapse the staged rows themselves first: one interval per key and value set per run.
    staged = staged.group_by(list(keys + values), maintain_order=True).agg(
        pl.col("valid_from").min(), pl.col("valid_to").max()
    ).select(columns)
    match = " AND ".join(f"t.{c} IS NOT DISTINCT FROM s.{c}" for c in keys + values)
    near = "s.valid_from <= t.valid_to + $gap AND s.valid_to >= t.valid_from - $gap"
    with staged_table(con, "_staged_spec", staged):
        con.execute(
            f"UPDATE {table} AS t SET valid_from = least(t.valid_from, s.valid_from), "
            f"valid_to = greatest(t.valid_to, s.valid_to) FROM _staged_spec AS s WHERE {match} AND {near}",
            {"gap": gap},
        )
        inserted = con.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join('s.' + c for c in columns)} "
            f"FROM _staged_spec AS s WHERE NOT EXISTS (SELECT 1 FROM {table} AS t WHERE {match} AND {near})",
            {"gap": gap},
        ).fetchone()
    return int(inserted[0]) if inserted else 0


# Stored units of usage_raw (queries/schema/003_compact_storage.sql): rounding to the nearest
# millicore and KiB changes a value by at most 0.0005 cores and 512 bytes.
CPU_UNITS_PER_CORE = 1000
MEMORY_UNIT_BYTES = 1024
# Rows are appended in time order, the series of one time side by side: time runs are then
# RLE-encoded and series ids bit-packed deltas of 1. Measured on 3 days of the bench's L data
# (~10,000 containers; bytes/sample of the file): 4.68 in this order, 6.29 in (series_id, ts) order,
# where each 2,048-value block of ts spans several series and jumps back a day at each. Complete
# days are then rewritten in CLUSTERED_ORDER (cluster_usage).
STORED_ORDER = "ts, series_id"
# A complete UTC day's rows are stored in blocks of this many series ids, each block in time order
# (the block's series side by side at each time): a row group (122,880 rows) then holds a day of a
# few hundred series instead of an hour of all of them, and a per-series query over a range of ids
# (recommend's percentile parts, capplan.analysis.recommend._in_parts) reads only its own row groups
# where it read every row of the window. Within a block, time runs stay RLE-encoded and ids take
# log2(block) bits. Bytes/sample of two days of the bench's L (5.76 M samples, a file of usage_raw
# alone): time order 4.80; blocks of 16: 5.34, 32: 5.16, 64: 5.02, 128: 5.07, 256: 5.43, 512: 6.06,
# 1024: 6.15, 4096: 5.52 (ids of a small block are few bits, and neighbouring series, replicas of
# one workload, have close values; a large block's ids take more bits again, its time runs no
# fewer); the whole L month in blocks of 64: 4.90 against 4.70. recommend simple at L took the same
# CPU with blocks of 16, 64 and 256 (3.1-3.3 s against 8.1-8.4 in time order): bench/RESULTS.md
# (issue 14, CL).
CLUSTER_SERIES_BLOCK = 64
# (CLUSTERED_DAY_ORDER: the order within one day; capplan.file_ingest sorts a day's rows by it)
CLUSTERED_DAY_ORDER = f"series_id // {CLUSTER_SERIES_BLOCK}, ts, series_id"
CLUSTERED_ORDER = f"date_trunc('day', ts), {CLUSTERED_DAY_ORDER}"

USAGE_COLUMNS = ("namespace", "pod", "container", "node", "ts", "cpu_cores", "memory_bytes")
# A container series is (namespace, pod, container); the node is an attribute with history
# (series_nodes), so the same usage with and without a node is one series (issue 13).
SERIES_KEYS = ("namespace", "pod", "container")
RUN_KEYS = ("namespace", "pod", "container", "node")
# Fewer than this many rows per run on average: the frame is regrouped by series first (the
# per-run work then shrinks by the run length; measured on a time-major 2M-row file).
SHORT_RUNS = 8


@dataclass
class UsageWrite:
    """What one usage write did: samples inserted, samples that were already stored with a
    different value (conflicts), and how many of those were replaced (`replace=True`)."""

    inserted: int = 0
    conflicts: int = 0
    replaced: int = 0


def stored_capacity(con: duckdb.DuckDBPyConnection, cluster: str = DEFAULT_CLUSTER) -> pl.DataFrame:
    """node -> the largest capacity it ever had in `cluster` (for the gate's physical bounds)."""
    return frame_of(
        con,
        "SELECT node, max(cpu_capacity_cores)::DOUBLE AS cpu_capacity_cores, "
        "max(memory_capacity_bytes)::DOUBLE AS memory_capacity_bytes FROM nodes WHERE cluster = $cluster GROUP BY node",
        {"cluster": cluster},
    )


def check_usage_capacity(con: duckdb.DuckDBPyConnection, frame: pl.DataFrame, origin: gate.Origin,
                         cluster: str = DEFAULT_CLUSTER) -> None:
    """The gate's physical bounds for usage by the nodes stored in `cluster` (and staged in this
    transaction)."""
    if "node" in frame.columns:
        gate.check_against_capacity(frame.with_columns(pl.col("node").cast(pl.Utf8)), stored_capacity(con, cluster),
                                    origin)


def check_usage(con: duckdb.DuckDBPyConnection, frame: pl.DataFrame, origin: gate.Origin,
                cluster: str = DEFAULT_CLUSTER) -> None:
    """The whole gate for usage about to be written: values, times, and physical bounds."""
    gate.check_usage(frame, origin)
    check_usage_capacity(con, frame, origin, cluster)


def write_usage(con: duckdb.DuckDBPyConnection, frame: pl.DataFrame, *, origin: gate.Origin | None = None,
                replace: bool = False, validated: bool = False, cluster: str = DEFAULT_CLUSTER) -> int:
    """Insert usage samples; the number inserted (see `ingest_usage`)."""
    return ingest_usage(con, frame, origin=origin, replace=replace, validated=validated, cluster=cluster).inserted


def ingest_usage(con: duckdb.DuckDBPyConnection, frame: pl.DataFrame, *, origin: gate.Origin | None = None,
                 replace: bool = False, validated: bool = False, cluster: str = DEFAULT_CLUSTER) -> UsageWrite:
    """Insert usage samples (namespace, pod, container, node, ts, cpu_cores, memory_bytes) of
    one cluster: a series is (cluster, namespace, pod, container) (schema 005).

    The frame passes the gate first (unless the caller already passed it through `check_usage`).
    New containers get an integer series id; a (series, ts) already stored with the same values is
    skipped, so overlapping windows add nothing twice; one stored with other values is a conflict:
    counted, and kept unless `replace`.
    """
    result = UsageWrite()
    if frame.is_empty():
        return result
    missing = [c for c in USAGE_COLUMNS if c not in frame.columns and c != "node"]
    if missing:
        raise BadInputError(f"usage: missing column(s) {', '.join(missing)}")
    if not validated:
        check_usage(con, frame, origin or gate.store_origin("usage"), cluster)
    staged = frame.select(
        pl.col("namespace").cast(pl.Utf8),
        pl.col("pod").cast(pl.Utf8),
        pl.col("container").cast(pl.Utf8),
        (pl.col("node").cast(pl.Utf8).fill_null("") if "node" in frame.columns else pl.lit("")).alias("node"),
        # The stored units (queries/schema/003_compact_storage.sql): whole seconds, millicores
        # and KiB, each rounded here so deduplication compares what is stored.
        (pl.col("ts").cast(pl.Datetime("us")).dt.epoch("s") * 1_000_000).cast(pl.Datetime("us")).alias("ts"),
        (pl.col("cpu_cores").cast(pl.Float64) * CPU_UNITS_PER_CORE).round(0).cast(pl.Int32).alias("cpu_mcores"),
        (pl.col("memory_bytes").cast(pl.Float64) / MEMORY_UNIT_BYTES).round(0).cast(pl.Int32).alias("memory_kib"),
    )
    # Frames arrive grouped by series (a Prometheus matrix, a generator chunk), so find the runs of
    # equal keys by comparing each row with the one before: hashing four strings on every row cost
    # most of the ingest time. Only the keys at run starts are hashed and mapped to series ids.
    keys = [pl.col(c) for c in RUN_KEYS]

    def run_starts(frame: pl.DataFrame) -> pl.Series:
        return frame.select(
            ((pl.int_range(pl.len()) == 0) | pl.any_horizontal([k.ne_missing(k.shift()) for k in keys])).alias("start")
        )["start"]

    starts = run_starts(staged)
    if starts.sum() * SHORT_RUNS > staged.height:
        # Time-major input (one row per container per timestamp, e.g. a CSV export): runs of one
        # row. Group the series together once, by a hash of the keys (sorting by the strings
        # themselves costs 5x more); a collision only splits a run, the keys are still compared.
        staged = staged.sort(pl.struct(*RUN_KEYS).hash(), "ts", maintain_order=True)  # last row still wins
        starts = run_starts(staged)
    run_index = (starts.cast(pl.UInt32).cum_sum() - 1).alias("run")
    run_spans = staged.select(pl.col("ts"), run_index).group_by("run").agg(
        pl.col("ts").min().alias("valid_from"), pl.col("ts").max().alias("valid_to")).sort("run")
    run_keys = staged.filter(starts).select(*RUN_KEYS).with_columns(run_spans.select("valid_from", "valid_to"))
    distinct_keys = run_keys.select(*SERIES_KEYS).unique()
    known_series = int(fetch_row(con, "SELECT coalesce(max(series_id), 0) FROM series")[0])  # ids above are new
    with staged_table(con, "_staged_keys", distinct_keys):
        con.execute(
            """
            INSERT INTO series (series_id, cluster, namespace, pod, container, node)
            SELECT (SELECT coalesce(max(series_id), 0) FROM series) + row_number() OVER (ORDER BY namespace, pod, container),
                   $cluster, namespace, pod, container, ''
            FROM _staged_keys AS s
            WHERE NOT EXISTS (
                SELECT 1 FROM series AS x
                WHERE x.cluster = $cluster AND x.namespace = s.namespace AND x.pod = s.pod AND x.container = s.container)
            """,
            {"cluster": cluster},
        )
        ids = frame_of(
            con,
            "SELECT s.namespace, s.pod, s.container, x.series_id FROM _staged_keys AS s "
            "JOIN (SELECT * FROM series WHERE cluster = $cluster) AS x USING (namespace, pod, container)",
            {"cluster": cluster},
        )
    run_keys = run_keys.join(ids, on=list(SERIES_KEYS), how="left", maintain_order="left")
    _write_series_nodes(con, run_keys, known_series)
    samples = pl.DataFrame({
        "series_id": run_keys["series_id"].gather(run_index),
        "ts": staged["ts"],
        "cpu_mcores": staged["cpu_mcores"],
        "memory_kib": staged["memory_kib"],
    })
    # (series, ts) is unique when every series is one run whose timestamps strictly increase; then the
    # rows are already clustered by series in time order. Otherwise dedupe and sort: the same sample
    # twice is one; two values for one series and time keep the last (the importer refuses those
    # with the file's line numbers before they get here).
    clustered = distinct_keys.height == run_keys.height and bool(
        samples.select(((pl.col("ts").diff() > pl.duration(microseconds=0)) | pl.lit(starts)).all()).item()
    )
    if not clustered:
        samples = samples.unique(subset=["series_id", "ts"], keep="last")
    # The stored order (STORED_ORDER), sorted here on one integer key (time, then series): half the
    # CPU of DuckDB's ORDER BY on the insert, which was most of the write time (2.7 M rows: 0.26 s
    # against 0.6 s of CPU).
    samples = samples.sort(pl.col("ts").dt.epoch("s") * 2**31 + pl.col("series_id"))
    with staged_table(con, "_staged_usage", samples):
        return insert_staged_usage(con, replace=replace)


def stored_range(con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime) -> tuple[datetime, datetime] | None:
    """The first and last stored raw sample time in [lo, hi] (any cluster), or None when there is
    none (zone maps make this cheap)."""
    stored_lo, stored_hi = fetch_row(
        con, "SELECT min(ts), max(ts) FROM usage_raw WHERE ts BETWEEN CAST($lo AS TIMESTAMP_S) AND CAST($hi AS TIMESTAMP_S)",
        {"lo": lo, "hi": hi})
    return None if stored_lo is None else (stored_lo, stored_hi)


def insert_staged_usage(con: duckdb.DuckDBPyConnection, *, replace: bool = False) -> UsageWrite:
    """Insert `_staged_usage` (series_id, ts TIMESTAMP of whole seconds, cpu_mcores, memory_kib: one
    row per series and time, in STORED_ORDER) into usage_raw: a (series, ts) already stored with the
    same values is skipped; one stored with other values is a conflict, counted, and replaced only
    when `replace`. `capplan import` stages a file there (capplan.file_ingest); ingest_usage a frame."""
    result = UsageWrite()
    lo, hi = fetch_row(con, "SELECT min(ts), max(ts) FROM _staged_usage")
    if lo is None:
        return result
    # Stored samples in the chunk's time range: when there are none, no (series, ts) can collide and
    # the anti-join, 4x the cost of the insert, is skipped.
    stored = stored_range(con, lo, hi)
    new_lo, new_hi = lo, hi  # the span of the rows inserted (all of them: nothing stored there)
    if stored is None:
        # already in the stored order: inserted as they come (DuckDB keeps the insertion order)
        inserted = con.execute(
            "INSERT INTO usage_raw (series_id, ts, cpu_mcores, memory_kib) "
            "SELECT series_id, CAST(ts AS TIMESTAMP_S), cpu_mcores, memory_kib FROM _staged_usage"
        ).fetchone()
    else:
        bounds = {"lo": stored[0], "hi": stored[1]}
        conflicts = con.execute(load_sql("usage_conflicts_count"), bounds).fetchone()
        result.conflicts = int(conflicts[0]) if conflicts else 0
        if replace and result.conflicts:
            replaced = con.execute(load_sql("usage_conflicts_replace"), bounds).fetchone()
            result.replaced = int(replaced[0]) if replaced else 0
        # The new rows first, so their own span is what is marked unclustered below: a chunk that
        # repeats samples of a day already clustered (an overlapping window) must not have the
        # whole day rewritten again.
        # (the caller's rollback drops the temporary table when a statement fails)
        con.execute(load_sql("usage_new_rows").format(order=STORED_ORDER), bounds)
        inserted = con.execute("INSERT INTO usage_raw (series_id, ts, cpu_mcores, memory_kib) "
                               "SELECT series_id, ts, cpu_mcores, memory_kib FROM _new_usage").fetchone()
        new_lo, new_hi = fetch_row(con, "SELECT CAST(min(ts) AS TIMESTAMP), CAST(max(ts) AS TIMESTAMP) FROM _new_usage")
        con.execute("DROP TABLE temp._new_usage")
    result.inserted = int(inserted[0]) if inserted else 0
    if result.inserted or result.replaced:
        mark_node_usage_pending(con, lo, hi)
    if result.inserted:
        mark_unclustered(con, new_lo, new_hi)
    return result


def mark_unclustered(con: duckdb.DuckDBPyConnection, lo: datetime | None, hi: datetime | None) -> None:
    """Record that raw samples were appended in [lo, hi] (inside the writer's transaction): the days
    they fall in are no longer in CLUSTERED_ORDER until cluster_usage rewrites them."""
    if lo is not None and hi is not None:
        bounds = dict(zip(("lo", "hi"), _whole_seconds(lo, hi), strict=True))
        con.execute("INSERT INTO usage_raw_unclustered (lo, hi) VALUES ($lo, $hi)", bounds)


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    """The first and last whole second of a UTC day."""
    start = datetime.combine(day, datetime.min.time())
    return start, start + timedelta(days=1) - timedelta(seconds=1)


# DuckDB's memory limit while cluster_usage rewrites a day (bounded_memory): the day's rows are sorted
# and held in a temporary table, which spills past the limit. 128 MiB (ANALYSIS_MEMORY_LIMIT_BYTES):
# two days of the bench's L (2.9 M samples each) rewritten in a fresh process peaked at 264 MiB RSS
# against 439 MiB under the full limit, at the same CPU (2.1-2.2 s; M: 156 MiB either way).
CLUSTER_MEMORY_LIMIT_BYTES = ANALYSIS_MEMORY_LIMIT_BYTES


def cluster_usage(con: duckdb.DuckDBPyConnection, block: int = CLUSTER_SERIES_BLOCK) -> int:
    """Rewrite every complete UTC day that usage_raw_unclustered names in CLUSTERED_ORDER (blocks
    of `block` series ids), a day per transaction: the day's rows are read in that order into a
    temporary table, deleted, and inserted again, and the day leaves the pending ranges, all in one
    transaction (a killed run leaves each day as it was or rewritten, and the days not done still
    pending). The same rows before and after; a day already done is not pending, so a second run
    does nothing. A day is complete when a sample after it is stored (a later write to it marks it
    again: it is rewritten once more). The days rewritten. Call outside a transaction.

    A collector's hourly run appends an hour: its day stays pending (not complete) until the first
    run past midnight, which rewrites it once. The freed row groups are reused by the next writes
    (DuckDB frees them at its next checkpoint)."""
    # a run out of memory under the lower limit leaves the days done so far done; the rest are
    # rewritten under the full limit
    return bounded_memory(con, lambda: _cluster_days(con, block), CLUSTER_MEMORY_LIMIT_BYTES)


def _cluster_days(con: duckdb.DuckDBPyConnection, block: int) -> int:
    ranges = _merged([(r[0], r[1]) for r in con.execute("SELECT lo, hi FROM usage_raw_unclustered").fetchall()])
    if not ranges:
        return 0
    newest = fetch_row(con, "SELECT CAST(max(ts) AS TIMESTAMP) FROM usage_raw")[0]
    days: list[date] = []
    for lo, hi in ranges:
        day = lo.date()
        while day <= hi.date():
            if newest is not None and _day_bounds(day)[1] < newest and (not days or days[-1] != day):
                days.append(day)
            day += timedelta(days=1)
    for day in days:
        day_lo, day_hi = _day_bounds(day)
        rest = [part for a, b in ranges for part in ((a, min(b, day_lo - timedelta(seconds=1))),
                                                      (max(a, day_hi + timedelta(seconds=1)), b)) if part[0] <= part[1]]
        with transaction(con):
            bounds = {"lo": day_lo, "hi": day_hi}
            con.execute("CREATE OR REPLACE TEMP TABLE _clustered_day AS " + load_sql("usage_cluster_day"),
                        {**bounds, "block": block})
            con.execute("DELETE FROM usage_raw WHERE ts BETWEEN CAST($lo AS TIMESTAMP_S) AND CAST($hi AS TIMESTAMP_S)",
                        bounds)
            # DuckDB keeps the insertion order: the table's rows of the day are in the temporary
            # table's order. (A failure rolls the transaction back, which drops the temporary table.)
            con.execute("INSERT INTO usage_raw (series_id, ts, cpu_mcores, memory_kib) "
                        "SELECT series_id, ts, cpu_mcores, memory_kib FROM _clustered_day")
            con.execute("DROP TABLE temp._clustered_day")
            con.execute("DELETE FROM usage_raw_unclustered")
            if rest:
                con.execute("INSERT INTO usage_raw_unclustered SELECT unnest($lo), unnest($hi)",
                            {"lo": [r[0] for r in rest], "hi": [r[1] for r in rest]})
        ranges = rest
    return len(days)


def _write_series_nodes(con: duckdb.DuckDBPyConnection, run_keys: pl.DataFrame, known_series: int) -> None:
    """Record on which node each series was seen, and when; series.node becomes the latest. A
    series stored before (id <= known_series) that moved takes its node sums with it (pending)."""
    seen = run_keys.filter(pl.col("node") != "").group_by("series_id", "node").agg(
        pl.col("valid_from").min(), pl.col("valid_to").max())
    if seen.is_empty():
        return
    with staged_table(con, "_staged_nodes", seen):
        moved = [int(r[0]) for r in con.execute(load_sql("series_nodes_upsert")).fetchall()]
    mark_series_pending(con, [i for i in moved if i <= known_series])


RESTART_COLUMNS = ("cluster", "namespace", "pod", "container", "ts", "restarts_total", "reason")


def write_restarts(con: duckdb.DuckDBPyConnection, frame: pl.DataFrame, *, origin: gate.Origin | None = None,
                   validated: bool = False, cluster: str = DEFAULT_CLUSTER) -> int:
    """Insert container restarts (namespace, pod, container, ts, restarts_total, reason) of one
    cluster; a restart already stored for that container and time is skipped."""
    if frame.is_empty():
        return 0
    if not validated:
        gate.check_spec("restarts", frame, origin or gate.store_origin("restarts"))
    staged = _conform(frame.with_columns(valid_from=pl.lit(0), valid_to=pl.lit(0), cluster=pl.lit(cluster, pl.Utf8)),
                      "restarts", RESTART_COLUMNS)
    staged = staged.with_columns(pl.col("ts").cast(pl.Datetime("us"))).unique(
        subset=["namespace", "pod", "container", "ts"], keep="last"
    )
    with staged_table(con, "_staged_restarts", staged):
        inserted = con.execute(
            f"""
            INSERT INTO restarts ({', '.join(RESTART_COLUMNS)})
            SELECT {', '.join('s.' + c for c in RESTART_COLUMNS)} FROM _staged_restarts AS s
            WHERE NOT EXISTS (
                SELECT 1 FROM restarts AS r
                WHERE r.cluster = s.cluster AND r.namespace = s.namespace AND r.pod = s.pod
                  AND r.container = s.container AND r.ts = s.ts)
            """
        ).fetchone()
    return int(inserted[0]) if inserted else 0


def high_water_mark(con: duckdb.DuckDBPyConnection, source: str, metric: str,
                    cluster: str = DEFAULT_CLUSTER) -> datetime | None:
    """Up to when `metric` from `source` is stored for `cluster`, or None before the first collection."""
    row = con.execute(
        "SELECT ts FROM high_water_marks WHERE cluster = ? AND source = ? AND metric = ?", [cluster, source, metric]
    ).fetchone()
    return row[0] if row else None


def high_water_marks(con: duckdb.DuckDBPyConnection, source: str, metrics: list[str],
                     cluster: str = DEFAULT_CLUSTER) -> dict[str, datetime]:
    """high_water_mark of each of `metrics` that has one, in one statement (a query per metric
    was ~0.1 s of an hourly collect)."""
    rows = con.execute("SELECT metric, ts FROM high_water_marks WHERE cluster = ? AND source = ? "
                       "AND metric IN (SELECT unnest(?))", [cluster, source, metrics]).fetchall()
    return {metric: ts for metric, ts in rows}


def set_high_water_mark(con: duckdb.DuckDBPyConnection, source: str, metric: str, ts: datetime,
                        cluster: str = DEFAULT_CLUSTER) -> None:
    """Advance the high-water mark (never moves it back)."""
    con.execute(
        """
        INSERT INTO high_water_marks (cluster, source, metric, ts) VALUES (?, ?, ?, ?)
        ON CONFLICT (cluster, source, metric) DO UPDATE SET ts = greatest(high_water_marks.ts, excluded.ts)
        """,
        [cluster, source, metric, ts],
    )


def start_collection_run(con: duckdb.DuckDBPyConnection, *, source: str, now: datetime,
                         window_start: datetime | None, window_end: datetime | None, queries: int, status: str,
                         message: str | None, cluster: str = DEFAULT_CLUSTER) -> int:
    """Record a new collection run and return its run_id. The caller holds the collection lock,
    so a run still marked running was killed before it could finish: it is marked so first."""
    con.execute("UPDATE collection_runs SET status = 'killed' WHERE status = 'running'")
    row = con.execute(load_sql("collection_run_start"), {
        "source": source, "now": now, "finished_at": now if status != "running" else None,
        "window_start": window_start, "window_end": window_end, "queries": queries, "status": status,
        "message": message, "cluster": cluster,
    }).fetchone()
    assert row is not None  # INSERT ... RETURNING gives the new row
    return int(row[0])


def finish_collection_run(con: duckdb.DuckDBPyConnection, run_id: int, *, finished_at: datetime, series: int,
                          samples: int, queries: int, status: str, message: str | None,
                          window_end: datetime | None) -> None:
    """Record a collection run's outcome (`window_end` None keeps the one it started with)."""
    con.execute(load_sql("collection_run_finish"), {
        "run_id": run_id, "finished_at": finished_at, "series": series, "samples": samples, "queries": queries,
        "status": status, "message": message, "window_end": window_end,
    })


def set_high_water_marks(con: duckdb.DuckDBPyConnection, source: str, metrics: list[str], ts: datetime,
                         cluster: str = DEFAULT_CLUSTER) -> None:
    """Advance the high-water mark of every metric in `metrics` to `ts` for `cluster` (one statement)."""
    con.execute(load_sql("collect_set_high_water_marks"),
                {"source": source, "metrics": metrics, "ts": ts, "cluster": cluster})


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Row counts of every data table (for summaries and tests)."""
    tables = [
        "nodes", "pods", "containers", "owners", "workloads", "hpas", "resource_quotas",
        "series", "series_nodes", "usage_samples", "restarts",
    ]
    return {t: int(fetch_row(con, f"SELECT count(*) FROM {t}")[0]) for t in tables}


# --- clusters (schema 005) ------------------------------------------------------------------
# Analyses read one cluster at a time through `scope`: on the connection, every table that holds
# clusters is shadowed by a temporary view of the same name showing that cluster's rows only
# (without the cluster column), so the ~40 named queries and every analysis run unchanged and
# give, for one cluster, the answer a database holding that cluster alone gives. DuckDB resolves
# an unqualified name in the temporary catalog first, also inside the stored views
# (usage_samples), which are shadowed too. Writers (collect, import, prune) use the real tables.

# Tables with a cluster column (filtered by it), and tables that reach it through series_id.
CLUSTER_TABLES = ("nodes", "pods", "containers", "owners", "workloads", "hpas", "resource_quotas", "restarts",
                  "series", "collection_runs", "high_water_marks", "collector_sources", "node_usage",
                  "scope_usage_daily", "namespace_usage")
SERIES_TABLES = ("usage_raw", "usage_hourly", "usage_daily", "series_nodes", "usage_samples")
_CLUSTER_VARIABLE = "capplan_cluster"


def _catalog(con: duckdb.DuckDBPyConnection) -> str:
    """The database file's catalog, quoted for SQL (its name is the file's stem)."""
    row = fetch_row(con, "SELECT current_database()")
    return '"' + str(row[0]).replace('"', '""') + '"'


# A cluster name: what kube contexts and cluster labels use; no control characters (they would
# break the one-line messages and the CSV cell), at most a DNS name's length.
MAX_CLUSTER_NAME = 253


def check_cluster_name(name: str) -> str:
    """`name` when it can name a cluster, else BadInputError (the CLI makes it exit 2)."""
    if not name or len(name) > MAX_CLUSTER_NAME or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise BadInputError(f"--cluster: not a cluster name (1-{MAX_CLUSTER_NAME} printable characters): {name[:60]!r}")
    return name


def clusters(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The clusters the store holds (any spec or usage row), in name order; read from the real
    tables, whatever scope is active on the connection."""
    catalog = _catalog(con)
    union = " UNION ".join(f"SELECT DISTINCT cluster FROM {catalog}.main.{t}"
                           for t in ("series", "nodes", "pods", "containers"))
    return [r[0] for r in con.execute(f"SELECT cluster FROM ({union}) ORDER BY cluster").fetchall()]


def active_cluster(con: duckdb.DuckDBPyConnection) -> str | None:
    """The cluster `scope` restricts this connection to, or None."""
    row = con.execute(f"SELECT getvariable('{_CLUSTER_VARIABLE}')").fetchone()
    return row[0] if row else None


def _series_filter(con: duckdb.DuckDBPyConnection, catalog: str, cluster: str, only_cluster: bool) -> str:
    """A predicate on series_id selecting `cluster`'s series: none when it is the only cluster, a
    range (zone maps skip the rest of the file) when its ids are contiguous, else a semi-join."""
    if only_cluster:
        return "true"
    lo, hi, n = fetch_row(con, f"SELECT min(series_id), max(series_id), count(*) FROM {catalog}.main.series "
                               "WHERE cluster = $cluster", {"cluster": cluster})
    if not n:
        return "false"
    others = fetch_row(con, f"SELECT count(*) FROM {catalog}.main.series WHERE cluster <> $cluster "
                            "AND series_id BETWEEN $lo AND $hi", {"cluster": cluster, "lo": lo, "hi": hi})[0]
    if not others:
        return f"series_id BETWEEN {int(lo)} AND {int(hi)}"
    return (f"series_id IN (SELECT series_id FROM {catalog}.main.series "
            f"WHERE cluster = getvariable('{_CLUSTER_VARIABLE}'))")


@contextlib.contextmanager
def scope(con: duckdb.DuckDBPyConnection, cluster: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """Within the block, `con` shows only `cluster`: each cluster-keyed table (and usage_samples)
    is shadowed by a temporary view of the same name, filtered to the cluster, without the
    cluster column. Works on read-only connections; scopes do not nest. For writers: write the
    real tables with the `cluster=` argument of the writers, never through a scope."""
    if active_cluster(con) is not None:
        raise RuntimeError("store.scope does not nest: leave the active scope first")
    catalog = _catalog(con)
    only = clusters(con) == [cluster]
    con.execute(f"SET VARIABLE {_CLUSTER_VARIABLE} = $cluster", {"cluster": cluster})
    created: list[str] = []
    try:
        for table in CLUSTER_TABLES:
            con.execute(f"CREATE OR REPLACE TEMP VIEW {table} AS SELECT * EXCLUDE (cluster) FROM {catalog}.main.{table} "
                        f"WHERE cluster = getvariable('{_CLUSTER_VARIABLE}')")
            created.append(table)
        series_filter = _series_filter(con, catalog, cluster, only)
        for table in SERIES_TABLES:
            con.execute(f"CREATE OR REPLACE TEMP VIEW {table} AS SELECT * FROM {catalog}.main.{table} WHERE {series_filter}")
            created.append(table)
        yield con
    finally:
        for table in reversed(created):
            con.execute(f"DROP VIEW IF EXISTS temp.main.{table}")
        con.execute(f"RESET VARIABLE {_CLUSTER_VARIABLE}")
