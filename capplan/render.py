"""Rendering frames as rich tables, CSV or JSON (CONTRACT.md output conventions).

CSV: one header row, ',' separator, CPU in cores (float), memory in bytes (integer),
timestamps ISO 8601 UTC, unset values as empty cells. JSON: a list of objects with the same keys.
Tables: humanised units for reading on a terminal.
"""

from __future__ import annotations

import io
import json
import math
import sys
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import polars as pl

from capplan.quantity import format_bytes

FORMATS = ("table", "csv", "json")


def _csv_frame(frame: pl.DataFrame) -> pl.DataFrame:
    exprs = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if dtype == pl.Datetime or isinstance(dtype, pl.Datetime):
            exprs.append(col.dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias(name))
        elif dtype.is_float() and name.endswith("_bytes"):
            # whole bytes; an unbounded sum (a container without a limit) is written "inf"
            exprs.append(
                pl.when(col.is_infinite()).then(pl.lit("inf"))
                .otherwise(col.round(0).cast(pl.Int64, strict=False).cast(pl.Utf8)).alias(name)
            )
        elif isinstance(dtype, (pl.List, pl.Struct)):
            exprs.append(col.map_elements(lambda v: json.dumps(v, default=str), return_dtype=pl.Utf8).alias(name))
        else:
            exprs.append(col)
    return frame.select(exprs)


def to_csv(frame: pl.DataFrame) -> str:
    """CSV text of a frame by the CONTRACT conventions."""
    out = _csv_frame(frame)
    out = out.with_columns([pl.col(c).fill_nan(None) for c, t in out.schema.items() if t.is_float()])
    return out.write_csv(null_value="", float_precision=None)


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):  # DuckDB sums of BIGINT come back as DECIMAL
        value = float(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    return value


def to_records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts with JSON-safe values (bytes as integers, NaN as null)."""
    records = []
    for row in frame.iter_rows(named=True):
        record = {}
        for key, value in row.items():
            value = _json_value(value)
            if key.endswith("_bytes") and isinstance(value, float) and math.isfinite(value):
                value = int(round(value))
            record[key] = value
        records.append(record)
    return records


def to_json(frame: pl.DataFrame) -> str:
    """JSON text: a list of objects keyed like the CSV columns."""
    return json.dumps(to_records(frame), indent=1, default=str)


_NOT_BYTES = ("ratio", "share", "pct", "containers", "count", "points", "days", "probability", "rank", "pods")


def _is_bytes_column(name: str) -> bool:
    # CSV keeps bytes; a table shows 1.5Gi. Contract names like memory_request_current carry no
    # unit suffix, so any memory amount that is not a ratio or a count is bytes.
    if name.endswith("_bytes"):
        return True
    return name.startswith("memory") and not any(word in name for word in _NOT_BYTES)


def _cell(name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and math.isinf(value):
        return "unbounded" if value > 0 else "-unbounded"
    if _is_bytes_column(name) and isinstance(value, (int, float)):
        return format_bytes(value)
    if isinstance(value, float):
        if name.endswith("_ratio") or name.endswith("_share"):
            return f"{value:.2f}"
        return f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def make_console(file: TextIO | None = None):
    """A rich console: the terminal's width on a terminal; 200 columns into files and pipes,
    where rich would otherwise fold wide tables into 80."""
    from rich.console import Console

    if file is None and sys.stdout.isatty():
        return Console()
    return Console(file=file or sys.stdout, width=200)


def render_table(frame: pl.DataFrame, title: str | None = None, file: TextIO | None = None) -> None:
    """Print a frame as a rich table (humanised units, headers that wrap at word breaks)."""
    from rich.table import Table

    console = make_console(file)
    table = Table(title=title, show_lines=False, title_justify="left")
    for name, dtype in frame.schema.items():
        justify = "right" if dtype.is_numeric() else "left"
        # long free text (reason, advice) wraps in a bounded column instead of widening the table
        max_width = 60 if dtype == pl.Utf8 and name in ("reason", "advice", "note", "message") else None
        table.add_column(name.replace("_", " "), justify=justify, overflow="fold", max_width=max_width)
    for row in frame.iter_rows():
        table.add_row(*(_cell(n, v) for n, v in zip(frame.columns, row)))
    console.print(table)


def emit(frame: pl.DataFrame, fmt: str = "table", output: str | Path | None = None, title: str | None = None) -> None:
    """Write a frame in `fmt` to `output` (a path) or stdout."""
    if fmt == "csv":
        text = to_csv(frame)
    elif fmt == "json":
        text = to_json(frame) + "\n"
    else:
        buffer = io.StringIO()
        render_table(frame, title=title, file=buffer if output else None)
        if not output:
            return
        text = buffer.getvalue()
    if output and str(output) != "-":
        Path(output).write_text(text)
    else:
        sys.stdout.write(text)
