"""`capplan report`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from capplan.cli import app
from capplan.cli.common import (
    ClusterOption,
    DbOption,
    EndOption,
    NamespaceOption,
    NodeOption,
    OutputOption,
    WindowOption,
    check_format,
    end_option,
    fleet_run,
    handle_errors,
    one_cluster_scope,
    window_option,
)

if TYPE_CHECKING:
    from capplan.report.model import Section

REPORT_FORMATS = ("table", "json", "html")


@app.command()
@handle_errors
def report(
    db: DbOption = None,
    cluster: ClusterOption = None,
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
    from capplan.render.report import write_fleet_report, write_report
    from capplan.report import ReportOptions
    from capplan.report.compose import build_report_results
    from capplan.report.fleet import fleet_report

    check_format(fmt, REPORT_FORMATS)
    options = ReportOptions(window=window_option(window), namespaces=namespace or [], nodes=node or [], top=top)
    with store.open_db(db, read_only=True, end=end_option(end)) as con:
        if fmt == "html":
            # One page of charts is one cluster's. The charts read history beyond the sections'
            # tables: gather it while the database is open.
            from capplan.render.html import write_html
            from capplan.report.charts import build_page

            with one_cluster_scope(con, cluster, "report --format html"):
                write_html(build_page(con, options), output)
            return

        def one(c: Any) -> tuple[list[Section], tuple[float, float] | None]:
            sections, results = build_report_results(c, options)
            rec = results.recommendations
            savings = None if rec.is_empty() else (float(rec["cpu_savings_cores"].fill_null(0).sum()),
                                                   float(rec["memory_savings_gib"].fill_null(0).sum()) * 2**30)
            return sections, savings

        runs = fleet_run(con, cluster, one)
    if not runs.labelled:
        write_report(runs.results[0][1][0], fmt, output, full=full)
        return
    fleet = fleet_report([(name, r[0]) for name, r in runs.results], {name: r[1] for name, r in runs.results})
    write_fleet_report(fleet.fleet, fleet.clusters, fleet.merged, fmt, output, full=full)
