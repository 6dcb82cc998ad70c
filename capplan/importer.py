"""`capplan import`: load a sample folder or a long-format usage file into the store.

All or nothing: the whole input is read and passed through the gate (capplan.gate) before the
database is touched, then written in one transaction through the store writers the collector
uses. A refusal names the file, line and column; SIGINT/SIGTERM roll the transaction back (and
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
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import duckdb
import polars as pl

from capplan import gate, store
from capplan.errors import BadInputError, StoppedError
from capplan.quantity import parse_cpu_cores, parse_memory_bytes
from capplan.sample_format import SAMPLE_TABLES

LONG_REQUIRED = ("namespace", "pod", "container", "timestamp", "cpu_cores", "memory_bytes")
LONG_OPTIONAL = ("node", "owner_kind", "owner_name", "cpu_request_cores", "cpu_limit_cores",
                 "memory_request_bytes", "memory_limit_bytes")
# Usage is written in slices of this many rows (one transaction for all of them): bounds the
# memory of each Arrow hand-over to DuckDB.
USAGE_CHUNK_ROWS = 2_000_000
LINE = "_line"
LONG_FILE_NAMES = (("ts", "timestamp"),)
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


def _numeric(frame: pl.DataFrame, column: str, parse: Callable[[str], float], origin: gate.Origin) -> pl.Series:
    """A column as Float64: numbers as they are, text parsed as numbers, and only what is not a
    plain number (e.g. "250m", "1Gi") parsed as a Kubernetes quantity, once per distinct value."""
    col = frame[column]
    if col.dtype != pl.Utf8:
        if not col.dtype.is_numeric() and col.dtype != pl.Null:
            raise BadInputError(f"{origin.label}: {column}: is {col.dtype}, expected numbers")
        return col.cast(pl.Float64)
    text = col.str.strip_chars().replace("", None)
    values = text.cast(pl.Float64, strict=False)
    unparsed = text.is_not_null() & values.is_null()
    if not unparsed.any():
        return values.alias(column)
    parsed: dict[str, float | None] = {}
    for raw in text.filter(unparsed).unique().to_list():
        try:
            parsed[raw] = float(parse(raw))
        except BadInputError:
            parsed[raw] = None
    quantities = text.replace_strict(parsed, default=None, return_dtype=pl.Float64)
    failed = unparsed & quantities.is_null()
    if failed.any():
        lines = frame[LINE].filter(failed)
        first = text.filter(failed)[0]
        gate.raise_bad(origin, int(lines.to_numpy().min()), column, f"{first[:80]!r} is not a number or quantity",
                       int(failed.sum()))
    return values.zip_with(~unparsed, quantities).alias(column)


def _timestamps(frame: pl.DataFrame, origin: gate.Origin) -> pl.Series:
    """`timestamp` as naive UTC: datetimes as they are, ISO 8601 text parsed (an offset or Z is
    honoured; text without one is UTC)."""
    ts = frame["timestamp"]
    if isinstance(ts.dtype, pl.Datetime):
        if ts.dtype.time_zone:
            ts = ts.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return ts.cast(pl.Datetime("us"))
    if ts.dtype != pl.Utf8:
        raise BadInputError(f"{origin.label}: timestamp: is {ts.dtype}, expected a datetime or ISO 8601 text")
    text = ts.str.strip_chars().replace("", None)
    try:
        parsed = text.str.to_datetime(time_zone="UTC", strict=False, time_unit="us")
    except pl.exceptions.ComputeError:  # no format fits the first values: every value by hand below
        parsed = pl.Series("timestamp", [None] * len(text), dtype=pl.Datetime("us", "UTC"))
    unparsed = text.is_not_null() & parsed.is_null()
    if unparsed.any():
        # mixed forms (some rows with an offset, some without): each remaining distinct value by hand
        fixed: dict[str, datetime | None] = {}
        for raw in text.filter(unparsed).unique().to_list():
            try:
                value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
                fixed[raw] = (value.astimezone(UTC) if value.tzinfo else value).replace(tzinfo=None)
            except ValueError:
                fixed[raw] = None
        second = text.replace_strict(fixed, default=None, return_dtype=pl.Datetime("us"))
        failed = unparsed & second.is_null()
        if failed.any():
            gate.raise_bad(origin, int(frame[LINE].filter(failed).to_numpy().min()), "timestamp",
                           f"{text.filter(failed)[0][:80]!r} is not an ISO 8601 time", int(failed.sum()))
        return parsed.dt.replace_time_zone(None).zip_with(~unparsed, second).alias("timestamp")
    return parsed.dt.replace_time_zone(None).alias("timestamp")


def read_long_format(path: str | Path) -> pl.DataFrame:
    """Read a long-format usage file (one row per container and timestamp) and pass it through
    the gate. The result carries `_line`: the row's line in a CSV (header = 1), its row in Parquet."""
    path = Path(path)
    origin = gate.Origin(str(path), LINE, LONG_FILE_NAMES)
    if path.suffix == ".parquet":
        frame = _read_parquet(path)
        first_line = 1
    elif path.suffix == ".csv":
        try:
            frame = pl.read_csv(path, infer_schema_length=0)  # all text; parsed below
        except Exception as exc:
            raise BadInputError(f"cannot read {path}: {str(exc).splitlines()[0]}") from exc
        first_line = 2
    else:
        raise BadInputError(f"{path}: expected a .parquet or .csv file, or a sample folder")
    missing = [c for c in LONG_REQUIRED if c not in frame.columns]
    if missing:
        raise BadInputError(f"{path}:1: {', '.join(missing)}: missing required column(s) (nothing was imported)")
    frame = frame.with_columns(pl.int_range(first_line, pl.len() + first_line, dtype=pl.Int64).alias(LINE))
    out = {
        "namespace": frame["namespace"].cast(pl.Utf8),
        "pod": frame["pod"].cast(pl.Utf8),
        "container": frame["container"].cast(pl.Utf8),
        "ts": _timestamps(frame, origin).alias("ts"),
        "cpu_cores": _numeric(frame, "cpu_cores", parse_cpu_cores, origin),
        "memory_bytes": _numeric(frame, "memory_bytes", parse_memory_bytes, origin),
    }
    for column in LONG_OPTIONAL:
        if column not in frame.columns:
            continue
        if column.startswith("cpu_"):
            out[column] = _numeric(frame, column, parse_cpu_cores, origin)
        elif column.startswith("memory_"):
            out[column] = _numeric(frame, column, parse_memory_bytes, origin)
        else:
            out[column] = frame[column].cast(pl.Utf8).replace("", None)
    out[LINE] = frame[LINE]
    result = pl.DataFrame(out)
    gate.check_usage(result, origin)
    _check_self_conflicts(result, origin, "ts")
    return result


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


