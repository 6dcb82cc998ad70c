"""A long-format usage file (.parquet, .csv) checked and staged by DuckDB where it lies.

`capplan import FILE` used to read the whole file into polars frames (7.7 GiB of RSS for 10 days
of the bench's L Parquet, bench/RESULTS.md); here DuckDB reads the file itself, on the import's
own connection, and Python only sees aggregates:

1. one aggregate query over the file (queries/import_groups.sql) summarises the rows per
   namespace, pod, container, node (and owner, request and limit columns), with each group's
   extremes: every check of the ingest gate (capplan.gate: the same rules, written in SQL) is judged
   on them, and the spec tables, series_nodes and the physical bounds by node come from it (a
   Parquet file written straight into a store without nodes leaves the checks of its usage values
   to that write instead, which guards every row and has them made here when one is out of
   bounds: deferrable_checks);
2. only when a check fails, a second query finds the first bad row by its line (CSV: the header is
   line 1; Parquet: the 1-based row) and the gate's message names it;
3. when the store holds no sample in the file's time span, the import's transaction writes the
   file straight into usage_raw in the stored units and order (store.STORED_ORDER): sorted a time
   slice at a time where the Parquet row groups allow (time_slices), unsorted when the file comes
   in that order (in_order); the same container and time twice is then looked for in usage_raw,
   and if there is one (or the file was not in order after all) the transaction is rolled back
   and the file written again the surer way (WriteAgain, again);
4. otherwise the samples are staged in the stored units and order in a temporary table (DuckDB
   spills it to disk past its memory limit); one streaming pass over it finds the same container
   and time twice: refused when the values differ, stored once when they are equal; the import's
   transaction writes the staged rows with one INSERT ... SELECT (store.insert_staged_usage).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from capplan import gate, store
from capplan.errors import BadInputError
from capplan.quantity import parse_cpu_cores, parse_memory_bytes

LONG_REQUIRED = ("namespace", "pod", "container", "timestamp", "cpu_cores", "memory_bytes")
TEXT_OPTIONAL = ("node", "owner_kind", "owner_name")
SPEC_COLUMNS = ("cpu_request_cores", "cpu_limit_cores", "memory_request_bytes", "memory_limit_bytes")
LONG_OPTIONAL = (*TEXT_OPTIONAL, *SPEC_COLUMNS)
# Numbers in the order their parse errors are reported (the order the columns were parsed in).
NUMBER_COLUMNS = ("cpu_cores", "memory_bytes", *SPEC_COLUMNS)
# DuckDB's memory for an import (capplan.store.MEMORY_LIMIT_ENV overrides it). Parquet: its time
# slices of SLICE_ROWS sort in memory within 128 MB since the sort moves one integer key and two
# values (import_direct_keyed.sql; with the id and time as well they spilled at 128 MB: L 30.4
# against 25.2 CPU-s at 256 MB, load ~9); at 128 MB the L Parquet (27.75 M rows) peaks at 378-404
# MiB against 480-506 at 256 MB, for the same CPU within a loaded machine's noise (17.6-18.2 against
# 17.4-17.8 CPU-s, load ~7; M 330 MiB either way), bench/RESULTS.md. CSV: one sort of the whole
# file, which spills past any of these limits at L (5.42 M rows) for CPU within a loaded machine's
# noise (11.6 s at 256 and 128 MB, load ~9; 7.9-8.4 at 128 and 7.9-8.1 at 96 or 64 MB, load ~12): 64
# MB keeps the peak RSS of a big file near a small one's (L 264 MiB against 295-336 at 128 MB and
# 400-450 at 256; M 196-200). On a quiet machine (load ~2, bench import_csv twice each, 95fe89c)
# 96 MB gave L 229-236 MiB against M 157-159 (1.44-1.50x) and 64 MB L 211-215 against M 157-160
# (1.34-1.36x), for 6.5-7.1 against 6.6-6.7 CPU-s at L. DuckDB running out of memory under these
# limits makes the import's step run again under the store's full limit (capplan.importer): slower,
# never refused.
IMPORT_MEMORY_LIMIT_MB = {"parquet": 128, "csv": 64}


def full_memory(con: duckdb.DuckDBPyConnection) -> None:
    """Raise DuckDB's memory limit from IMPORT_MEMORY_LIMIT_MB to the store's own (duckdb_config)."""
    con.execute(f"SET memory_limit = '{store.duckdb_config()['memory_limit']}'")


# The file's `timestamp` is `ts` in the store and in the gate's checks.
FILE_NAMES = (("ts", "timestamp"),)
# A Parquet file whose row groups each hold a short span of time is written to the store a time
# slice at a time, each of about this many rows sorted on its own: DuckDB then sorts in memory
# instead of spilling one sort of the whole file (bench/RESULTS.md, L, 27.75 M rows in day slices of
# 2.8 M: 9.0 CPU-s and 7.4 s against 11.1 CPU-s and 27 s for one sort, at load ~6).
SLICE_ROWS = 3_000_000
# ... as long as the slices read at most this many times the file's rows (a row group whose span
# crosses a slice's edge is read by both slices; a file in container order reads all of it for each).
SLICE_MAX_READ = 1.25


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class LongFile:
    """A long-format file as DuckDB reads it: `rows` (a subquery: typed, in the gate's column
    names) and `lines` (the same with each row's `line`), both reading the file named by the
    parameter $path (`params`)."""

    path: Path
    origin: gate.Origin
    kind: str                                   # "parquet" or "csv"
    present: tuple[str, ...]                     # optional columns the file has
    text_numbers: tuple[str, ...] = ()           # number columns held as text (parsed here)
    text_time: bool = False                      # timestamps held as text (ISO 8601)
    time_zone: bool = False                      # Parquet timestamps with a time zone
    # CSV: the number columns DuckDB's reader parses itself (as DOUBLE: _csv_typed) until a cell it
    # cannot parse makes check_and_stage read them as text (text_numbers) instead
    csv_numbers: tuple[str, ...] = ()
    # text timestamps with a UTC offset, counted by the summary: none, and the later passes parse
    # the time with a plain cast (the offset-aware expression takes the same branch for every row)
    offset_times: int | None = None
    # an optional text column (node, owner) holds an empty text, which is no value (NULL): None until
    # the summary has looked (it groups the texts as the file has them, then), False when none does
    # (the texts are read as they are), True when one does (each text is compared with '' per row)
    empty_texts: bool | None = None
    # usage columns whose checks the direct write makes on every row instead of the summary on its
    # extremes (deferrable_checks); empty when the summary makes every check
    deferred: tuple[str, ...] = ()
    quantities: dict[str, dict[str, float]] = field(default_factory=dict)
    rows: str = ""
    lines: str = ""
    # Parquet with a time-zone-free timestamp column: its DuckDB type, and `rows` of the times in
    # [$slice_lo, $slice_hi) only (the filter on the file's own column skips row groups by their
    # statistics)
    time_type: str = ""
    rows_between: str = ""
    # per row group of the time column: its rows and its smallest and largest time, [] when a row
    # group has no statistics; read once by time_groups for deferrable_checks and time_slices
    time_row_groups: list[tuple[int, datetime, datetime]] | None = None

    @property
    def params(self) -> dict[str, Any]:
        return {"path": str(self.path)}

    @property
    def spec(self) -> tuple[str, ...]:
        return tuple(c for c in SPEC_COLUMNS if c in self.present)

    @property
    def group_columns(self) -> tuple[str, ...]:
        return ("namespace", "pod", "container", "node",
                *(c for c in ("owner_kind", "owner_name") if c in self.present), *self.spec)


def open_file(con: duckdb.DuckDBPyConnection, path: Path) -> LongFile:
    """The file's columns and types; BadInputError for a file that is no long-format file. Nothing
    in the database changes (DuckDB reads the file in each query: the path is a parameter)."""
    origin = gate.Origin(str(path), "line", FILE_NAMES)
    try:
        if path.suffix == ".parquet":
            kind = "parquet"
            schema = dict(pl.read_parquet_schema(path))
        elif path.suffix == ".csv":
            kind = "csv"
            described = con.execute(f"DESCRIBE SELECT * FROM {_CSV}", {"path": str(path)}).fetchall()
            schema = {row[0]: pl.String() for row in described}
        else:
            raise BadInputError(f"{path}: expected a .parquet or .csv file, or a sample folder")
    except BadInputError:
        raise
    except Exception as exc:  # polars and DuckDB raise several kinds for a broken file
        raise BadInputError(f"cannot read {path}: {str(exc).splitlines()[0]}") from exc
    missing = [c for c in LONG_REQUIRED if c not in schema]
    if missing:
        raise BadInputError(f"{path}:1: {', '.join(missing)}: missing required column(s) (nothing was imported)")
    ts_type = schema["timestamp"]
    if not (isinstance(ts_type, pl.Datetime) or ts_type == pl.Utf8):
        raise BadInputError(f"{path}: timestamp: is {ts_type}, expected a datetime or ISO 8601 text")
    present = tuple(c for c in LONG_OPTIONAL if c in schema)
    text_numbers = []
    for column in (c for c in NUMBER_COLUMNS if c in schema):
        dtype = schema[column]
        if dtype == pl.Utf8:
            text_numbers.append(column)
        elif not dtype.is_numeric() and dtype != pl.Null:
            raise BadInputError(f"{path}: {column}: is {dtype}, expected numbers")
    source = LongFile(path, origin, kind, present, tuple(text_numbers), ts_type == pl.Utf8,
                      isinstance(ts_type, pl.Datetime) and ts_type.time_zone is not None)
    if kind == "csv":
        # numbers parsed by the reader first (_summarise falls back to text on a cell it refuses)
        source.csv_numbers, source.text_numbers = source.text_numbers, ()
    if kind == "parquet" and isinstance(ts_type, pl.Datetime) and ts_type.time_zone is None:
        source.time_type = str(store.fetch_row(
            con, "SELECT column_type FROM (DESCRIBE SELECT \"timestamp\" FROM read_parquet($path))", {"path": str(path)})[0])
    # Text without an offset is UTC (the session zone decides how DuckDB reads it).
    con.execute("SET TimeZone = 'UTC'")
    # the import prints its own progress; DuckDB's bar would land on stdout
    con.execute("SET enable_progress_bar = false")
    if not os.environ.get(store.MEMORY_LIMIT_ENV):
        # The staged samples (28 bytes each) and their sort spill to disk past this, so the import's
        # memory does not grow with the file (bench/RESULTS.md, L size, 10 days of Parquet: peak RSS
        # 2.2 GiB with the store's 2 GiB, 743 MiB with 512 MB, 625 with 384, 543 with 256 (M: 448);
        # CPU within the noise of the shared machine from 512 MB down)
        store_limit_mb = int(str(store.duckdb_config()["memory_limit"]).removesuffix("MB"))
        con.execute(f"SET memory_limit = '{min(store_limit_mb, IMPORT_MEMORY_LIMIT_MB[kind])}MB'")
    _build_sql(source)
    return source


# Every cell as text, the separators and quotes polars' reader took: a field that is no number or
# time is named by its line, not refused by DuckDB's sniffer. Buffers of 4 MiB instead of DuckDB's
# 32: each reading thread holds some, and at 128 MB the import ran out of memory with the default
# (L CSV; M's peak RSS 346 -> 297 MiB, the same CPU).
CSV_BUFFER_BYTES = 4 * 2**20
_CSV = ("read_csv($path, header = true, all_varchar = true, delim = ',', quote = '\"', escape = '\"', "
        f"buffer_size = {CSV_BUFFER_BYTES})")
_PARQUET = "read_parquet($path, file_row_number = true)"


def _csv_typed(columns: tuple[str, ...]) -> str:
    """_CSV with these columns parsed as DOUBLE by the reader: the same value as the text path's
    TRY_CAST for every cell the reader takes, and a ConversionException for every other one (a
    quantity, a blank, words), on which the file is read as text (tests/ingest: the cells compared
    one by one). The summary of the L CSV 2.76 -> 2.61 CPU-s, with the offset-free time parse of the
    write 4.4 -> 3.9 (bench/RESULTS.md, IM)."""
    types = ", ".join(f"'{c}': 'DOUBLE'" for c in columns)
    return _CSV.removesuffix(")") + f", types = {{{types}}})"


def _text(column: str) -> str:
    return f"nullif(trim(CAST({_q(column)} AS VARCHAR)), '')"


def _number(source: LongFile, column: str) -> str:
    if column not in source.text_numbers:
        return f"CAST({_q(column)} AS DOUBLE)"
    # DuckDB's cast skips surrounding blanks itself; blank cells are NULL (empty) or unparsed (quoted)
    parsed = f"TRY_CAST({_q(column)} AS DOUBLE)"
    if source.quantities.get(column):
        # Kubernetes quantities ("250m", "1Gi"), each distinct one parsed once in Python
        parsed = (f"coalesce({parsed}, (SELECT q.value FROM _import_quantities AS q "
                  f"WHERE q.column_name = '{column}' AND q.text = {_text(column)}))")
    return parsed


def _file_numbers(source: LongFile, numbers: list[str]) -> list[str]:
    """The usage columns of a Parquet file (numbers of any type: CAST AS DOUBLE is non-decreasing)
    whose minimum and maximum the summary takes before the cast instead of casting every row: the
    same extremes, ~0.13 of 1.30 CPU-s less for the L Parquet's summary (bench/RESULTS.md, WR).
    (The request and limit columns are also grouping keys, cast per row either way.)"""
    if source.kind != "parquet":
        return []
    return [c for c in numbers if c in ("cpu_cores", "memory_bytes") and c not in source.text_numbers]


def _build_sql(source: LongFile) -> None:
    offset = ""
    if source.text_time:
        # ISO 8601 text: UTC ("Z") or without an offset (UTC too) is read as a plain TIMESTAMP; only
        # text with an offset after the date takes the time-zone-aware parse (5x the CPU per value)
        text = 'CAST("timestamp" AS VARCHAR)'  # (the casts skip surrounding blanks)
        time_part = f"substr({text}, 11)"
        offset = f"(strpos({time_part}, '+') > 0 OR strpos({time_part}, '-') > 0)"
        ts = (f"CASE WHEN {offset} THEN timezone('UTC', TRY_CAST({text} AS TIMESTAMPTZ)) "
              f"ELSE TRY_CAST({text} AS TIMESTAMP) END")
        if source.offset_times == 0:
            # no time of the file has an offset (the summary counted them): the CASE above takes
            # its ELSE for every row; without it a pass over the L CSV costs ~0.3 CPU-s less
            ts, offset = f"TRY_CAST({text} AS TIMESTAMP)", ""
    elif source.time_zone:
        ts = "timezone('UTC', \"timestamp\")"
    else:
        ts = "CAST(\"timestamp\" AS TIMESTAMP)"
    select = [f"CAST({_q(c)} AS VARCHAR) AS {c}" for c in ("namespace", "pod", "container")]
    # (the per-row comparison with '' cost the L Parquet's summary ~0.1 of 1.16 CPU-s: only made when
    # the file has an empty text, LongFile.empty_texts)
    empty = "nullif(CAST({} AS VARCHAR), '')" if source.empty_texts else "CAST({} AS VARCHAR)"
    select += [f"{empty.format(_q(c))} AS {c}" if c in source.present else f"CAST(NULL AS VARCHAR) AS {c}"
               for c in TEXT_OPTIONAL]
    select.append(f"{ts} AS ts")
    numbers = [c for c in NUMBER_COLUMNS if c in LONG_REQUIRED or c in source.present]
    select += [f"{_number(source, c)} AS {c}" for c in numbers]
    # Parquet numbers as the file holds them, for the summary's extremes (_summarise)
    select += [f"{_q(c)} AS _file_{c}" for c in _file_numbers(source, numbers)]
    if source.text_time:
        select.append(f"{_text('timestamp')} AS _text_ts")
        select.append('CAST("timestamp" AS VARCHAR) AS _raw_ts')
        if offset:
            select.append(f"{offset} AS _offset_ts")
    select += [f"{_text(c)} AS _text_{c}" for c in source.text_numbers]
    select += [f"CAST({_q(c)} AS VARCHAR) AS _raw_{c}" for c in source.text_numbers]
    columns = ", ".join(select)
    typed = tuple(c for c in source.csv_numbers if c not in source.text_numbers)
    read = _PARQUET if source.kind == "parquet" else _csv_typed(typed) if typed else _CSV
    source.rows = f"(SELECT {columns} FROM {read})"
    if source.time_type:
        between = f'"timestamp" >= CAST($slice_lo AS {source.time_type}) AND "timestamp" < CAST($slice_hi AS {source.time_type})'
        source.rows_between = f"(SELECT {columns} FROM {read} WHERE {between})"
    # Parquet: the row in the file; CSV: the line (header = 1), counted by a streaming window in
    # file order (single-threaded: only read to name a bad row)
    line = "file_row_number + 1" if source.kind == "parquet" else "row_number() OVER () + 1"
    source.lines = f"(SELECT {columns}, {line} AS line FROM {read})"


# --- 1. the gate over the file --------------------------------------------------------------------


def _checks(source: LongFile, now: datetime) -> list[gate.Check]:
    return [c for c in gate.usage_checks(now) if c.column in ("namespace", "pod", "container", "ts", *NUMBER_COLUMNS)
            and (c.column not in SPEC_COLUMNS or c.column in source.present)]


@dataclass
class Staged:
    """What the checks found: rows read, and the per-series summary in `_import_groups`."""

    samples_read: int
    repeats: int = 0
    # True: nothing is stored in the file's time span (`span`, whole seconds), so write_staged inserts
    # straight from the file; False: the samples are staged in `_staged_usage` (stage)
    direct: bool = False
    span: tuple[datetime, datetime] | None = None
    # the file's rows already come in the stored order (by its first rows: in_order); then the
    # direct write does not sort them
    presorted: bool | None = None
    # every check of the gate and its parameters, for the summary again() makes when the direct
    # write finds a value outside the bounds of a deferred check (LongFile.deferred)
    checks: list[gate.Check] = field(default_factory=list)
    limit: dict[str, Any] = field(default_factory=dict)
    threads: int = 0  # DuckDB's threads on the connection before the first write (write_staged)


class WriteAgain(Exception):
    """A direct write (write_staged) found the file's rows not in the stored order after all, or the
    same container and time twice, or a value a deferred check refuses (`checks`): the caller rolls
    its transaction back, calls again() and writes again."""

    def __init__(self, repeats: bool, checks: bool = False) -> None:
        super().__init__("a value out of bounds" if checks else
                         "the same container and time twice" if repeats else "not in the stored order")
        self.repeats = repeats
        self.checks = checks


def again(con: duckdb.DuckDBPyConnection, source: LongFile, staged: Staged, why: WriteAgain) -> None:
    """After a WriteAgain (rolled back): sort the rows on the next write; or, for repeats, stage
    them (a contradiction is refused by its lines, equal repeats are one sample); or, for a value
    out of bounds, make every check in the summary (BadInputError naming the first bad row)."""
    if why.checks:
        _check_deferred(con, source, staged.checks, staged.limit)
        return
    if why.repeats:
        stage(con, source, staged)
    staged.presorted = False


# The checks of these usage columns of a Parquet file (numbers, not text) are left to the direct
# write when deferrable_checks allows: the summary then reads neither column (L Parquet: 1.09 ->
# 0.51 CPU-s), and the write guards each row with `NOT (value BETWEEN 0 AND upper)` (no CPU
# measurable: 0.49-0.51 CPU-s a day either way), which refuses every value the gate's checks of the
# column refuse (NaN, an infinity, a negative, above the bound; tests/ingest). A row it refuses
# makes the write raise DEFERRED_CHECK_ERROR, roll back, and the summary make every check (again):
# the gate's own message, as if they had been made first.
DEFERRED_UPPER = {"cpu_cores": gate.MAX_CPU_CORES, "memory_bytes": gate.MAX_MEMORY_BYTES}
DEFERRED_CHECK_ERROR = "capplan import: a usage value outside the bounds of the gate"


def deferrable_checks(con: duckdb.DuckDBPyConnection, source: LongFile, cluster: str) -> tuple[str, ...]:
    """The columns of DEFERRED_UPPER whose checks the direct write can make: a Parquet file's numbers
    (not text), when the cluster has no stored node (no capacity to check them against, which needs
    their maxima per node) and, by the file's row-group statistics, the store no sample in its time
    span (the file is then written straight from itself: check_and_stage)."""
    columns = tuple(_file_numbers(source, list(DEFERRED_UPPER)))
    if not columns or not source.time_type:
        return ()
    (nodes,) = store.fetch_row(con, "SELECT count(*) FROM nodes WHERE cluster = $cluster", {"cluster": cluster})
    groups = time_groups(con, source)
    if nodes or not groups or store.stored_range(con, min(g[1] for g in groups), max(g[2] for g in groups)) is not None:
        return ()
    return columns


def time_groups(con: duckdb.DuckDBPyConnection, source: LongFile) -> list[tuple[int, datetime, datetime]]:
    """The Parquet file's row groups of the time column (source.time_type set): rows, smallest and
    largest time by the file's statistics; [] when a row group has none (neither caller can use the
    statistics then). Read from the file's metadata once per import (LongFile.time_row_groups)."""
    if source.time_row_groups is None:
        groups = con.execute(
            "SELECT row_group_num_rows, CAST(stats_min_value AS TIMESTAMP), CAST(stats_max_value AS TIMESTAMP) "
            "FROM parquet_metadata($path) WHERE path_in_schema = 'timestamp'", source.params).fetchall()
        known = all(first is not None and last is not None for _, first, last in groups)
        source.time_row_groups = [(int(n), first, last) for n, first, last in groups] if known else []
    return source.time_row_groups


