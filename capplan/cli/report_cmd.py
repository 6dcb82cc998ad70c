"""`capplan report`."""

from __future__ import annotations

from typing import Annotated

import typer

from capplan import store
from capplan.cli import app
from capplan.cli.common import (
    DbOption, FormatOption, NamespaceOption, NodeOption, OutputOption, WindowOption, check_format,
    handle_errors, window_option,
)
from capplan.report import ReportOptions, build_report, write_report

REPORT_FORMATS = ("table", "json")


@app.command()
@handle_errors
def report(
    db: DbOption = None,
    fmt: FormatOption = "table",
    output: OutputOption = None,
    window: WindowOption = "14d",
    namespace: NamespaceOption = None,
    node: NodeOption = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Rows in the top-N sections.")] = 10,
) -> None:
    """The whole picture: cluster, nodes, eviction exposure, top recommendations, forecast."""
    check_format(fmt, REPORT_FORMATS)
    options = ReportOptions(window=window_option(window), namespaces=namespace or [], nodes=node or [], top=top)
    con = store.open_db(db, read_only=True)
    try:
        sections = build_report(con, options)
    finally:
        con.close()
    write_report(sections, fmt, output)
