"""`capplan report`."""

from __future__ import annotations

from typing import Annotated

import typer

from capplan.cli import app
from capplan.cli.common import (
    DbOption, NamespaceOption, NodeOption, OutputOption, WindowOption, check_format,
    handle_errors, window_option,
)

REPORT_FORMATS = ("table", "json", "html")


@app.command()
@handle_errors
def report(
    db: DbOption = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, json or html (one self-contained page with charts).")] = "table",
    output: OutputOption = None,
    window: WindowOption = "14d",
    namespace: NamespaceOption = None,
    node: NodeOption = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Rows in the top-N sections.")] = 10,
) -> None:
    """The whole picture: cluster, nodes, eviction exposure, top recommendations, forecast.

    `--format html -o report.html` writes one self-contained page with charts."""
    from capplan import store
    from capplan.report import ReportOptions, build_report, write_report

    check_format(fmt, REPORT_FORMATS)
    options = ReportOptions(window=window_option(window), namespaces=namespace or [], nodes=node or [], top=top)
    con = store.open_db(db, read_only=True)
    try:
        sections = build_report(con, options)
        if fmt == "html":
            # The charts read history beyond the sections' tables, so the page is drawn here.
            from capplan.html_report import write_html

            write_html(con, options, output, sections)
            return
    finally:
        con.close()
    write_report(sections, fmt, output)