def long_format_frames(frame: pl.DataFrame) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    """Spec intervals (pods, containers) and usage derived from a long-format frame."""
    has = set(frame.columns)
    node = pl.col("node") if "node" in has else pl.lit(None, pl.Utf8)
    frame = frame.with_columns(node.alias("node"))
    pods = frame.group_by("namespace", "pod").agg(
        pl.col("ts").min().alias("valid_from"),
        pl.col("ts").max().alias("valid_to"),
        pl.col("node").drop_nulls().first(),
        *([pl.col("owner_kind").drop_nulls().first()] if "owner_kind" in has else []),
        *([pl.col("owner_name").drop_nulls().first()] if "owner_name" in has else []),
    ).with_columns(phase=pl.lit("Running"))
    spec_cols = [c for c in ("cpu_request_cores", "cpu_limit_cores", "memory_request_bytes", "memory_limit_bytes") if c in has]
    usage = frame.select("namespace", "pod", "container", "node", "ts", "cpu_cores", "memory_bytes")
    if not spec_cols:
        # No request or limit column: the containers' spec is unknown, not "nothing set" (which
        # would make every pod BestEffort with requests 0). An empty cell is "not set".
        return {"pods": pods}, usage
    containers = frame.group_by(["namespace", "pod", "container", *spec_cols]).agg(
        pl.col("ts").min().alias("valid_from"), pl.col("ts").max().alias("valid_to")
    ).with_columns(init_container=pl.lit(False), restartable=pl.lit(False))
    for col in ("memory_request_bytes", "memory_limit_bytes"):
        if col in containers.columns:
            containers = containers.with_columns(pl.col(col).round(0).cast(pl.Int64))
    return {"pods": pods, "containers": containers}, usage


# --- writing (one transaction) ----------------------------------------------------------------------


def _usage_chunks(frame: pl.DataFrame) -> list[pl.DataFrame]:
    # In file order: files grouped by container keep their long runs (the store's fast path);
    # time-major files are regrouped by the store writer itself.
    return [frame.slice(i, USAGE_CHUNK_ROWS) for i in range(0, frame.height, USAGE_CHUNK_ROWS)]


def _discard_new_db(db_path: Path) -> None:
    for leftover in (db_path, db_path.with_name(db_path.name + ".wal")):
        leftover.unlink(missing_ok=True)


def _write_all(db: str | Path | None, spec: dict[str, pl.DataFrame], restarts: pl.DataFrame | None,
               usage: pl.DataFrame, origin: gate.Origin, *, wait: bool, replace: bool, stop: _Stop,
               progress: ProgressFn | None, cluster: str = store.DEFAULT_CLUSTER) -> ImportSummary:
    summary = ImportSummary(path=origin.label, spec_rows=0, samples=0, samples_read=usage.height)
    db_path = store.resolve_db_path(db)
    stop.check()
    with store.collection_lock(db, wait=wait):
        created = not db_path.exists()
        con = store.open_db(db)
        stop.con = con
        try:
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
            con.execute("CHECKPOINT")
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
    if summary.conflicts:
        kept = "the new values replaced them" if replace else "the stored values were kept (--replace takes the new ones)"
        summary.warnings.append(f"{summary.conflicts:,} samples were already stored with other values: {kept}")
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
    """Import a long-format usage file (CONTRACT.md), Parquet or CSV, as `cluster`."""
    with _signals() as stop:
        frame = read_long_format(path)
        stop.check()
        spec, usage = long_format_frames(frame)
        # a long-format trace has no restarts; spec intervals of one file are contiguous
        return _write_all(db, spec, None, usage.with_columns(frame[LINE]), gate.Origin(str(path), LINE, LONG_FILE_NAMES),
                          wait=wait, replace=replace, stop=stop, progress=progress, cluster=cluster)
