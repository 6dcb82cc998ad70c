"""Report sections as text or as one JSON object.

Text opens with "Act on these" (one line per finding: rank, what, and the command with the
detail) and the one-screen summary; the full sections follow with `full` (JSON always has all)."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from capplan.errors import UsageError
from capplan.render.json import to_records
from capplan.render.table import cut_middle, make_console, render_table
from capplan.report.model import Section

SEVERITY_STYLES = {"high": "bold red", "medium": "yellow", "low": "green"}
OPENING = ("actions", "summary")


def report_json(sections: list[Section]) -> str:
    """The report as one JSON object: section key -> list of rows (CSV column keys)."""
    return json.dumps({s.key: to_records(s.frame) for s in sections}, indent=1, default=str)


def _actions(console: Any, section: Section) -> None:
    from rich.text import Text

    console.rule(Text(section.title, style="bold"), align="left")
    if section.frame.is_empty():
        console.print(section.note)
        return
    width = console.width
    rows = section.frame.to_dicts()
    number = len(str(len(rows)))
    for r in rows:
        prefix = f"{r['rank']:>{number}}. "
        command = r["command"]
        room = width - len(prefix) - len(command) - 2
        finding = r["finding"]
        if room < 20:  # too narrow for both on one line: the finding alone, cut to fit
            command, room = "", width - len(prefix)
        line = Text(prefix)
        line.append(cut_middle(finding, room).ljust(room if command else 0),
                    style=SEVERITY_STYLES.get(r["severity"], ""))
        if command:
            line.append("  ")
            line.append(command, style="cyan")
        console.print(line, no_wrap=True, overflow="ellipsis")


def _summary(console: Any, section: Section) -> None:
    from rich.text import Text

    console.rule(Text(section.title, style="bold"), align="left")
    rows = section.frame.to_dicts()
    key_width = max(len(r["item"]) for r in rows) if rows else 0
    for r in rows:
        line = Text(f"{r['item']:<{key_width}}  ", style="bold")
        line.append(cut_middle(r["value"], max(console.width - key_width - 2, 10)))
        console.print(line, no_wrap=True, overflow="ellipsis")


def write_report(sections: list[Section], fmt: str = "table", output: str | Path | None = None,
                 full: bool = False) -> None:
    """Render the report as text or JSON to `output` or stdout (HTML: capplan.render.html).
    `output` "wide" (`-o wide`) draws every table with all its columns to stdout."""
    if fmt == "html":
        raise UsageError("the HTML report is drawn by capplan.render.html.write_html(report_page, output)")
    if fmt == "json":
        text = report_json(sections) + "\n"
        if output:
            Path(output).write_text(text)
        else:
            sys.stdout.write(text)
        return
    with _text_output(output) as (console, buffer, wide):
        _write_text(console, buffer, sections, full, wide)


def write_fleet_report(fleet: Section, clusters: list[tuple[str, list[Section]]], merged: list[Section],
                       fmt: str = "table", output: str | Path | None = None, full: bool = False) -> None:
    """The report of several clusters: JSON is one object keyed by section (`fleet` first, every
    row with its cluster); text is the fleet table, then each cluster's report under its name."""
    if fmt != "table":
        write_report(merged, fmt, output, full)
        return
    from rich.text import Text

    with _text_output(output) as (console, buffer, wide):
        console.rule(Text(fleet.title, style="bold"), align="left")
        render_table(fleet.frame, file=buffer, wide=wide)
        for line in fleet.note.splitlines():
            console.print(line, overflow="fold", style="dim")
        for name, sections in clusters:
            console.print()
            console.rule(Text(f"Cluster {name}", style="bold reverse"), align="left")
            _write_text(console, buffer, sections, full, wide, closing=False)
        if not full:
            console.print()
            console.print("Every section: capplan report --full (or -f json).", style="dim")


@contextmanager
def _text_output(output: str | Path | None) -> Iterator[tuple[Any, io.StringIO | None, bool]]:
    """The console a text report is drawn on: the terminal, or a buffer written to `output` at
    the end; `output="wide"` is the terminal without cutting columns to its width."""
    wide = output is not None and str(output) == "wide"
    target = None if wide else output
    buffer = io.StringIO() if target else None
    yield make_console(buffer), buffer, wide
    if buffer is not None and target:
        Path(target).write_text(buffer.getvalue())


def _write_text(console: Any, buffer: io.StringIO | None, sections: list[Section], full: bool, wide: bool,
                closing: bool = True) -> None:
    for section in sections:
        if section.key == "actions":
            _actions(console, section)
        elif section.key == "summary":
            _summary(console, section)
        elif full:
            from rich.text import Text

            console.print()
            console.rule(Text(section.title, style="bold"), align="left")
            render_table(section.frame, file=buffer, wide=wide)
            if section.note:
                for line in section.note.splitlines():
                    console.print(line, overflow="fold")
    if not full and closing:
        console.print()
        console.print("Every section: capplan report --full (or -f html -o report.html, -f json).", style="dim")
