"""`capplan export-lake DIR`: the store as a Hive-partitioned Parquet lake, written incrementally.

Layout (the `manifest.json` at the top says what is there and how it was made):

    DIR/manifest.json
    DIR/_schema/<table>.parquet                                zero rows: each table's columns
    DIR/usage_raw/cluster=<c>/day=<YYYY-MM-DD>/part-0.parquet  raw samples (series_id, ts, ...)
    DIR/usage_hourly/cluster=<c>/day=<YYYY-MM-DD>/part-0.parquet
    DIR/usage_daily/cluster=<c>/month=<YYYY-MM>/part-0.parquet
    DIR/series/cluster=<c>/part-0.parquet                      the series identity of series_id
    DIR/<spec table>/cluster=<c>/part-0.parquet                nodes, pods, containers, ... (history)

Every stored table is exported except the collector's bookkeeping (EXCLUDED_TABLES), in the
store's own columns and units, so a query written for the store runs on the lake unchanged (the
views the store defines, usage_samples, travel in the manifest). A sample's cluster is its
series' cluster; the `cluster` column itself lives in the path, not in the files. usage_daily is
partitioned by month: its rows are whole days already, and its own column `day` would clash with
a `day=` partition key.

Incremental: each partition's row count and checksum (DuckDB's hash of every row, summed) is kept
in the manifest; a rerun writes only partitions that are new or whose checksum changed (the last,
partial day; a day a late import or `prune` touched) and deletes partitions the store no longer
holds (compacted or pruned days), so the lake always mirrors the store. A partition is one file,
written under a hidden temporary name and renamed over the old one: readers see the old file or
the new one, never half of one. The manifest is marked unfinished while an export runs, and the
Spark engine refuses an unfinished lake (a killed export; rerun it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from capplan import store
from capplan.errors import BadInputError, NoDataError

MANIFEST = "manifest.json"
SCHEMA_DIR = "_schema"
PART_FILE = "part-0.parquet"
FORMAT_VERSION = 1
# The collector's own bookkeeping: not history, and meaningless outside this database; and the node
# sums (schema 006), the daily scope figures (schema 007) and the namespace sums (schema 008; since schema
# 010 node_sums, namespace_sums and their names tables behind views of the old names), derived from the
# samples in the lake.
EXCLUDED_TABLES = frozenset({"schema_version", "collection_runs", "high_water_marks", "collector_sources",
                             "node_usage", "node_usage_pending", "scope_usage_daily", "scope_usage_pending",
                             "namespace_usage", "node_sums", "node_names", "namespace_sums", "namespace_names"})
# Tables partitioned by time as well as by cluster: table -> (time column, partition key, strftime format).
TIME_PARTITIONS: dict[str, tuple[str, str, str]] = {
    "usage_raw": ("ts", "day", "%Y-%m-%d"),
    "usage_hourly": ("hour", "day", "%Y-%m-%d"),
    "usage_daily": ("day", "month", "%Y-%m"),
}
# The store's views the lake carries (as DuckDB SQL; an engine transpiles them).
VIEWS = ("usage_samples",)
# Characters kept as they are in a partition value; anything else is %XX-escaped, as Hive does.
_SAFE = re.compile(r"[A-Za-z0-9._-]")


def escape_value(value: str) -> str:
    """A partition value as a path segment (Hive's escaping: %XX for anything unsafe)."""
    return "".join(ch if _SAFE.fullmatch(ch) else "".join(f"%{b:02X}" for b in ch.encode()) for ch in value)


@dataclass
class TableLayout:
    """How one stored table is exported."""

    name: str
    columns: list[str]            # the stored columns written to the files (without `cluster`)
    cluster_sql: str              # SQL giving a row's cluster (alias t)
    time_partition: tuple[str, str, str] | None  # (time column, key, strftime format)

    @property
    def keys(self) -> list[str]:
        return ["cluster"] + ([self.time_partition[1]] if self.time_partition else [])


@dataclass
class ExportSummary:
    """What one export did."""

    directory: Path
    written: int = 0
    unchanged: int = 0
    removed: int = 0
    rows_written: int = 0
    tables: int = 0
    seconds: float = 0.0
    written_partitions: list[str] = field(default_factory=list)


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_catalog = current_database() AND table_schema = 'main' "
        "AND table_name = $t "
        "ORDER BY ordinal_position", {"t": table}).fetchall()
    return [r[0] for r in rows]


