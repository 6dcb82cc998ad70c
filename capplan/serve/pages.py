"""The whole report over HTTP: `/api/v1/report` (JSON, as `capplan report --format json`) and
`/` or `/report.html` (the HTML report), from the report's public functions, cached per data
version."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from capplan.errors import UsageError
from capplan.render.html import render_html
from capplan.report import ReportOptions
from capplan.report.charts import build_page
from capplan.report.compose import build_report
from capplan.serve.endpoints import NAMESPACE, NODE, WINDOW, records
from capplan.serve.query import Param, canonical, parse_query
from capplan.serve.state import ServiceState

REPORT_PARAMS: tuple[Param, ...] = (
    WINDOW, NAMESPACE, NODE, Param("top", "integer", "Rows per top-N table.", 10),
)


def report_options(state: ServiceState, query: Mapping[str, Sequence[str]]) -> ReportOptions:
    """The report's options from the query (400 when invalid)."""
    parsed = parse_query(REPORT_PARAMS, query)
    if parsed["top"] < 1:
        raise UsageError("top must be at least 1")
    return ReportOptions(window=parsed["window"] or state.options.window, namespaces=parsed["namespace"],
                         nodes=parsed["node"], top=parsed["top"])


def report_json(state: ServiceState, query: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """Every section's records by key."""
    options = report_options(state, query)

    def compute() -> dict[str, Any]:
        with state.database.reader() as con:
            sections = build_report(con, options)
        # through JSON once, so dates and the like are the same strings the CLI prints
        return json.loads(json.dumps({s.key: records(s.frame) for s in sections}, default=str))

    return state.cached(("report", canonical(vars(options))), compute)


def report_html(state: ServiceState, query: Mapping[str, Sequence[str]]) -> str:
    """The HTML report page."""
    options = report_options(state, query)

    def compute() -> str:
        with state.database.reader() as con:
            return render_html(build_page(con, options))

    return state.cached(("html", canonical(vars(options))), compute)
