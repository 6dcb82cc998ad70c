"""The ingest gate: the one validation every path into the store passes (long-format CSV and
Parquet, sample folders, the collector), before anything is written.

Checks are polars expressions evaluated over whole frames (one pass computes every check's count);
Python only looks at rows when something is wrong, to name the first bad row and count them all.
A refusal is a BadInputError (exit 4) reading `FILE:LINE: column: reason (N bad rows)`, where LINE
is the line in a CSV file (the header is line 1), the 1-based row in a Parquet file, or the row of
the collected chunk.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from capplan.errors import BadInputError

# Samples stamped later than this past the wall clock are refused: one row in 2099 would otherwise
# become "the newest sample" every analysis window ends at. Ten minutes allow for clock skew
# between the cluster and the machine running capplan (issue 13).
FUTURE_TOLERANCE = timedelta(minutes=10)
# No container or node has more: the largest single machines sold (e.g. HPE Superdome Flex, 896
# cores) are an order of magnitude below; a value this high is a unit mistake (issue 13).
MAX_CPU_CORES = 10_000.0
# 1 PiB: 30x the largest memory of any machine sold (AWS u7inh-32tb, 32 TiB).
MAX_MEMORY_BYTES = float(2**50)
INT64_MAX = float(2**63 - 1)
INT32_MAX = float(2**31 - 1)
# A container's average CPU over a step may exceed its node's capacity a little: rate() over
# jittered scrapes extrapolates. Twice the capacity is never jitter; 1000x is millicores.
CPU_OVER_CAPACITY = 2.0
# A working set is resident memory, bounded by the node's; 10% slack for capacity reported in
# different units (GiB vs GB) by different exporters.
MEMORY_OVER_CAPACITY = 1.1

IDENTITY_COLUMNS = ("namespace", "pod", "container")
KIND_TEXT, KIND_TIME, KIND_FLOAT, KIND_INT, KIND_BOOL = "text", "time", "float", "int", "bool"


@dataclass(frozen=True)
class Origin:
    """Where a frame came from, for messages: the file (or source) name, and the column holding
    each row's line number (absent: the 1-based row of the frame)."""

    label: str
    line_column: str = "_line"
    # (stored name, name in the file) where the file names a column differently
    file_names: tuple[tuple[str, str], ...] = ()
    # False for frames that are no file (a collected chunk): a bad row is named by its
    # namespace/pod/container and time instead of a row number
    numbered: bool = True
    outcome: str = "nothing was imported"

    def column(self, name: str) -> str:
        return dict(self.file_names).get(name, name)


def store_origin(what: str) -> Origin:
    """A frame handed to a store writer without a file behind it (the collector's chunks)."""
    return Origin(what, numbered=False, outcome="this chunk was not written")


def now_utc() -> datetime:
    """The wall clock as a naive UTC datetime (the store's convention)."""
    return datetime.now(UTC).replace(tzinfo=None)


# --- one check = (column, bad-row expression, reason for a bad value) ---------------------------


@dataclass(frozen=True)
class Check:
    """One rule, written for both engines: `bad` over a polars frame, `sql` over DuckDB rows with
    the same column names (capplan.file_ingest checks files where they lie); `$ts_limit` in `sql`
    is the latest time allowed (now + FUTURE_TOLERANCE)."""

    column: str
    bad: pl.Expr
    reason: str  # formatted with {value}
    sql: str = ""