def layouts(con: duckdb.DuckDBPyConnection) -> list[TableLayout]:
    """Every exported table of the store and how it is partitioned."""
    tables = [r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database() AND table_schema = 'main' "
        "AND table_type = 'BASE TABLE' "
        "ORDER BY table_name").fetchall()]
    out = []
    for table in tables:
        if table in EXCLUDED_TABLES:
            continue
        columns = _columns(con, table)
        if "cluster" in columns:
            cluster_sql = "t.cluster"
        elif "series_id" in columns:
            cluster_sql = "(SELECT s.cluster FROM series AS s WHERE s.series_id = t.series_id)"
        else:  # a table that names no cluster (none does today): the store's default one
            cluster_sql = _sql_string(store.DEFAULT_CLUSTER)
        out.append(TableLayout(table, [c for c in columns if c != "cluster"], cluster_sql, TIME_PARTITIONS.get(table)))
    return out


def _partition_select(layout: TableLayout) -> str:
    """SELECT the table's columns plus _cluster and (time-partitioned) _part."""
    cols = ", ".join(f't."{c}"' for c in layout.columns)
    part = ""
    if layout.time_partition:
        column, _, fmt = layout.time_partition
        part = f", strftime(t.\"{column}\", '{fmt}') AS _part"
    return f"SELECT {cols}, {layout.cluster_sql} AS _cluster{part} FROM \"{layout.name}\" AS t"


def partition_path(layout: TableLayout, cluster: str, part: str | None) -> str:
    """The partition's folder relative to the table's, e.g. `cluster=default/day=2026-11-01`."""
    path = f"cluster={escape_value(cluster)}"
    if layout.time_partition:
        path += f"/{layout.time_partition[1]}={part}"
    return path


def _period(key: str, fmt: str) -> tuple[datetime, datetime]:
    """[start, end) of a day (`%Y-%m-%d`) or month (`%Y-%m`) partition key."""
    start = datetime.strptime(key, fmt)
    if fmt == "%Y-%m":
        return start, start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start, start + timedelta(days=1)


def partition_query(layout: TableLayout, cluster: str, key: str | None) -> tuple[str, dict[str, Any]]:
    """The SELECT (and its parameters) of one partition's rows, in the stored columns. The time
    range is a plain range on the time column, so DuckDB's zone maps skip the other days."""
    where = f"{layout.cluster_sql} = $cluster"
    params: dict[str, Any] = {"cluster": cluster}
    if layout.time_partition and key is not None:
        column, _, fmt = layout.time_partition
        params["lo"], params["hi"] = _period(key, fmt)
        where += f' AND t."{column}" >= $lo AND t."{column}" < $hi'
    cols = ", ".join(f't.{repr_col(c)}' for c in layout.columns)
    return f'SELECT {cols} FROM "{layout.name}" AS t WHERE {where}', params


def inventory(con: duckdb.DuckDBPyConnection, layout: TableLayout) -> dict[str, dict[str, Any]]:
    """Per partition: its cluster, time key, row count and checksum (sum of DuckDB's row hashes)."""
    part = ", _part" if layout.time_partition else ""
    rows = con.execute(
        f"SELECT _cluster{part}, count(*), CAST(sum(hash(q)) AS VARCHAR) FROM ({_partition_select(layout)}) AS q "
        f"GROUP BY ALL").fetchall()
    out = {}
    for row in rows:
        cluster, key = row[0], (row[1] if layout.time_partition else None)
        count, checksum = row[-2], row[-1]
        out[partition_path(layout, cluster, key)] = {
            "cluster": cluster, "key": key, "rows": int(count), "checksum": checksum}
    return out


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """The lake's manifest, or None when DIR holds no lake yet."""
    path = directory / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{path}: not a capplan lake manifest: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        raise BadInputError(f"{path}: not a capplan lake manifest of format {FORMAT_VERSION}")
    return manifest


def _write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    tmp = directory / f".{MANIFEST}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(tmp, directory / MANIFEST)