def deferred_bad(columns: tuple[str, ...]) -> str:
    """The row `r` holds a value of `columns` (of DEFERRED_UPPER) out of its bounds: NaN (DuckDB
    orders it above every number), an infinity, a negative or above the bound; NULL (no value, which
    the gate lets through) is not true."""
    return " OR ".join(f"NOT (r.{c} BETWEEN 0 AND {float(DEFERRED_UPPER[c])!r})" for c in columns)


def _deferred_guard(source: LongFile) -> str:
    """The row `r`'s cpu_cores, through a guard raising DEFERRED_CHECK_ERROR on a value of a deferred
    column out of its bounds."""
    if not source.deferred:
        return "r.cpu_cores"
    return f"CASE WHEN {deferred_bad(source.deferred)} THEN error('{DEFERRED_CHECK_ERROR}') ELSE r.cpu_cores END"


def _check_deferred(con: duckdb.DuckDBPyConnection, source: LongFile, checks: list[gate.Check],
                    limit: dict[str, Any]) -> None:
    """Every check, the deferred ones too, in the summary: BadInputError naming the first bad row."""
    source.deferred = ()
    try:
        totals = _summarise(con, source, checks, limit)
        if totals["bad"]:
            _first_bad_row(con, source, checks, limit)
    except (duckdb.InvalidInputException, duckdb.ConversionException, duckdb.IOException) as exc:
        raise BadInputError(f"cannot read {source.path}: {str(exc).splitlines()[0]}") from exc


