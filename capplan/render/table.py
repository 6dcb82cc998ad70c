"""Tables for reading on a terminal (rich), in humanised units."""

from __future__ import annotations

import sys
from typing import TextIO

import polars as pl

from capplan.render.cells import cell


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
        table.add_row(*(cell(n, v) for n, v in zip(frame.columns, row)))
    console.print(table)