def _copy_atomically(con: duckdb.DuckDBPyConnection, select: str, params: dict[str, Any], target: Path) -> None:
    """COPY a query's rows to `target` (Parquet, zstd) through a hidden temporary file and a rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        con.execute(f"COPY ({select}) TO {_sql_string(str(tmp))} (FORMAT parquet, COMPRESSION zstd)", params)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _remove_leftovers(directory: Path) -> None:
    """Temporary files of an export that was killed (hidden, so no reader ever saw them)."""
    for leftover in directory.rglob(".*.tmp-*"):
        leftover.unlink(missing_ok=True)


def _check_directory(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise BadInputError(f"{directory} is not a folder")
    if directory.exists() and (directory / MANIFEST).exists():
        return
    if directory.exists() and any(directory.iterdir()):
        raise BadInputError(f"{directory} is neither empty nor a capplan lake (no {MANIFEST}): refusing to write into it")


def export_lake(con: duckdb.DuckDBPyConnection, directory: str | os.PathLike[str],
                progress: Callable[[str], None] | None = None) -> ExportSummary:
    """Write (or bring up to date) the lake in `directory` from the store on `con`.

    Only partitions that are new or changed since the last export are written; partitions the
    store no longer holds are removed. Raises NoDataError when the store holds no usage samples.
    """
    started = time.monotonic()
    lake = Path(directory)
    _check_directory(lake)
    lake.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(lake)
    summary = ExportSummary(directory=lake)
    version = store.schema_version(con)
    old = read_manifest(lake) or {}
    old_tables: dict[str, Any] = old.get("tables", {}) if old.get("schema_version") == version else {}
    table_layouts = layouts(con)
    usage = store.fetch_row(con, "SELECT count(*), max(ts) FROM usage_samples")
    if not usage[0]:
        raise NoDataError("the database holds no usage samples: nothing to export")
    views = {name: row[0] for name in VIEWS
             for row in con.execute("SELECT sql FROM duckdb_views() WHERE view_name = $v AND NOT internal",
                                    {"v": name}).fetchall()}
    # While the export runs, the manifest says so (and still lists what is there).
    _write_manifest(lake, {**old, "format": FORMAT_VERSION, "finished": False,
                           "tables": old.get("tables", {}), "schema_version": old.get("schema_version", version)})
    tables: dict[str, Any] = {}
    for layout in table_layouts:
        summary.tables += 1
        before = old_tables.get(layout.name, {})
        schema_file = lake / SCHEMA_DIR / f"{layout.name}.parquet"
        if before.get("columns") != layout.columns or not schema_file.exists():
            _copy_atomically(con, f"SELECT {', '.join(repr_col(c) for c in layout.columns)} FROM \"{layout.name}\" LIMIT 0",
                             {}, schema_file)
        before_parts: dict[str, Any] = before.get("partitions", {}) if before.get("columns") == layout.columns else {}
        now = inventory(con, layout)
        for path, info in sorted(now.items()):
            previous = before_parts.get(path)
            if (previous and previous.get("rows") == info["rows"] and previous.get("checksum") == info["checksum"]
                    and (lake / layout.name / path / PART_FILE).exists()):
                summary.unchanged += 1
                continue
            _copy_atomically(con, *partition_query(layout, info["cluster"], info["key"]),
                             lake / layout.name / path / PART_FILE)
            summary.written += 1
            summary.rows_written += info["rows"]
            summary.written_partitions.append(f"{layout.name}/{path}")
            if progress:
                progress(f"{layout.name}/{path}: {info['rows']:,} rows")
        summary.removed += _remove_stale(lake / layout.name, set(now))
        tables[layout.name] = {"partition_by": layout.keys, "columns": layout.columns, "partitions": now}
    for name in set(old.get("tables", {})) - {t.name for t in table_layouts}:
        shutil.rmtree(lake / name, ignore_errors=True)
        (lake / SCHEMA_DIR / f"{name}.parquet").unlink(missing_ok=True)
        summary.removed += len(old["tables"][name].get("partitions", {}))
    summary.seconds = time.monotonic() - started
    _write_manifest(lake, {
        "format": FORMAT_VERSION, "finished": True, "schema_version": version,
        "exported_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "usage_samples": {"rows": int(usage[0]), "newest": usage[1].strftime("%Y-%m-%dT%H:%M:%S")},
        "views": views, "tables": tables,
    })
    return summary


def repr_col(column: str) -> str:
    """A column name quoted for DuckDB."""
    return '"' + column.replace('"', '""') + '"'


def _remove_stale(root: Path, keep: set[str]) -> int:
    """Delete the partitions under a table's folder that the store no longer holds (whatever
    manifest listed them: a killed export may have written one no manifest names); their number."""
    removed = 0
    if root.is_dir():
        for part in root.rglob(PART_FILE):
            if part.parent.relative_to(root).as_posix() not in keep:
                part.unlink()
                removed += 1
    _prune_empty_dirs(root)
    return removed


def _prune_empty_dirs(root: Path) -> None:
    if not root.is_dir():
        return
    for path in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(path.iterdir()):
            path.rmdir()
