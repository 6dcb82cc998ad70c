"""`capplan import`: load a sample folder or a long-format usage file into the store.

All or nothing: the whole input passes the gate (capplan.gate) before anything is written, then
it is written in one transaction. A long-format file is checked and staged by DuckDB over the file
itself (capplan.file_ingest: Python never holds its rows); a sample folder is read into frames
and written through the store writers the collector uses. A refusal names the file, line and column; SIGINT/SIGTERM roll the transaction back (and
remove a database this import created), so the database is as it was. Importing the same data
twice adds nothing; a sample stored with another value is a conflict: counted, kept unless
`replace`.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import duckdb
import polars as pl

from capplan import file_ingest, gate, store
from capplan.errors import BadInputError, StoppedError
from capplan.sample_format import SAMPLE_TABLES

# Usage is written in slices of this many rows (one transaction for all of them): bounds the
# memory of each Arrow hand-over to DuckDB.
USAGE_CHUNK_ROWS = 2_000_000
# Big imports say when they start writing (the whole input has passed the gate): a sign of life.
PROGRESS_MIN_SAMPLES = 1_000_000

ProgressFn = Callable[[str], None]


@dataclass
class ImportSummary:
    """What an import added."""

    path: str
    spec_rows: int
    samples: int
    samples_read: int
    conflicts: int = 0
    replaced: int = 0
    warnings: list[str] = field(default_factory=list)


class _Stop:
    """SIGINT/SIGTERM during an import: remember which, and interrupt the running statement."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.con: duckdb.DuckDBPyConnection | None = None

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        self.signum = signum
        if self.con is not None:
            self.con.interrupt()

    def check(self) -> None:
        if self.signum is not None:
            raise StoppedError.for_signal(self.signum, "import stopped: nothing was imported")


@contextmanager
def _signals() -> Iterator[_Stop]:
    stop = _Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _read_parquet(path: Path) -> pl.DataFrame:
    try:
        return pl.read_parquet(path)
    except Exception as exc:  # polars raises several kinds for a broken file
        raise BadInputError(f"cannot read {path}: {str(exc).splitlines()[0]}") from exc


def import_path(path: str | Path, db: str | Path | None = None, *, wait: bool = False, replace: bool = False,
                progress: ProgressFn | None = None, cluster: str = store.DEFAULT_CLUSTER) -> ImportSummary:
    """Import a sample folder (sample format) or a long-format .parquet/.csv usage file as `cluster`."""
    source = Path(path)
    if source.is_dir():
        return import_sample(source, db, wait=wait, replace=replace, progress=progress, cluster=cluster)
    if not source.exists():
        raise BadInputError(f"no such file or folder: {source}")
    return import_long_format(source, db, wait=wait, replace=replace, progress=progress, cluster=cluster)


# --- reading and checking (nothing touches the database) -------------------------------------------


