"""Report sections as text (a rule, the table and its note per section) or as one JSON object."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

from capplan.errors import UsageError
from capplan.render.json import to_records
from capplan.render.table import make_console, render_table
from capplan.report.model import Section


def report_json(sections: list[Section]) -> str:
    """The report as one JSON object: section key -> list of rows (CSV column keys)."""
    return json.dumps({s.key: to_records(s.frame) for s in sections}, indent=1, default=str)


def write_report(sections: list[Section], fmt: str = "table", output: str | Path | None = None) -> None:
    """Render the report as tables or JSON to `output` or stdout (HTML: capplan.render.html)."""
    if fmt == "html":
        raise UsageError("the HTML report is drawn by capplan.render.html.write_html(report_page, output)")
    if fmt == "json":
        text = report_json(sections) + "\n"
        if output:
            Path(output).write_text(text)
        else:
            print(text, end="")
        return
    buffer = io.StringIO() if output else None
    console = make_console(buffer)
    for section in sections:
        console.rule(f"[bold]{section.title}")
        render_table(section.frame, file=buffer if buffer else sys.stdout)
        if section.note:
            console.print(section.note)
    if buffer is not None and output:
        Path(output).write_text(buffer.getvalue())
