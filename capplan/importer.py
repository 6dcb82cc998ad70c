"""`capplan import`: load a sample folder or a long-format usage file into the store.

Both go through the store writers the collector uses, chunk by chunk, each chunk in its own
transaction; importing the same data twice adds nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from capplan import store
from capplan.errors import BadInputError
from capplan.quantity import parse_cpu_cores, parse_memory_bytes
from capplan.sample_format import SAMPLE_TABLES

LONG_REQUIRED = ("namespace", "pod", "container", "timestamp", "cpu_cores", "memory_bytes")
LONG_OPTIONAL = ("node", "owner_kind", "owner_name", "cpu_request_cores", "cpu_limit_cores",
                 "memory_request_bytes", "memory_limit_bytes")
USAGE_CHUNK_ROWS = 2_000_000


@dataclass
class ImportSummary:
    """What an import added."""

    path: str
    spec_rows: int
    samples: int
    samples_read: int


def _read_parquet(path: Path) -> pl.DataFrame:
    try:
        return pl.read_parquet(path)
    except Exception as exc:  # polars raises several kinds for a broken file
        raise BadInputError(f"cannot read {path}: {str(exc).splitlines()[0]}") from exc


def import_path(path: str | Path, db: str | Path | None = None, *, wait: bool = False) -> ImportSummary:
    """Import a sample folder (sample format) or a long-format .parquet/.csv usage file."""
    source = Path(path)
    if source.is_dir():
        return import_sample(source, db, wait=wait)
    if not source.exists():
        raise BadInputError(f"no such file or folder: {source}")
    return import_long_format(source, db, wait=wait)


def _usage_chunks(frame: pl.DataFrame) -> list[pl.DataFrame]:
    frame = frame.sort("ts")
    return [frame.slice(i, USAGE_CHUNK_ROWS) for i in range(0, frame.height, USAGE_CHUNK_ROWS)]


def _write_all(db: str | Path | None, spec: dict[str, pl.DataFrame], restarts: pl.DataFrame | None,
               usage: pl.DataFrame, label: str, wait: bool) -> ImportSummary:
    spec_rows = samples = 0
    with store.collection_lock(db, wait=wait):
        con = store.open_db(db)
        try:
            with store.transaction(con):
                for table, frame in spec.items():
                    spec_rows += store.write_spec(con, table, frame)
                if restarts is not None:
                    spec_rows += store.write_restarts(con, restarts)
            for chunk in _usage_chunks(usage):
                with store.transaction(con):
                    samples += store.write_usage(con, chunk)
                # compress each chunk as it lands: one checkpoint at the end leaves the file ~50% larger
                con.execute("CHECKPOINT")
        finally:
            con.close()
    return ImportSummary(path=label, spec_rows=spec_rows, samples=samples, samples_read=usage.height)


def import_sample(folder: str | Path, db: str | Path | None = None, *, wait: bool = False) -> ImportSummary:
    """Import a folder in capplan's sample format (see data/samples/README.md)."""
    folder = Path(folder)
    meta_path = folder / "meta.json"
    if not meta_path.exists() or not (folder / "usage.parquet").exists():
        raise BadInputError(f"{folder} is not a capplan sample folder (needs meta.json and usage.parquet)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise BadInputError(f"{meta_path} is not valid JSON: {exc.msg}") from exc
    if meta.get("format") != "capplan-sample":
        raise BadInputError(f"{meta_path} does not describe a capplan sample")
    spec = {}
    restarts = None
    for table in SAMPLE_TABLES:
        file = folder / f"{table}.parquet"
        if not file.exists():
            continue
        frame = _read_parquet(file)
        if table == "restarts":
            restarts = frame
        else:
            spec[table] = frame
    usage = _read_parquet(folder / "usage.parquet")
    return _write_all(db, spec, restarts, usage, str(folder), wait)


def _numeric(frame: pl.DataFrame, column: str, parse) -> pl.Series:
    col = frame[column]
    if col.dtype == pl.Utf8:
        return pl.Series(column, [None if v in (None, "") else parse(v) for v in col.to_list()], dtype=pl.Float64)
    try:
        return col.cast(pl.Float64, strict=True)
    except Exception as exc:
        raise BadInputError(f"column {column} is not numeric") from exc


def read_long_format(path: str | Path) -> pl.DataFrame:
    """Read and validate a long-format usage file (one row per container and timestamp)."""
    path = Path(path)
    if path.suffix == ".parquet":
        frame = _read_parquet(path)
    elif path.suffix == ".csv":
        try:
            frame = pl.read_csv(path, infer_schema_length=0)  # all text; parsed below
        except Exception as exc:
            raise BadInputError(f"cannot read {path}: {str(exc).splitlines()[0]}") from exc
    else:
        raise BadInputError(f"{path}: expected a .parquet or .csv file, or a sample folder")
    missing = [c for c in LONG_REQUIRED if c not in frame.columns]
    if missing:
        raise BadInputError(f"{path}: missing column(s) {', '.join(missing)}")
    ts = frame["timestamp"]
    if ts.dtype == pl.Utf8:
        try:
            ts = ts.str.to_datetime(time_zone="UTC", strict=True).dt.replace_time_zone(None)
        except Exception as exc:
            raise BadInputError(f"{path}: timestamp is not ISO 8601") from exc
    elif isinstance(ts.dtype, pl.Datetime):
        if ts.dtype.time_zone:
            ts = ts.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    else:
        raise BadInputError(f"{path}: timestamp must be a datetime or ISO 8601 text")
    out = {
        "namespace": frame["namespace"].cast(pl.Utf8),
        "pod": frame["pod"].cast(pl.Utf8),
        "container": frame["container"].cast(pl.Utf8),
        "ts": ts.cast(pl.Datetime("us")),
        "cpu_cores": _numeric(frame, "cpu_cores", parse_cpu_cores),
        "memory_bytes": _numeric(frame, "memory_bytes", parse_memory_bytes),
    }
    for column in LONG_OPTIONAL:
        if column not in frame.columns:
            continue
        if column.startswith("cpu_"):
            out[column] = _numeric(frame, column, parse_cpu_cores)
        elif column.startswith("memory_"):
            out[column] = _numeric(frame, column, parse_memory_bytes)
        else:
            out[column] = frame[column].cast(pl.Utf8).replace("", None)
    result = pl.DataFrame(out)
    bad = result.filter(pl.any_horizontal(pl.col("namespace", "pod", "container", "ts").is_null()))
    if bad.height:
        raise BadInputError(f"{path}: {bad.height} row(s) with an empty namespace, pod, container or timestamp")
    return result


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
    containers = frame.group_by(["namespace", "pod", "container", *spec_cols]).agg(
        pl.col("ts").min().alias("valid_from"), pl.col("ts").max().alias("valid_to")
    ).with_columns(init_container=pl.lit(False), restartable=pl.lit(False))
    for col in ("memory_request_bytes", "memory_limit_bytes"):
        if col in containers.columns:
            containers = containers.with_columns(pl.col(col).round(0).cast(pl.Int64))
    usage = frame.select("namespace", "pod", "container", "node", "ts", "cpu_cores", "memory_bytes")
    return {"pods": pods, "containers": containers}, usage


def import_long_format(path: str | Path, db: str | Path | None = None, *, wait: bool = False) -> ImportSummary:
    """Import a long-format usage file (CONTRACT.md): Parquet or CSV."""
    frame = read_long_format(path)
    spec, usage = long_format_frames(frame)
    # a long-format trace has no restarts; spec intervals of one file are contiguous
    return _write_all(db, spec, None, usage, str(path), wait)

