"""The report: every section, in order, from one explicit list of section builders."""

from __future__ import annotations

from collections.abc import Callable

import duckdb

from capplan import store
from capplan.report.actions import actions_section
from capplan.report.capacity import capacity_sections
from capplan.report.cluster import cluster_sections
from capplan.report.eviction import eviction_sections
from capplan.report.forecast import forecast_sections
from capplan.report.model import ReportOptions, Section
from capplan.report.recommendations import recommendation_sections
from capplan.report.results import ReportResults
from capplan.report.rollout import rollout_sections
from capplan.report.summary import summary_section
from capplan.report.whatif import whatif_sections

SectionBuilder = Callable[[ReportResults], list[Section]]

# Every group of sections, in report order. A builder returns [] when its analysis has nothing
# to say about this store (e.g. eviction without usage samples); it never goes missing silently.
# "actions" and "summary" open the report; the terminal shows the rest with --full.
SECTION_BUILDERS: tuple[SectionBuilder, ...] = (
    actions_section,
    summary_section,
    cluster_sections,
    capacity_sections,
    eviction_sections,
    recommendation_sections,
    whatif_sections,
    forecast_sections,
    rollout_sections,
)


def build_report(con: duckdb.DuckDBPyConnection, options: ReportOptions | None = None) -> list[Section]:
    """All sections of the report, in order."""
    return build_report_results(con, options)[0]


def build_report_results(con: duckdb.DuckDBPyConnection,
                         options: ReportOptions | None = None) -> tuple[list[Section], ReportResults]:
    """All sections of the report, and the analyses' results they were drawn from (the fleet
    summary reads its savings there)."""
    options = options or ReportOptions()
    store.sample_range(con)  # NoDataError on an empty database
    results = ReportResults(con, options)
    results.compute_all()  # the analyses in the order that keeps the peak memory lowest
    sections: list[Section] = []
    for builder in SECTION_BUILDERS:
        sections.extend(builder(results))
    return sections, results
