"""Writing results out: frames as rich tables, CSV or JSON (CONTRACT.md output conventions),
report sections as text or JSON (capplan.render.report), the HTML page (capplan.render.html).

Renderers know nothing of analyses: they take frames and report sections.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import polars as pl

from capplan.render.cells import cell
from capplan.render.csv import to_csv
from capplan.render.json import to_json, to_records
from capplan.render.table import make_console, render_table

FORMATS = ("table", "csv", "json")

__all__ = ["FORMATS", "cell", "emit", "make_console", "render_table", "to_csv", "to_json", "to_records"]


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
