"""The whole report over HTTP: `/api/v1/report` (JSON, as `capplan report --format json`) and
`/` or `/report.html` (the HTML report), from the report's public functions, cached per data
version."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from capplan import store
from capplan.analysis import fleet
from capplan.errors import UsageError
from capplan.render.html import render_html
from capplan.report import ReportOptions
from capplan.report.charts import build_page
from capplan.report.compose import build_report_results
from capplan.report.fleet import fleet_report
from capplan.serve.endpoints import CLUSTER, NAMESPACE, NODE, WINDOW, records
from capplan.serve.query import Param, canonical, parse_query
from capplan.serve.state import ServiceState

REPORT_PARAMS: tuple[Param, ...] = (
    WINDOW, NAMESPACE, NODE, Param("top", "integer", "Rows per top-N table.", 10), CLUSTER,
)


def report_options(state: ServiceState, query: Mapping[str, Sequence[str]]) -> tuple[ReportOptions, list[str]]:
    """The report's options and the clusters asked for, from the query (400 when invalid)."""
    parsed = parse_query(REPORT_PARAMS, query)
    if parsed["top"] < 1:
        raise UsageError("top must be at least 1")
    return ReportOptions(window=parsed["window"] or state.options.window, namespaces=parsed["namespace"],
                         nodes=parsed["node"], top=parsed["top"]), parsed["cluster"]


def report_json(state: ServiceState, query: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """Every section's records by key: one cluster's report, or with several stored the fleet
    table first and every row with its cluster (as `capplan report --format json`)."""
    options, clusters = report_options(state, query)

    def one(con: Any) -> tuple[list[Any], tuple[float, float] | None]:
        sections, results = build_report_results(con, options)
        rec = results.recommendations
        return sections, (None if rec.is_empty() else (float(rec["cpu_savings_cores"].fill_null(0).sum()),
                                                         float(rec["memory_savings_gib"].fill_null(0).sum()) * 2**30))

    def compute() -> dict[str, Any]:
        with state.database.reader() as con:
            runs = fleet.run(con, clusters or None, one)
        if runs.labelled:
            sections = fleet_report([(n, r[0]) for n, r in runs.results], {n: r[1] for n, r in runs.results}).merged
        else:
            sections = runs.results[0][1][0]
        # through JSON once, so dates and the like are the same strings the CLI prints
        return json.loads(json.dumps({s.key: records(s.frame) for s in sections}, default=str))

    return state.cached(("report", canonical(vars(options)), tuple(clusters)), compute)


def report_html(state: ServiceState, query: Mapping[str, Sequence[str]]) -> str:
    """The HTML report page of one cluster (`cluster=` names it when several are stored)."""
    options, clusters = report_options(state, query)

    def compute() -> str:
        with state.database.reader() as con:
            stored, chosen = fleet.select(con, clusters or None)
            if not stored:  # an empty database: the report says what is missing
                return render_html(build_page(con, options))
            if len(chosen) != 1:
                raise UsageError(f"the HTML report shows one cluster and the database holds {', '.join(stored)}: "
                                 "name it with ?cluster=")
            with store.scope(con, chosen[0]):
                return render_html(build_page(con, options))

    return state.cached(("html", canonical(vars(options)), tuple(clusters)), compute)
