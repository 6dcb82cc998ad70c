"""`capplan report`."""

from __future__ import annotations

from typing import Annotated

import typer

from capplan.cli import app
from capplan.cli.common import (
    DbOption,
    EndOption,
    NamespaceOption,
    NodeOption,
    OutputOption,
    WindowOption,
    check_format,
    end_option,
    handle_errors,
    window_option,
)

REPORT_FORMATS = ("table", "json", "html")


@app.command()
@handle_errors
def report(
    db: DbOption = None,
    end: EndOption = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, json or html (one self-contained page with charts).")] = "table",
    output: OutputOption = None,
    window: WindowOption = "14d",
    namespace: NamespaceOption = None,
    node: NodeOption = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Rows in the top-N sections.")] = 10,
    full: Annotated[bool, typer.Option("--full", help="Every section after the act-first list and the summary (html and json always have all).")] = False,
) -> None:
    """The whole picture: cluster, nodes, eviction exposure, top recommendations, forecast.

    `--format html -o report.html` writes one self-contained page with charts."""
    from capplan import store
    from capplan.render.report import write_report
    from capplan.report import ReportOptions
    from capplan.report.compose import build_report

    check_format(fmt, REPORT_FORMATS)
    options = ReportOptions(window=window_option(window), namespaces=namespace or [], nodes=node or [], top=top)
    con = store.open_db(db, read_only=True, end=end_option(end))
    try:
        sections = build_report(con, options)
        if fmt == "html":
            # The charts read history beyond the sections' tables: gather it while the database is open.
            from capplan.render.html import write_html
            from capplan.report.charts import build_page

            write_html(build_page(con, options, sections), output)
            return
    finally:
        con.close()
    write_report(sections, fmt, output, full=full)