def check_and_stage(con: duckdb.DuckDBPyConnection, source: LongFile, *, now: datetime,
                    cluster: str = store.DEFAULT_CLUSTER) -> Staged:
    """Every check of the gate over the file, then the samples staged for writing as `cluster`'s
    (series ids of its containers; physical bounds by its nodes), or, when the store holds no sample
    in the file's span, marked to be written straight from the file (`direct`).

    Raises BadInputError naming the first bad row; nothing in the database is changed (only
    temporary tables of this connection are made)."""
    limit = {"ts_limit": gate.ts_limit(now), **source.params}
    checks = _checks(source, now)
    try:
        source.deferred = deferrable_checks(con, source, cluster)
        summary_checks = [c for c in checks if c.column not in source.deferred]
        totals = _summarise_file(con, source, summary_checks, limit)
        if any(totals[f"unparsed_{c}"] for c in _text_columns(source)):
            _parse_errors(con, source, totals)
            if source.quantities:  # every text was a quantity: read again with their values
                _build_sql(source)
                totals = _summarise(con, source, summary_checks, limit)
        if totals["bad"]:
            _first_bad_row(con, source, checks, limit)  # (every check: the first bad row of any)
        con.execute(store.load_sql("import_series"), {"cluster": cluster})
        staged = Staged(samples_read=int(totals["samples"] or 0), checks=checks, limit=limit)
        lo, hi = store.fetch_row(con, "SELECT date_trunc('second', min(valid_from)), date_trunc('second', max(valid_to)) "
                                      "FROM _import_groups")
        if lo is not None and store.stored_range(con, lo, hi) is None:
            # Nothing stored in the file's time span: no sample of it can be stored already, so the file
            # goes straight into usage_raw (write_staged) and the same container and time twice is
            # looked for there; only then is it staged (stage) to be named or merged.
            staged.direct, staged.span = True, (lo, hi)
            try:
                if not source.deferred:  # (deferred: the cluster has no stored node to check against)
                    _check_capacity(con, source, cluster)
            except BadInputError:
                stage(con, source, staged)  # the contradiction is named first, as on the staged path
                raise
        else:
            if source.deferred:  # (the statistics' span held no sample; the summary's does)
                _check_deferred(con, source, checks, limit)
            stage(con, source, staged, cluster)
    except (duckdb.InvalidInputException, duckdb.ConversionException, duckdb.IOException) as exc:
        raise BadInputError(f"cannot read {source.path}: {str(exc).splitlines()[0]}") from exc
    return staged