def _q(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def _number_checks(column: str, upper: float, unit: str) -> list[Check]:
    c = pl.col(column).cast(pl.Float64)
    q = f"CAST({_q(column)} AS DOUBLE)"
    return [
        Check(column, c.is_nan(), "{value} is not a number", f"isnan({q})"),
        Check(column, c.is_infinite(), "{value} is not finite", f"isinf({q})"),
        Check(column, c < 0, "{value} is negative", f"{q} < 0"),
        Check(column, c > upper, f"{{value}} is above {upper:g} {unit}, beyond any machine: a unit mix-up?",
              f"{q} > {float(upper)!r}"),
    ]


def _bounded(column: str) -> list[Check]:
    """Finite, non-negative and within physical bounds, by the unit the column's name carries."""
    if column.endswith("_cores"):
        return _number_checks(column, MAX_CPU_CORES, "cores")
    if column.endswith("_bytes"):
        return _number_checks(column, MAX_MEMORY_BYTES, "bytes")
    if column in ("restarts_total", "pods_capacity", "pods_allocatable", "replicas", "init_order", "max_surge_pods"):
        return _number_checks(column, INT32_MAX, "(int32)")
    return _number_checks(column, INT64_MAX, "(int64)")


def _text_present(column: str) -> Check:
    return Check(column, pl.col(column).is_null() | (pl.col(column).cast(pl.Utf8) == ""), "is empty",
                 f"({_q(column)} IS NULL OR CAST({_q(column)} AS VARCHAR) = '')")


def _time_checks(column: str, now: datetime) -> list[Check]:
    limit = now + FUTURE_TOLERANCE
    return [
        Check(column, pl.col(column).is_null(), "is missing", f"{_q(column)} IS NULL"),
        Check(column, pl.col(column) > limit,
              f"{{value}} is later than now + {int(FUTURE_TOLERANCE.total_seconds() // 60)} minutes "
              f"({limit:%Y-%m-%dT%H:%M:%SZ}): a clock or unit mistake?", f"{_q(column)} > $ts_limit"),
    ]


def ts_limit(now: datetime) -> datetime:
    """The latest sample time the gate accepts (the `$ts_limit` of the checks' SQL)."""
    return now + FUTURE_TOLERANCE


def _line_expr(frame: pl.DataFrame, origin: Origin) -> pl.Expr:
    if origin.line_column in frame.columns:
        return pl.col(origin.line_column)
    return pl.int_range(1, pl.len() + 1, dtype=pl.Int64)


def _show(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:g}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return repr(value) if isinstance(value, str) else str(value)


def run_checks(frame: pl.DataFrame, checks: list[Check], origin: Origin) -> None:
    """Raise BadInputError naming the first bad row (in line order) when any check fails."""
    checks = [c for c in checks if c.column in frame.columns]
    if frame.is_empty() or not checks:
        return
    counts = frame.select(
        [c.bad.fill_null(False).sum().alias(str(i)) for i, c in enumerate(checks)]
    ).row(0)
    if not any(counts):
        return
    failing = [c for c, n in zip(checks, counts, strict=True) if n]
    flags = [c.bad.fill_null(False).alias(f"_bad{i}") for i, c in enumerate(failing)]
    bad = frame.with_columns(_line_expr(frame, origin).alias("_gate_line"), *flags).filter(
        pl.any_horizontal([pl.col(f"_bad{i}") for i in range(len(failing))])
    )
    first = bad.sort("_gate_line").row(0, named=True)
    check = next(c for i, c in enumerate(failing) if first[f"_bad{i}"])
    raise_bad(origin, first["_gate_line"], check.column,
              check.reason.format(value=_show(first[check.column])), bad.height, first)


def _row_name(row: dict[str, Any]) -> str:
    parts = [str(row.get(c) or "") for c in ("namespace", "pod", "container") if c in row]
    when = row.get("ts") or row.get("valid_from")
    return "/".join(parts) + (f" at {_show(when)}" if when is not None else "")


def raise_bad(origin: Origin, line: int | None, column: str, reason: str, count: int,
              row: dict[str, Any] | None = None) -> None:
    if not origin.numbered and row is not None:
        where = f"{origin.label} ({_row_name(row)})"
    else:
        where = f"{origin.label}:{line}" if line is not None else origin.label
    rows = f" ({count:,} bad row{'s' if count != 1 else ''}; {origin.outcome})"
    raise BadInputError(f"{where}: {origin.column(column)}: {reason}{rows}")


# --- usage ----------------------------------------------------------------------------------------


def usage_checks(now: datetime | None = None) -> list[Check]:
    now = now or now_utc()
    return [
        *(_text_present(c) for c in IDENTITY_COLUMNS),
        *_time_checks("ts", now),
        *_bounded("cpu_cores"),
        *_bounded("memory_bytes"),
        *(check for c in ("cpu_request_cores", "cpu_limit_cores", "memory_request_bytes", "memory_limit_bytes")
          for check in _bounded(c)),
    ]


def check_usage(frame: pl.DataFrame, origin: Origin, *, now: datetime | None = None) -> None:
    """Usage rows: namespace/pod/container present, a timestamp not in the future, CPU and memory
    finite, non-negative and physically possible. Null CPU or memory (not measured) is allowed."""
    run_checks(frame, usage_checks(now), origin)


def check_against_capacity(usage: pl.DataFrame, capacity: pl.DataFrame, origin: Origin) -> None:
    """Usage above its node's capacity (capacity: node, cpu_capacity_cores, memory_capacity_bytes).

    Done per node first (one group-by); rows are only looked at when a node's maximum is over."""
    if usage.is_empty() or capacity.is_empty() or "node" not in usage.columns:
        return
    # the cheap test first: nothing above the smallest node's bounds (two column maxima)
    top = usage.select(pl.col("cpu_cores").max(), pl.col("memory_bytes").max()).row(0)
    smallest = capacity.select(pl.col("cpu_capacity_cores").min(), pl.col("memory_capacity_bytes").min()).row(0)
    if all(v is None or c is None or v <= c * f for v, c, f in
           zip(top, smallest, (CPU_OVER_CAPACITY, MEMORY_OVER_CAPACITY), strict=True)):
        return
    peaks = usage.group_by("node").agg(pl.col("cpu_cores").max().alias("_cpu"), pl.col("memory_bytes").max().alias("_mem"))
    over = peaks.join(capacity, on="node", how="inner").filter(
        (pl.col("_cpu") > pl.col("cpu_capacity_cores") * CPU_OVER_CAPACITY)
        | (pl.col("_mem") > pl.col("memory_capacity_bytes") * MEMORY_OVER_CAPACITY)
    )
    if over.is_empty():
        return
    rows = usage.with_columns(_line_expr(usage, origin).alias("_gate_line")).join(
        over.select("node", "cpu_capacity_cores", "memory_capacity_bytes"), on="node", how="inner"
    )
    cpu_bad = pl.col("cpu_cores") > pl.col("cpu_capacity_cores") * CPU_OVER_CAPACITY
    mem_bad = pl.col("memory_bytes") > pl.col("memory_capacity_bytes") * MEMORY_OVER_CAPACITY
    bad = rows.filter(cpu_bad.fill_null(False) | mem_bad.fill_null(False)).sort("_gate_line")
    first = bad.row(0, named=True)
    column, reason = capacity_reason(first)
    raise_bad(origin, first["_gate_line"], column, reason, bad.height, first)


# The same bound in SQL, over rows (cpu_cores, memory_bytes) joined with their node's capacity
# (cpu_capacity_cores, memory_capacity_bytes).
CAPACITY_SQL = (f"(cpu_cores > cpu_capacity_cores * {CPU_OVER_CAPACITY!r} "
                f"OR memory_bytes > memory_capacity_bytes * {MEMORY_OVER_CAPACITY!r})")


def capacity_reason(row: Mapping[str, Any]) -> tuple[str, str]:
    """(column, reason) for a row above its node's capacity (node, cpu_cores, memory_bytes and the
    node's cpu_capacity_cores, memory_capacity_bytes)."""
    cpu, cap = row["cpu_cores"], row["cpu_capacity_cores"]
    if cpu is not None and cap is not None and cpu > cap * CPU_OVER_CAPACITY:
        hint = ": millicores written as cores?" if cpu / 1000 <= cap * CPU_OVER_CAPACITY else ""
        return "cpu_cores", f"cpu_cores {_show(float(cpu))} on a {_show(float(cap))}-core node {row['node']}{hint}"
    mem, mcap = row["memory_bytes"], row["memory_capacity_bytes"]
    hint = ": KiB written as bytes?" if mem / 1024 <= mcap * MEMORY_OVER_CAPACITY else ""
    return "memory_bytes", f"memory_bytes {_show(float(mem))} above the {_show(float(mcap))}-byte node {row['node']}{hint}"


# --- spec tables and sample-folder files -----------------------------------------------------------

# Every column of every sample-folder file (data/samples/README.md) and what it must hold.
SAMPLE_COLUMNS: dict[str, dict[str, str]] = {
    "nodes": {"node": KIND_TEXT, "valid_from": KIND_TIME, "valid_to": KIND_TIME, "cpu_capacity_cores": KIND_FLOAT,
              "memory_capacity_bytes": KIND_INT, "pods_capacity": KIND_INT, "cpu_allocatable_cores": KIND_FLOAT,
              "memory_allocatable_bytes": KIND_INT, "pods_allocatable": KIND_INT, "labels": KIND_TEXT,
              "taints": KIND_TEXT},
    "pods": {"namespace": KIND_TEXT, "pod": KIND_TEXT, "valid_from": KIND_TIME, "valid_to": KIND_TIME,
             "node": KIND_TEXT, "owner_kind": KIND_TEXT, "owner_name": KIND_TEXT, "priority_class": KIND_TEXT,
             "qos_class": KIND_TEXT, "phase": KIND_TEXT, "overhead_cpu_cores": KIND_FLOAT,
             "overhead_memory_bytes": KIND_INT},
    "containers": {"namespace": KIND_TEXT, "pod": KIND_TEXT, "container": KIND_TEXT, "valid_from": KIND_TIME,
                   "valid_to": KIND_TIME, "init_container": KIND_BOOL, "restartable": KIND_BOOL,
                   "init_order": KIND_INT, "cpu_request_cores": KIND_FLOAT, "cpu_limit_cores": KIND_FLOAT,
                   "memory_request_bytes": KIND_INT, "memory_limit_bytes": KIND_INT},
    "owners": {"namespace": KIND_TEXT, "kind": KIND_TEXT, "name": KIND_TEXT, "valid_from": KIND_TIME,
               "valid_to": KIND_TIME, "owner_kind": KIND_TEXT, "owner_name": KIND_TEXT},
    "workloads": {"namespace": KIND_TEXT, "kind": KIND_TEXT, "name": KIND_TEXT, "valid_from": KIND_TIME,
                  "valid_to": KIND_TIME, "replicas": KIND_INT, "strategy": KIND_TEXT, "max_surge_pods": KIND_INT},
    "hpas": {"namespace": KIND_TEXT, "hpa": KIND_TEXT, "metric_name": KIND_TEXT, "valid_from": KIND_TIME,
             "valid_to": KIND_TIME, "target_kind": KIND_TEXT, "target_name": KIND_TEXT},
    "resource_quotas": {"namespace": KIND_TEXT, "quota": KIND_TEXT, "resource": KIND_TEXT, "valid_from": KIND_TIME,
                        "valid_to": KIND_TIME, "hard": KIND_FLOAT},
    "restarts": {"namespace": KIND_TEXT, "pod": KIND_TEXT, "container": KIND_TEXT, "ts": KIND_TIME,
                 "restarts_total": KIND_INT, "reason": KIND_TEXT},
    "usage": {"namespace": KIND_TEXT, "pod": KIND_TEXT, "container": KIND_TEXT, "node": KIND_TEXT, "ts": KIND_TIME,
              "cpu_cores": KIND_FLOAT, "memory_bytes": KIND_INT},
}
# Columns that may not be null (the rest are "unknown" when null).
SAMPLE_KEYS: dict[str, tuple[str, ...]] = {
    "nodes": ("node",), "pods": ("namespace", "pod"), "containers": ("namespace", "pod", "container"),
    "owners": ("namespace", "kind", "name"), "workloads": ("namespace", "kind", "name"),
    "hpas": ("namespace", "hpa"), "resource_quotas": ("namespace", "quota", "resource"),
    "restarts": ("namespace", "pod", "container"), "usage": IDENTITY_COLUMNS,
}


def _kind_ok(dtype: pl.DataType, kind: str) -> bool:
    if dtype == pl.Null:
        return True
    if kind == KIND_TEXT:
        return dtype in (pl.Utf8, pl.Categorical) or isinstance(dtype, pl.Enum)
    if kind == KIND_TIME:
        return isinstance(dtype, pl.Datetime)
    if kind == KIND_BOOL:
        return dtype == pl.Boolean
    if kind == KIND_INT:
        return dtype.is_integer() or dtype.is_float()  # whole numbers written as floats are fine
    return dtype.is_numeric()


def check_sample_file(table: str, frame: pl.DataFrame, origin: Origin, *, now: datetime | None = None) -> None:
    """A sample-folder file: every documented column present with the right type, then its values."""
    wanted = SAMPLE_COLUMNS[table]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise BadInputError(f"{origin.label}: {', '.join(missing)}: missing column(s) (data/samples/README.md "
                            f"lists what {table}.parquet holds; nothing was imported)")
    for column, kind in wanted.items():
        if not _kind_ok(frame.schema[column], kind):
            raise BadInputError(f"{origin.label}: {column}: is {frame.schema[column]}, expected {kind} "
                                f"(nothing was imported)")
    if table == "usage":
        check_usage(frame, origin, now=now)
    else:
        check_spec(table, frame, origin, now=now)


def check_spec(table: str, frame: pl.DataFrame, origin: Origin, *, now: datetime | None = None) -> None:
    """Spec intervals or restarts: keys present, times sane, numbers finite and in range, and a
    node's allocatable within its capacity."""
    now = now or now_utc()
    checks = [_text_present(k) for k in SAMPLE_KEYS.get(table, ())]
    if table == "restarts":
        checks += _time_checks("ts", now)
    else:
        checks += _time_checks("valid_from", now) + _time_checks("valid_to", now)
        if "valid_from" in frame.columns and "valid_to" in frame.columns:
            checks.append(Check("valid_to", pl.col("valid_to") < pl.col("valid_from"), "{value} is before valid_from"))
    for column in frame.columns:
        if column in ("hard",):
            checks += _number_checks(column, INT64_MAX, "")
        elif frame.schema[column].is_numeric() and not column.startswith("_"):
            checks += _bounded(column)
    if table == "nodes":
        for resource in ("cpu_allocatable_cores", "memory_allocatable_bytes", "pods_allocatable"):
            capacity = resource.replace("allocatable", "capacity")
            if resource in frame.columns and capacity in frame.columns:
                checks.append(Check(resource, pl.col(resource) > pl.col(capacity),
                                    f"{{value}} is above {capacity}"))
    run_checks(frame, checks, origin)


def capacity_of(frames: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
    """node -> largest capacity seen, from a staged nodes frame (empty when there is none)."""
    nodes = frames.get("nodes")
    if nodes is None or nodes.is_empty() or "cpu_capacity_cores" not in nodes.columns:
        return pl.DataFrame(schema={"node": pl.Utf8, "cpu_capacity_cores": pl.Float64, "memory_capacity_bytes": pl.Float64})
    return nodes.group_by("node").agg(
        pl.col("cpu_capacity_cores").cast(pl.Float64).max(),
        pl.col("memory_capacity_bytes").cast(pl.Float64).max(),
    )
