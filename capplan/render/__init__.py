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
from capplan.render.table import make_console, render_table, terminal_width

FORMATS = ("table", "csv", "json")

__all__ = ["FORMATS", "cell", "emit", "make_console", "note", "render_table", "to_csv", "to_json", "to_records"]


def emit(frame: pl.DataFrame, fmt: str = "table", output: str | Path | None = None, title: str | None = None) -> None:
    """Write a frame in `fmt` to `output` (a path) or stdout. A table with `output` "wide"
    (`-o wide`) shows every column, uncut, on stdout (`-o ./wide` writes a file of that name)."""
    wide = fmt == "table" and output is not None and str(output) == "wide"
    if wide:
        output = None
    if fmt == "csv":
        text = to_csv(frame)
    elif fmt == "json":
        text = to_json(frame) + "\n"
    else:
        buffer = io.StringIO()
        render_table(frame, title=title, file=buffer if output else None, wide=wide)
        if not output:
            return
        text = buffer.getvalue()
    if output and str(output) != "-":
        Path(output).write_text(text)
    else:
        sys.stdout.write(text)


def note(text: str) -> None:
    """Print an explanation under a table, each paragraph wrapped at the terminal's width."""
    import textwrap

    width = terminal_width()
    for paragraph in text.splitlines():
        sys.stdout.write((textwrap.fill(paragraph, width=width, break_on_hyphens=False) if paragraph else "") + "\n")
