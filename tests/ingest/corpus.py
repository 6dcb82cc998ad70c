"""The bad-input corpus of issue 13: every case is a function writing a bad file (or folder) next
to the expected exit code and the `FILE:LINE: column: reason` it must be refused with.

Long-format cases are written as CSV and as Parquet from the same rows; sample-folder cases are a
copy of the bundled sample with one file changed. Rows use real identities of the bundled sample
(pods on node-1, an 8-core node) and times inside its 14 days, so the physical bounds apply.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DIR = ROOT / "data" / "samples" / "cluster"
T0 = datetime(2026, 11, 10, 12, 0)
GIB = 2**30


def sample_identity() -> tuple[str, str, str, str]:
    """A container of the bundled sample that runs on node-1 (8 cores, 32 GiB)."""
    usage = pl.read_parquet(SAMPLE_DIR / "usage.parquet")
    row = usage.filter(pl.col("node") == "node-1").sort("namespace", "pod", "container").row(0, named=True)
    return row["namespace"], row["pod"], row["container"], row["node"]


def good_rows(n: int = 6, *, node: bool = True) -> list[dict]:
    """n well-formed long-format rows, 5 minutes apart, for a container on node-1."""
    ns, pod, container, node_name = sample_identity()
    rows = []
    for i in range(n):
        row = {"namespace": ns, "pod": pod, "container": container,
               "timestamp": (T0 + timedelta(minutes=5 * i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
               "cpu_cores": 0.25 + 0.01 * i, "memory_bytes": 300 * 2**20 + i}
        if node:
            row["node"] = node_name
        rows.append(row)
    return rows


@dataclass(frozen=True)
class LongCase:
    """Rows with one (or more) bad values; `line` is the 0-based row index of the first bad row."""

    name: str
    rows: Callable[[], list[dict]]
    row: int | None       # 0-based index of the first bad row (None: the header)
    column: str
    reason: str           # a regex the message must match after `column: `
    bad_rows: int = 1
    csv_only: bool = False


def _with(changes: dict[int, dict], n: int = 6, **kw) -> Callable[[], list[dict]]:
    def make() -> list[dict]:
        rows = good_rows(n, **kw)
        for i, change in changes.items():
            rows[i] = {**rows[i], **change}
        return rows
    return make


def _future(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


LONG_CASES = [
    LongCase("memory-1e19-last-row", _with({5: {"memory_bytes": 1e19}}), 5, "memory_bytes", r"1e\+19 is above"),
    LongCase("memory-1e30", _with({2: {"memory_bytes": 1e30}}), 2, "memory_bytes", r"1e\+30 is above"),
    LongCase("memory-9.3e18", _with({3: {"memory_bytes": 9.3e18}}), 3, "memory_bytes", r"9\.3e\+18 is above"),
    LongCase("memory-nan", _with({1: {"memory_bytes": math.nan}}), 1, "memory_bytes", "NaN is not a number"),
    LongCase("cpu-nan", _with({4: {"cpu_cores": math.nan}}), 4, "cpu_cores", "NaN is not a number"),
    LongCase("cpu-inf", _with({0: {"cpu_cores": math.inf}}), 0, "cpu_cores", "inf is not finite"),
    LongCase("cpu-negative", _with({2: {"cpu_cores": -0.5}, 4: {"cpu_cores": -1.0}}), 2, "cpu_cores", "-0.5 is negative",
             bad_rows=2),
    LongCase("memory-negative", _with({3: {"memory_bytes": -5}}), 3, "memory_bytes", "-5 is negative"),
    LongCase("cpu-above-10000-cores", _with({1: {"cpu_cores": 20_000.0}}, node=False), 1, "cpu_cores",
             "20000 is above 10000 cores"),
    LongCase("millicores-as-cores", _with({2: {"cpu_cores": 250.0}}), 2, "cpu_cores",
             "cpu_cores 250 on a 8-core node node-1: millicores written as cores"),
    LongCase("memory-above-node", _with({2: {"memory_bytes": 64 * GIB}}), 2, "memory_bytes",
             "above the .*-byte node node-1"),
    LongCase("timestamp-2099", _with({5: {"timestamp": "2099-01-01T00:00:00Z"}}), 5, "timestamp",
             "2099-01-01T00:00:00Z is later than now \\+ 10 minutes"),
    LongCase("timestamp-5-days-late", _with({5: {"timestamp": _future(5)}}), 5, "timestamp", "is later than now"),
    LongCase("timestamp-garbage", _with({3: {"timestamp": "yesterday"}}), 3, "timestamp", "'yesterday' is not an ISO 8601",
             csv_only=True),
    LongCase("quantity-garbage", _with({2: {"memory_bytes": "lots"}}), 2, "memory_bytes", "'lots' is not a number",
             csv_only=True),
    LongCase("empty-pod", _with({4: {"pod": ""}}), 4, "pod", "is empty"),
    LongCase("same-time-two-values", _with({1: {"timestamp": None}}), 1, "cpu_cores",
             r"conflicts with line \d+ \(0\.25\): the same container and time twice", bad_rows=2),
    LongCase("missing-column", lambda: [{k: v for k, v in r.items() if k != "memory_bytes"} for r in good_rows()],
             None, "memory_bytes", "missing required column"),
]


def _fix_duplicate(rows: list[dict], case: LongCase) -> list[dict]:
    if case.name == "same-time-two-values":  # row 1 at row 0's time with cpu 3.0 (row 0 has 0.25)
        rows[1] = {**rows[1], "timestamp": rows[0]["timestamp"], "cpu_cores": 3.0}
    return rows


def write_long(case: LongCase, folder: Path, fmt: str) -> Path:
    rows = _fix_duplicate(case.rows(), case)
    path = folder / f"{case.name}.{fmt}"
    if fmt == "csv":
        columns = list(rows[0])
        lines = [",".join(columns)]
        for r in rows:
            lines.append(",".join("" if r.get(c) is None else (repr(r[c]) if isinstance(r[c], float) else str(r[c]))
                                  for c in columns))
        path.write_text("\n".join(lines) + "\n")
    else:
        frame = pl.DataFrame(rows, infer_schema_length=None)
        frame = frame.with_columns(pl.col("timestamp").str.to_datetime(time_zone="UTC"))
        frame.write_parquet(path)
    return path


def expected_line(case: LongCase, fmt: str) -> int | None:
    """CSV: the header is line 1, so row i is line i + 2; Parquet: row i is row i + 1."""
    if case.row is None:
        return 1
    return case.row + (2 if fmt == "csv" else 1)


# --- sample folders -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FolderCase:
    name: str
    change: Callable[[Path], None]
    file: str
    row: int | None       # 1-based row of the first bad row in that file (None: no line)
    column: str
    reason: str


def _edit(file: str, edit: Callable[[pl.DataFrame], pl.DataFrame]) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        path = folder / file
        edit(pl.read_parquet(path)).write_parquet(path)
    return change


def _usage_row_of_node1(frame: pl.DataFrame) -> int:
    return int(frame.with_row_index().filter(pl.col("node") == "node-1")["index"][0])


def _set_usage(column: str, value: object) -> Callable[[pl.DataFrame], pl.DataFrame]:
    def edit(frame: pl.DataFrame) -> pl.DataFrame:
        i = _usage_row_of_node1(frame)
        return frame.with_columns(
            pl.when(pl.int_range(pl.len()) == i).then(pl.lit(value)).otherwise(pl.col(column)).cast(frame.schema[column])
            .alias(column))
    return edit


def usage_bad_row() -> int:
    return _usage_row_of_node1(pl.read_parquet(SAMPLE_DIR / "usage.parquet")) + 1


FOLDER_CASES = [
    FolderCase("usage-nan", _edit("usage.parquet", _set_usage("cpu_cores", math.nan)), "usage.parquet", -1,
               "cpu_cores", "NaN is not a number"),
    FolderCase("usage-negative", _edit("usage.parquet", _set_usage("memory_bytes", -1)), "usage.parquet", -1,
               "memory_bytes", "-1 is negative"),
    FolderCase("usage-millicores", _edit("usage.parquet", _set_usage("cpu_cores", 250.0)), "usage.parquet", -1,
               "cpu_cores", "millicores written as cores"),
    FolderCase("nodes-without-memory-allocatable", _edit("nodes.parquet", lambda f: f.drop("memory_allocatable_bytes")),
               "nodes.parquet", None, "memory_allocatable_bytes", "missing column"),
    FolderCase("nodes-memory-allocatable-as-text",
               _edit("nodes.parquet", lambda f: f.with_columns(pl.col("memory_allocatable_bytes").cast(pl.Utf8))),
               "nodes.parquet", None, "memory_allocatable_bytes", "is String, expected int"),
    FolderCase("nodes-allocatable-above-capacity",
               _edit("nodes.parquet", lambda f: f.with_columns(
                   pl.when(pl.int_range(pl.len()) == 2).then(pl.col("cpu_capacity_cores") * 2)
                   .otherwise(pl.col("cpu_allocatable_cores")).alias("cpu_allocatable_cores"))),
               "nodes.parquet", 3, "cpu_allocatable_cores", "is above cpu_capacity_cores"),
    FolderCase("restarts-in-2099",
               _edit("restarts.parquet", lambda f: f.with_columns(
                   pl.when(pl.int_range(pl.len()) == 1).then(pl.lit(datetime(2099, 1, 1))).otherwise(pl.col("ts"))
                   .alias("ts"))),
               "restarts.parquet", 2, "ts", "later than now"),
    FolderCase("quota-hard-negative",
               _edit("resource_quotas.parquet", lambda f: f.with_columns(hard=-pl.col("hard"))),
               "resource_quotas.parquet", 1, "hard", "is negative"),
    FolderCase("meta-not-json", lambda folder: (folder / "meta.json").write_text("{ not json"),
               "meta.json", 1, "", "not valid JSON"),
]


def write_folder(case: FolderCase, root: Path) -> Path:
    folder = root / case.name
    shutil.copytree(SAMPLE_DIR, folder)
    case.change(folder)
    return folder


def folder_expected_row(case: FolderCase) -> int | None:
    return usage_bad_row() if case.row == -1 else case.row


def sample_meta() -> dict:
    return json.loads((SAMPLE_DIR / "meta.json").read_text())
