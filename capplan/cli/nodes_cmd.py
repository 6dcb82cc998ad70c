"""`capplan nodes`, `capplan namespaces`, `capplan fit`."""

from __future__ import annotations

from capplan import render, store
from capplan.analysis.nodes import nodes_report
from capplan.cli import app
from capplan.cli.common import (
    DbOption, FormatOption, NodeOption, OutputOption, WindowOption, check_format, handle_errors,
    not_built, window_option,
)


@app.command()
@handle_errors
def nodes(
    db: DbOption = None,
    fmt: FormatOption = "table",
    output: OutputOption = None,
    window: WindowOption = "14d",
    node: NodeOption = None,
) -> None:
    """Per-node overcommit and headroom: requests, limits and usage against allocatable."""
    check_format(fmt)
    con = store.open_db(db, read_only=True)
    try:
        table = nodes_report(con, window_option(window), node)
    finally:
        con.close()
    render.emit(table, fmt, output, title="Nodes")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def namespaces() -> None:
    """Not built yet (issue 4)."""
    not_built("namespaces", 4)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def fit() -> None:
    """Not built yet (issue 4)."""
    not_built("fit", 4)