def stage(con: duckdb.DuckDBPyConnection, source: LongFile, staged: Staged, cluster: str | None = None) -> None:
    """The file's samples in a temporary table (`_staged_usage`, store units and order); the same
    container and time twice: refused (BadInputError naming the line) when the values differ, kept
    once when equal. With `cluster`, then the physical bounds by that cluster's stored nodes."""
    try:
        con.execute(store.load_sql("import_stage").format(
            rows=source.rows, cpu_units=store.CPU_UNITS_PER_CORE, memory_unit=store.MEMORY_UNIT_BYTES,
            order=store.STORED_ORDER), source.params)
        clashes, repeats = store.fetch_row(con, store.load_sql("import_repeats"))
        if clashes:
            _first_clash(con, source)
        if cluster is not None:
            _check_capacity(con, source, cluster)
        if repeats:  # the same sample twice in the file is one sample
            con.execute(store.load_sql("import_stage_unique"))
    except (duckdb.InvalidInputException, duckdb.ConversionException, duckdb.IOException) as exc:
        raise BadInputError(f"cannot read {source.path}: {str(exc).splitlines()[0]}") from exc
    staged.direct, staged.repeats = False, int(repeats or 0)


def _text_columns(source: LongFile) -> list[str]:
    return (["ts"] if source.text_time else []) + [c for c in NUMBER_COLUMNS if c in source.text_numbers]