def read_sample(folder: str | Path) -> tuple[dict[str, pl.DataFrame], pl.DataFrame | None, pl.DataFrame]:
    """A sample folder's spec frames, restarts and usage, each file passed through the gate."""
    folder = Path(folder)
    meta_path = folder / "meta.json"
    if not meta_path.exists() or not (folder / "usage.parquet").exists():
        raise BadInputError(f"{folder} is not a capplan sample folder (needs meta.json and usage.parquet)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise BadInputError(f"{meta_path}:{exc.lineno}: not valid JSON: {exc.msg}") from exc
    if not isinstance(meta, dict) or meta.get("format") != "capplan-sample":
        raise BadInputError(f"{meta_path}: format: not \"capplan-sample\"")
    now = gate.now_utc()
    spec: dict[str, pl.DataFrame] = {}
    restarts = None
    for table in SAMPLE_TABLES:
        file = folder / f"{table}.parquet"
        if not file.exists():
            continue
        frame = _read_parquet(file)
        gate.check_sample_file(table, frame, gate.Origin(str(file)), now=now)
        if table == "restarts":
            restarts = frame
        else:
            spec[table] = frame
    usage_file = folder / "usage.parquet"
    usage = _read_parquet(usage_file)
    origin = gate.Origin(str(usage_file))
    gate.check_sample_file("usage", usage, origin, now=now)
    gate.check_against_capacity(usage, gate.capacity_of(spec), origin)
    _check_self_conflicts(usage, origin, "ts")
    return spec, restarts, usage


def _check_self_conflicts(frame: pl.DataFrame, origin: gate.Origin, ts: str) -> None:
    """The same container and time twice with different values: the file contradicts itself.

    Only hashed when the cheap test (each container one run of rising times) fails."""
    keys = [pl.col(c) for c in gate.IDENTITY_COLUMNS]
    starts = frame.select(
        ((pl.int_range(pl.len()) == 0) | pl.any_horizontal([k.ne_missing(k.shift()) for k in keys])).alias("s")
    )["s"]
    rising = frame.select((pl.lit(starts) | (pl.col(ts).diff() > pl.duration(microseconds=0))).all()).item()
    if rising:
        runs = frame.filter(starts).select(*gate.IDENTITY_COLUMNS)
        if runs.unique().height == runs.height:
            return
    with_line = frame if origin.line_column in frame.columns else frame.with_row_index(origin.line_column, offset=1)
    key = [*gate.IDENTITY_COLUMNS, ts]
    values = pl.struct(pl.col("cpu_cores"), pl.col("memory_bytes"))
    clashing = with_line.filter(values.n_unique().over(key) > 1)
    if clashing.is_empty():
        return
    clashing = clashing.sort(origin.line_column)
    first = clashing.row(0, named=True)
    other = clashing.filter(
        (pl.col("namespace") == first["namespace"]) & (pl.col("pod") == first["pod"])
        & (pl.col("container") == first["container"]) & (pl.col(ts) == first[ts])
        & (pl.col(origin.line_column) != first[origin.line_column])
    ).row(0, named=True)
    column = "cpu_cores" if other["cpu_cores"] != first["cpu_cores"] else "memory_bytes"
    gate.raise_bad(origin, other[origin.line_column], column,
                   f"{gate._show(other[column])} conflicts with line {first[origin.line_column]} "
                   f"({gate._show(first[column])}): the same container and time twice", clashing.height)


# --- writing (one transaction) ----------------------------------------------------------------------


def _usage_chunks(frame: pl.DataFrame) -> list[pl.DataFrame]:
    # In file order: files grouped by container keep their long runs (the store's fast path);
    # time-major files are regrouped by the store writer itself.
    return [frame.slice(i, USAGE_CHUNK_ROWS) for i in range(0, frame.height, USAGE_CHUNK_ROWS)]


def _discard_new_db(db_path: Path) -> None:
    for leftover in (db_path, db_path.with_name(db_path.name + ".wal")):
        leftover.unlink(missing_ok=True)


@contextmanager
def _import_connection(db: str | Path | None, *, wait: bool, stop: _Stop) -> Iterator[duckdb.DuckDBPyConnection]:
    """The database, locked for writing, for one import: a signal interrupts what runs on it; on any
    failure the connection is closed (rolling back) and a database this import created removed."""
    db_path = store.resolve_db_path(db)
    stop.check()
    with store.collection_lock(db, wait=wait):
        created = not db_path.exists()
        con = store.open_db(db)
        stop.con = con
        try:
            yield con
        except duckdb.InterruptException as exc:
            stop.con = None
            con.close()
            if created:
                _discard_new_db(db_path)
            raise StoppedError.for_signal(stop.signum or signal.SIGINT, "import stopped: nothing was imported") from exc
        except BaseException:
            stop.con = None
            con.close()
            if created:
                _discard_new_db(db_path)
            raise
        stop.con = None
        con.close()


def _conflict_warning(summary: ImportSummary, replace: bool) -> None:
    if summary.conflicts:
        kept = "the new values replaced them" if replace else "the stored values were kept (--replace takes the new ones)"
        summary.warnings.append(f"{summary.conflicts:,} samples were already stored with other values: {kept}")


def _write_all(db: str | Path | None, spec: dict[str, pl.DataFrame], restarts: pl.DataFrame | None,
               usage: pl.DataFrame, origin: gate.Origin, *, wait: bool, replace: bool, stop: _Stop,
               progress: ProgressFn | None, cluster: str = store.DEFAULT_CLUSTER) -> ImportSummary:
    summary = ImportSummary(path=origin.label, spec_rows=0, samples=0, samples_read=usage.height)
    with _import_connection(db, wait=wait, stop=stop) as con:
        # bounds by the nodes already stored: checked before anything is written
        store.check_usage_capacity(con, usage, origin, cluster)
        stop.check()
        if progress and usage.height >= PROGRESS_MIN_SAMPLES:
            progress(f"{usage.height:,} samples of {origin.label} passed the checks; writing")
        with store.transaction(con):
            for table, frame in spec.items():
                summary.spec_rows += store.write_spec(con, table, frame, validated=True, cluster=cluster)
            if restarts is not None:
                summary.spec_rows += store.write_restarts(con, restarts, validated=True, cluster=cluster)
            for chunk in _usage_chunks(usage):
                stop.check()
                written = store.ingest_usage(con, chunk, replace=replace, validated=True, cluster=cluster)
                summary.samples += written.inserted
                summary.conflicts += written.conflicts
                summary.replaced += written.replaced
            stop.check()
        store.refresh_node_usage(con)  # the node sums of the imported times (schema 006)
        store.cluster_usage(con)  # the complete days imported, in the clustered order (schema 009)
        con.execute("CHECKPOINT")
    _conflict_warning(summary, replace)
    return summary


def import_sample(folder: str | Path, db: str | Path | None = None, *, wait: bool = False, replace: bool = False,
                  progress: ProgressFn | None = None, cluster: str = store.DEFAULT_CLUSTER) -> ImportSummary:
    """Import a folder in capplan's sample format (see data/samples/README.md) as `cluster`."""
    with _signals() as stop:
        spec, restarts, usage = read_sample(folder)
        return _write_all(db, spec, restarts, usage, gate.Origin(str(folder)), wait=wait, replace=replace,
                          stop=stop, progress=progress, cluster=cluster)


def import_long_format(path: str | Path, db: str | Path | None = None, *, wait: bool = False,
                       replace: bool = False, progress: ProgressFn | None = None,
                       cluster: str = store.DEFAULT_CLUSTER) -> ImportSummary:
    """Import a long-format usage file (CONTRACT.md), Parquet or CSV, as `cluster`: read by DuckDB
    where it lies."""
    source_path = Path(path)
    if source_path.suffix not in (".parquet", ".csv"):
        raise BadInputError(f"{source_path}: expected a .parquet or .csv file, or a sample folder")
    summary = ImportSummary(path=str(path), spec_rows=0, samples=0, samples_read=0)
    with _signals() as stop, _import_connection(db, wait=wait, stop=stop) as con:
        source = file_ingest.open_file(con, source_path)
        now = gate.now_utc()
        try:
            staged = file_ingest.check_and_stage(con, source, now=now, cluster=cluster)
        except duckdb.OutOfMemoryException:  # under the import's lower limit: again under the full one
            file_ingest.full_memory(con)
            staged = file_ingest.check_and_stage(con, source, now=now, cluster=cluster)
        summary.samples_read = staged.samples_read
        spec = file_ingest.spec_frames(con, source)
        stop.check()
        if progress and staged.samples_read >= PROGRESS_MIN_SAMPLES:
            progress(f"{staged.samples_read:,} samples of {source.origin.label} passed the checks; writing")

        def write() -> tuple[int, store.UsageWrite]:
            with store.transaction(con):
                spec_rows = sum(store.write_spec(con, table, frame, validated=True, cluster=cluster)
                                for table, frame in spec.items())
                stop.check()
                written = file_ingest.write_staged(con, staged, replace=replace, cluster=cluster, source=source)
                stop.check()
            return spec_rows, written

        full_memory = False
        while True:  # at most four times: each WriteAgain takes a slower, surer way (file_ingest.again)
            try:
                spec_rows, written = write()
                break
            except file_ingest.WriteAgain as why:  # rolled back
                file_ingest.again(con, source, staged, why)
            except duckdb.OutOfMemoryException:  # rolled back: once more under the store's full limit
                if full_memory:
                    raise
                full_memory = True
                file_ingest.full_memory(con)
        summary.spec_rows = spec_rows
        summary.samples, summary.conflicts, summary.replaced = written.inserted, written.conflicts, written.replaced
        store.refresh_node_usage(con)  # the node sums of the imported times (schema 006)
        store.cluster_usage(con)  # the complete days imported, in the clustered order (schema 009)
        con.execute("CHECKPOINT")
    _conflict_warning(summary, replace)
    return summary