def _summarise_file(con: duckdb.DuckDBPyConnection, source: LongFile, checks: list[gate.Check],
                    limit: dict[str, Any]) -> dict[str, Any]:
    """_summarise, first with the CSV's numbers parsed by the reader; a cell it refuses (a quantity,
    a blank, a word: a ConversionException, or an error the text read raises again) and the file is
    summarised with its numbers as text, which takes quantities and names a bad cell by its line.
    Then, when no time of the file has a UTC offset, the later passes parse times without the
    offset test (LongFile.offset_times); and when an optional text is empty, the file is summarised
    again with it read as no value (LongFile.empty_texts)."""
    if source.csv_numbers and not source.text_numbers:
        try:
            totals = _summarise(con, source, checks, limit)
        except (duckdb.ConversionException, duckdb.InvalidInputException):
            source.text_numbers = source.csv_numbers
            _build_sql(source)
            totals = _summarise(con, source, checks, limit)
    else:
        totals = _summarise(con, source, checks, limit)
    if source.text_time and source.offset_times is None:
        source.offset_times = int(totals["offset_times"] or 0)
        if not source.offset_times:
            _build_sql(source)
    if source.empty_texts is None:
        # grouped by the optional texts as the file has them: an empty one is a group of its own, so
        # the file is summarised again with it read as no value (NULL), as every later pass reads it
        present = [c for c in TEXT_OPTIONAL if c in source.present]
        empty = " OR ".join(f"{c} = ''" for c in present)
        source.empty_texts = bool(present) and bool(
            store.fetch_row(con, f"SELECT count(*) FROM _import_groups WHERE {empty}")[0])
        if source.empty_texts:
            _build_sql(source)
            totals = _summarise(con, source, checks, limit)
    return totals


def _summarise(con: duckdb.DuckDBPyConnection, source: LongFile, checks: list[gate.Check],
               limit: dict[str, Any]) -> dict[str, Any]:
    """The summary per group, and the file's totals: rows, groups with a bad row, unparsed texts.

    Each check is judged on the group's extremes, not on every row: each rule refuses values
    outside an interval, or NaN (which DuckDB orders above +inf), so a group holds a bad value iff
    its minimum or its maximum is bad; a missing time shows as fewer times than rows. (Row-level
    flags made DuckDB parse each CSV cell once per check that reads it: 3x the CPU at L.)"""
    numbers = [c for c in NUMBER_COLUMNS if (c in LONG_REQUIRED or c in source.present) and c not in source.deferred]
    file_numbers = _file_numbers(source, numbers)
    extremes = "".join(f", min({c}) AS {c}__min, max({c}) AS {c}__max" for c in ("ts", *numbers)
                       if c not in file_numbers)
    extremes += "".join(f", CAST(min(_file_{c}) AS DOUBLE) AS {c}__min, CAST(max(_file_{c}) AS DOUBLE) AS {c}__max"
                        for c in file_numbers)
    # cells that are not empty (DuckDB reads an empty cell as NULL) but no time or number: an upper
    # bound (blank text counts too) that _parse_errors makes exact
    unparsed = "".join(f", count(_raw_{c}) - count({c}) AS unparsed_{c}" for c in _text_columns(source))
    offsets = source.text_time and source.offset_times is None
    if offsets:
        unparsed += ", count_if(_offset_ts) AS offset_times"
    con.execute(store.load_sql("import_groups").format(
        rows=source.rows, keys=", ".join(source.group_columns), extremes=extremes, unparsed=unparsed), source.params)
    sums = "".join(f", sum(unparsed_{c}) AS unparsed_{c}" for c in _text_columns(source))
    if offsets:
        sums += ", sum(offset_times) AS offset_times"
    result = con.execute(f"SELECT sum(samples) AS samples, count(*) FILTER (WHERE {_group_bad(checks)}) AS bad{sums} "
                         "FROM _import_groups", {"ts_limit": limit["ts_limit"]})
    names = [d[0] for d in result.description]
    row = result.fetchone()
    assert row is not None  # an aggregate returns one row
    return dict(zip(names, row, strict=True))


def _group_bad(checks: list[gate.Check]) -> str:
    """A group of _import_groups holds a row some check refuses (see _summarise)."""
    parts = ["timed < samples"]  # a missing time
    for check in checks:
        if check.column in ("namespace", "pod", "container"):  # keys of the group
            parts.append(f"coalesce({check.sql}, false)")
            continue
        quoted = f'"{check.column}"'
        for end in ("min", "max"):
            parts.append(f"coalesce({check.sql.replace(quoted, f'{check.column}__{end}')}, false)")
    return " OR ".join(parts)


def _parse_errors(con: duckdb.DuckDBPyConnection, source: LongFile, totals: dict[str, Any]) -> None:
    """Text that is no time or number: times are refused; numbers are tried as Kubernetes
    quantities (each distinct text once), and refused when they are none."""
    for column in _text_columns(source):
        if not totals[f"unparsed_{column}"]:
            continue
        unparsed = f"_text_{column} IS NOT NULL AND {column} IS NULL"
        if column == "ts":
            first = con.execute(f"SELECT line, _text_ts FROM {source.lines} WHERE {unparsed} ORDER BY line LIMIT 1",
                                source.params).fetchone()
            if first is None:  # only blank cells: missing times, refused by the checks
                continue
            (count,) = store.fetch_row(con, f"SELECT count(*) FROM {source.rows} WHERE {unparsed}", source.params)
            gate.raise_bad(source.origin, int(first[0]), "ts", f"{first[1][:80]!r} is not an ISO 8601 time", int(count))
        parse = parse_cpu_cores if column.startswith("cpu_") else parse_memory_bytes
        texts = [t for (t,) in con.execute(
            f"SELECT DISTINCT _text_{column} FROM {source.rows} WHERE {unparsed}", source.params).fetchall()]
        values: dict[str, float] = {}
        failed = []
        for text in texts:
            try:
                values[text] = float(parse(text))
            except BadInputError:
                failed.append(text)
        if failed:
            where = f"_text_{column} IN (SELECT unnest($failed))"
            params = {"failed": failed, **source.params}
            line, text = store.fetch_row(
                con, f"SELECT line, _text_{column} FROM {source.lines} WHERE {where} ORDER BY line LIMIT 1", params)
            (count,) = store.fetch_row(con, f"SELECT count(*) FROM {source.rows} WHERE {where}", params)
            gate.raise_bad(source.origin, int(line), column, f"{text[:80]!r} is not a number or quantity", int(count))
        if values:
            source.quantities[column] = values
    if source.quantities:
        frame = pl.DataFrame(
            [(c, t, v) for c, texts in source.quantities.items() for t, v in texts.items()],
            schema={"column_name": pl.Utf8, "text": pl.Utf8, "value": pl.Float64}, orient="row")
        with store.staged_table(con, "_import_quantities_frame", frame):
            con.execute("CREATE OR REPLACE TEMP TABLE _import_quantities AS SELECT * FROM _import_quantities_frame")


def _row(result: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    names = [d[0] for d in result.description]
    row = result.fetchone()
    assert row is not None
    return dict(zip(names, row, strict=True))


def _first_bad_row(con: duckdb.DuckDBPyConnection, source: LongFile, checks: list[gate.Check],
                   limit: dict[str, Any]) -> None:
    flags = ", ".join(f"coalesce({c.sql}, false) AS _bad{i}" for i, c in enumerate(checks))
    any_bad = " OR ".join(f"_bad{i}" for i in range(len(checks)))
    (count,) = store.fetch_row(con, f"SELECT count(*) FROM (SELECT {flags} FROM {source.rows}) WHERE {any_bad}", limit)
    first = _row(con.execute(
        f"SELECT * FROM (SELECT *, {flags} FROM {source.lines}) WHERE {any_bad} ORDER BY line LIMIT 1", limit))
    check = next(c for i, c in enumerate(checks) if first[f"_bad{i}"])
    gate.raise_bad(source.origin, int(first["line"]), check.column,
                   check.reason.format(value=gate._show(first[check.column])), int(count), first)


def _first_clash(con: duckdb.DuckDBPyConnection, source: LongFile) -> None:
    """The same container and time twice with different values: name the second of the first pair."""
    con.execute(store.load_sql("import_clashes").format(lines=source.lines), source.params)
    (count,) = store.fetch_row(con, "SELECT count(*) FROM _import_clash_rows")
    first = _row(con.execute("SELECT * FROM _import_clash_rows ORDER BY line LIMIT 1"))
    other = _row(con.execute(
        "SELECT * FROM _import_clash_rows WHERE series_id = $series AND key_ts = $ts AND line <> $line "
        "ORDER BY line LIMIT 1", {"series": first["series_id"], "ts": first["key_ts"], "line": first["line"]}))
    column = "cpu_cores" if other["cpu_cores"] != first["cpu_cores"] else "memory_bytes"
    gate.raise_bad(source.origin, int(other["line"]), column,
                   f"{gate._show(other[column])} conflicts with line {first['line']} "
                   f"({gate._show(first[column])}): the same container and time twice", int(count))


def _check_capacity(con: duckdb.DuckDBPyConnection, source: LongFile, cluster: str) -> None:
    """Usage above its node's capacity, by the cluster's nodes already stored (per node first; rows
    are only looked at when a node's maximum is over)."""
    con.execute(store.load_sql("import_capacity"), {"cluster": cluster})
    (over,) = store.fetch_row(con, store.load_sql("import_capacity_over").format(over=gate.CAPACITY_SQL))
    if not over:
        return
    rows = (f"SELECT r.*, n.cpu_capacity_cores, n.memory_capacity_bytes FROM {source.lines} AS r "
            f"JOIN _import_capacity AS n USING (node) WHERE {gate.CAPACITY_SQL}")
    (count,) = store.fetch_row(con, f"SELECT count(*) FROM ({rows})", source.params)
    first = _row(con.execute(f"{rows} ORDER BY line LIMIT 1", source.params))
    column, reason = gate.capacity_reason(first)
    gate.raise_bad(source.origin, int(first["line"]), column, reason, int(count), first)


# The first rows of a file, read to judge whether it comes in the stored order already
IN_ORDER_PROBE_ROWS = 100_000


def in_order(con: duckdb.DuckDBPyConnection, source: LongFile) -> bool:
    """The file's first IN_ORDER_PROBE_ROWS rows come in the stored order, (time, series id), each
    after the one before it (a file sorted by time, then namespace, pod and container, into a
    store without its containers). Only a guess for the rest: the direct write checks it."""
    (backwards,) = store.fetch_row(con, store.load_sql("import_in_order").format(
        rows=f"(SELECT * FROM {source.lines} LIMIT {IN_ORDER_PROBE_ROWS})"), source.params)
    return not backwards


# --- 2. what the summary gives the spec tables ---------------------------------------------------


def spec_frames(con: duckdb.DuckDBPyConnection, source: LongFile) -> dict[str, pl.DataFrame]:
    """Pods (and containers, when the file has request or limit columns) from the summary."""
    owners = "".join(f", arg_min({c}, valid_from) FILTER (WHERE {c} IS NOT NULL) AS {c}"
                     for c in ("owner_kind", "owner_name") if c in source.present)
    # (store.frame_of: the same frame as DuckDB's .pl(), without importing pyarrow, ~70 MiB of RSS and
    # ~0.25 CPU-s of the import's fixed cost)
    pods = store.frame_of(
        con, "SELECT namespace, pod, min(valid_from) AS valid_from, max(valid_to) AS valid_to, "
        f"arg_min(node, valid_from) FILTER (WHERE node IS NOT NULL) AS node{owners}, 'Running' AS phase "
        "FROM _import_groups GROUP BY namespace, pod")
    if not source.spec:
        # No request or limit column: the containers' spec is unknown, not "nothing set" (which
        # would make every pod BestEffort with requests 0). An empty cell is "not set".
        return {"pods": pods}
    spec = ", ".join(source.spec)
    containers = store.frame_of(
        con, f"SELECT namespace, pod, container, {spec}, min(valid_from) AS valid_from, max(valid_to) AS valid_to, "
        "false AS init_container, false AS restartable "
        f"FROM _import_groups GROUP BY namespace, pod, container, {spec}")
    for col in ("memory_request_bytes", "memory_limit_bytes"):
        if col in containers.columns:
            containers = containers.with_columns(pl.col(col).round(0).cast(pl.Int64))
    return {"pods": pods, "containers": containers}


DAY_SECONDS = 86_400
_EPOCH = datetime(1970, 1, 1)


def write_staged(con: duckdb.DuckDBPyConnection, staged: Staged, *, replace: bool,
                 cluster: str = store.DEFAULT_CLUSTER, source: LongFile | None = None) -> store.UsageWrite:
    """Inside the import's transaction: new series (of `cluster`), the nodes they ran on, and the
    samples (read from `source` again when `staged.direct`: WriteAgain when they were not in the
    order the write assumed, or repeat a sample)."""
    known_series = int(store.fetch_row(con, "SELECT coalesce(max(series_id), 0) FROM series")[0])  # ids above are new
    con.execute(store.load_sql("import_series_nodes"))
    con.execute(store.load_sql("import_series_insert"), {"cluster": cluster})
    moved = [int(r[0]) for r in con.execute(store.load_sql("series_nodes_upsert")).fetchall()]
    # a stored series that moved to another node takes its node sums with it (schema 006)
    store.mark_series_pending(con, [i for i in moved if i <= known_series])
    if not staged.direct:
        return store.insert_staged_usage(con, replace=replace)
    assert staged.span is not None and source is not None
    lo, hi = staged.span
    if staged.presorted is None:
        # A file in the stored order is written unsorted only within one UTC day: a file over more
        # days is sorted straight into each day's clustered order instead, which costs less than
        # writing it unsorted and having store.cluster_usage rewrite its complete days (the L file
        # sorted by time, 10 days: 12.8 CPU-s unsorted before the rewrite, about 1 CPU-s a day)
        staged.presorted = lo.date() == hi.date() and in_order(con, source)
    inserted = 0
    # sorted: in time slices where the file's row groups allow; presorted: as the file comes
    slices = None if staged.presorted else time_slices(con, source, lo, hi)
    # Sorted writes put each UTC day straight into the clustered order (schema 009) that
    # store.cluster_usage would rewrite it in afterwards: the sort costs the same, the rewrite (read,
    # sort, delete and insert every complete day again: 10 days of the L Parquet 23 -> 36 CPU-s) is
    # not needed. The sort is on one integer key holding the day, the block, the time and the id
    # (import_direct_keyed.sql).
    widths = {int((b - a).total_seconds()) for a, b in slices or []}
    clustered = not staged.presorted and all(w % DAY_SECONDS == 0 for w in widths)
    order = "" if staged.presorted else f"ORDER BY {store.STORED_ORDER}"
    block_lo, blocks = _series_blocks(con)
    series_join = _series_join(con, block_lo)
    # (the connection's own threads, read by its first write: a write that failed on one thread,
    # its transaction aborted, cannot set them back)
    staged.threads = threads = staged.threads or int(store.fetch_row(con, "SELECT current_setting('threads')")[0])
    # DuckDB's parallel insert of the file joined to the series ids does not keep the file's order
    # (its plan is INSERT, not BATCH_INSERT: the L file sorted by time came out with one pair out of
    # order); one thread keeps it: 4.7 CPU-s against 8.8 sorted on two, the same wall time on a
    # quiet 2-core machine
    con.execute(f"SET threads = {1 if staged.presorted else threads}")
    try:
        for slice_lo, slice_hi in slices or [(lo, hi)]:
            rows = source.rows_between if slices else source.rows
            if clustered:
                # each UTC day of the slice in the clustered order (the sort key holds the day)
                first_day = datetime.combine(slice_lo.date(), datetime.min.time())
                last = min(slice_hi - timedelta(seconds=1), hi) if slices else hi  # slices end before slice_hi
                days = (last.date() - first_day.date()).days + 1
                sql = _keyed_insert(rows, series_join, _deferred_guard(source), first_day, days, block_lo, blocks)
            else:
                sql = store.load_sql("import_direct").format(
                    rows=rows, cpu_cores=_deferred_guard(source), cpu_units=store.CPU_UNITS_PER_CORE,
                    memory_unit=store.MEMORY_UNIT_BYTES, order=order)
            try:
                row = con.execute(sql, {**source.params, **({"slice_lo": slice_lo, "slice_hi": slice_hi} if slices else {})}
                                  ).fetchone()
            except duckdb.InvalidInputException as exc:
                if DEFERRED_CHECK_ERROR in str(exc):  # a value a deferred check refuses (again names it)
                    raise WriteAgain(repeats=False, checks=True) from exc
                raise
            inserted += int(row[0]) if row else 0
    finally:
        with contextlib.suppress(duckdb.TransactionException):  # (aborted: the next write sets them)
            con.execute(f"SET threads = {threads}")
    # The span held no sample before: usage_raw's rows in it are the file's, in the order written
    # (the same container and time are neighbours in either order; only a file taken to come in the
    # stored order can turn out not to)
    backwards = "ts < previous_ts OR (ts = previous_ts AND series_id < previous_id)" if staged.presorted else "false"
    repeats, backwards_rows = _repeats(con, lo, hi, backwards, threads)
    if backwards_rows:
        raise WriteAgain(repeats=False)
    if repeats:
        raise WriteAgain(repeats=True)
    if inserted != staged.samples_read:  # every row the checks counted lands once (else a bug: exit 1)
        raise RuntimeError(f"{source.path}: {inserted:,} samples written of {staged.samples_read:,} checked")
    result = store.UsageWrite(inserted=inserted)
    if result.inserted:
        store.mark_node_usage_pending(con, lo, hi)
        for part in ([(lo, hi)] if not clustered else _shared_days(con, lo, hi)):
            # the rows appended in time order, or a day the file shares with samples stored before
            # or after its span: put in the clustered order when complete (store.cluster_usage)
            store.mark_unclustered(con, *part)
    return result


def _repeats(con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime, backwards: str,
             threads: int) -> tuple[int, int]:
    """import_direct_repeats.sql over [lo, hi] (whole seconds) in up to `threads` parts of whole UTC
    days, added up: the repeats and the backwards rows."""
    first_day = datetime.combine(lo.date(), datetime.min.time())
    days = (hi.date() - lo.date()).days + 1
    count = max(1, min(threads, days))
    bounds = [first_day + timedelta(days=days * i // count) for i in range(count + 1)]
    part_sql = store.load_sql("import_direct_repeats")  # (read once: the parts differ in their number)
    params: dict[str, Any] = {}
    parts = []
    for i in range(count):
        params[f"lo{i}"] = max(lo, bounds[i])
        params[f"hi{i}"] = min(hi, bounds[i + 1] - timedelta(seconds=1))
        parts.append(part_sql.format(part=i, backwards=backwards))
    repeats, backwards_rows = store.fetch_row(
        con, f"SELECT coalesce(sum(repeats), 0), coalesce(sum(backwards), 0) FROM ({' UNION ALL '.join(parts)})",
        params)
    return int(repeats), int(backwards_rows)


# The bit fields of import_direct_keyed.sql's sort key, from the lowest: the series id's place in its
# block (store.CLUSTER_SERIES_BLOCK ids), the second of the day (86,400 < 2^17), then the day and the
# block together. Shifts and masks read them back for less than divisions by 64 and 86,400 (see
# _keyed_insert).
KEY_PLACE_BITS = 6
KEY_SECOND_BITS = 17
assert store.CLUSTER_SERIES_BLOCK == 1 << KEY_PLACE_BITS and DAY_SECONDS <= 1 << KEY_SECOND_BITS
_KEY_BLOCK_SHIFT = KEY_PLACE_BITS + KEY_SECOND_BITS
# The file's series are joined to its rows on this 64-bit hash of their namespace, pod and container
# (a format string: {0} the rows' alias and a dot, or nothing) instead of on the three texts, when
# the hashes of the file's series are distinct (_series_join): then each row's hash is its own
# series' alone. A day of the L Parquet (2.76 M rows): the join 0.088 -> 0.047 CPU-s, the day's
# write 0.54 -> 0.49-0.51 (bench/RESULTS.md, WR).
SERIES_HASH_SQL = "hash({0}namespace, {0}pod, {0}container)"


def sort_key_type(days: int, blocks: int) -> str:
    """The type of import_direct_keyed.sql's sort key over `days` UTC days and `blocks` series-id
    blocks: UINTEGER when its largest value fits (a day of up to 512 blocks, 32,768 series ids; a
    narrower key sorts for less), else BIGINT."""
    return "UINTEGER" if days * blocks <= 2**32 >> _KEY_BLOCK_SHIFT else "BIGINT"


def _series_join(con: duckdb.DuckDBPyConnection, block_lo: int) -> str:
    """The file's series (_import_series), each with `sb`, its block's (from `block_lo`) and its
    place's part of the sort key (import_direct_keyed.sql), as `m` joined to the file's row `r`: on
    SERIES_HASH_SQL when no two of the series share a hash, else on namespace, pod and container."""
    sb = (f"(((CAST(series_id AS BIGINT) >> {KEY_PLACE_BITS}) - {block_lo}) << {_KEY_BLOCK_SHIFT}) "
          f"| (series_id & {store.CLUSTER_SERIES_BLOCK - 1})")
    series_hash = SERIES_HASH_SQL.format("")
    (distinct,) = store.fetch_row(
        con, f"SELECT count(DISTINCT {series_hash}) = count(*) FROM _import_series")
    if distinct:
        return (f"(SELECT {series_hash} AS h, {sb} AS sb FROM _import_series) AS m "
                f"ON m.h = {SERIES_HASH_SQL.format('r.')}")
    return f"(SELECT namespace, pod, container, {sb} AS sb FROM _import_series) AS m USING (namespace, pod, container)"


def _keyed_insert(rows: str, series_join: str, cpu_cores: str, first_day: datetime, days: int, block_lo: int,
                  blocks: int) -> str:
    """import_direct_keyed.sql for the rows `rows` (their cores: `cpu_cores`, _deferred_guard) of
    `days` UTC days from `first_day`. One day (a
    day slice of a Parquet file) leaves the day out of the key: no division by the blocks and by
    86,400 to make or read it (a day of the L Parquet, 2.76 M rows: 0.58-0.60 -> 0.54-0.56 CPU-s,
    bench/RESULTS.md, WR)."""
    base_us = (first_day - _EPOCH) // timedelta(microseconds=1)
    since_us = f"(epoch_us(r.ts) - {base_us})"
    if days == 1:
        key = f"m.sb + (({since_us} // 1000000) << {KEY_PLACE_BITS})"
        block_of_key, day_of_key = f"(k >> {_KEY_BLOCK_SHIFT})", "0"
    else:
        key = (f"m.sb + ((({since_us} // {DAY_SECONDS * 1_000_000}) * {blocks}) << {_KEY_BLOCK_SHIFT}) "
               f"+ ((({since_us} // 1000000) % {DAY_SECONDS}) << {KEY_PLACE_BITS})")
        block_of_key, day_of_key = f"((k >> {_KEY_BLOCK_SHIFT}) % {blocks})", f"((k >> {_KEY_BLOCK_SHIFT}) // {blocks})"
    return store.load_sql("import_direct_keyed").format(
        rows=rows, series=series_join, key=key, block_of_key=block_of_key, day_of_key=day_of_key, cpu_cores=cpu_cores,
        cpu_units=store.CPU_UNITS_PER_CORE, memory_unit=store.MEMORY_UNIT_BYTES, base_us=base_us,
        block=store.CLUSTER_SERIES_BLOCK, block_lo=block_lo, place_bits=KEY_PLACE_BITS,
        place_mask=store.CLUSTER_SERIES_BLOCK - 1, second_mask=(1 << KEY_SECOND_BITS) - 1,
        key_type=sort_key_type(days, blocks))


def _series_blocks(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """The first series-id block (store.CLUSTER_SERIES_BLOCK) of the file's series (_import_series)
    and how many blocks they span: the sort key of import_direct_keyed.sql numbers blocks from it."""
    first, last = store.fetch_row(
        con, f"SELECT min(series_id) // {store.CLUSTER_SERIES_BLOCK}, max(series_id) // {store.CLUSTER_SERIES_BLOCK} "
             "FROM _import_series")
    return (int(first), int(last) - int(first) + 1) if first is not None else (0, 1)


def _shared_days(con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime) -> list[tuple[datetime, datetime]]:
    """The parts of [lo, hi] (the file's span, whole seconds, where nothing was stored) in its first
    and last UTC day when that day holds samples stored outside the span: the day then holds those and
    the file's, in no one order. The file's days in between hold its samples alone."""
    second, day = timedelta(seconds=1), timedelta(days=1)
    first_day = datetime.combine(lo.date(), datetime.min.time())
    last_day_end = datetime.combine(hi.date(), datetime.min.time()) + day - second
    parts = []
    if lo > first_day and store.stored_range(con, first_day, lo - second) is not None:
        parts.append((lo, min(hi, first_day + day - second)))
    if hi < last_day_end and store.stored_range(con, hi + second, last_day_end) is not None:
        parts.append((max(lo, last_day_end - day + second), hi))
    return parts


def time_slices(con: duckdb.DuckDBPyConnection, source: LongFile, lo: datetime,
                hi: datetime) -> list[tuple[datetime, datetime]] | None:
    """Time slices [from, to) of whole seconds covering [lo, hi] (the file's span), in time order,
    of about SLICE_ROWS rows each, when the Parquet file's row-group statistics say that reading
    the file once per slice reads at most SLICE_MAX_READ times its rows; else None (one sort of the
    whole file). Slices in order, each sorted, are the stored order: a sample's stored time (whole
    seconds) is in the slice its own time is."""
    if not source.time_type:
        return None
    groups = time_groups(con, source)
    rows = sum(g[0] for g in groups)
    count = -(-rows // SLICE_ROWS)
    if count <= 1:  # (also a file without statistics: no groups)
        return None
    # equal widths, whole hours from an hour up (a day of 5-minute samples is one slice), aligned
    # to multiples of the width since the epoch (UTC midnights for days)
    width = -(-(int((hi - lo).total_seconds()) + 1) // count)
    if width >= 3600:
        width = -(-width // 3600) * 3600
    if width >= DAY_SECONDS:
        # whole UTC days (rounded down: slices no bigger than asked), each written in the clustered
        # order of its days (write_staged) instead of being rewritten in it by store.cluster_usage
        width = width // DAY_SECONDS * DAY_SECONDS
    start = _EPOCH + timedelta(seconds=int((lo - _EPOCH).total_seconds()) // width * width)
    slices = []
    while start <= hi:
        slices.append((start, start + timedelta(seconds=width)))
        start += timedelta(seconds=width)
    read = sum(int(n) for a, b in slices for n, first, last in groups if first < b and last >= a)
    return slices if read <= SLICE_MAX_READ * rows else None
