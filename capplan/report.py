"""`capplan report`: the whole picture, assembled from each analysis' report section.

Each analysis module offers `report_section(con, options) -> list[Section]`; the report lists
them in a fixed order. A module that is not there (yet) is skipped.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl

from capplan import render, store
from capplan.analysis.nodes import cluster_summary, nodes_report


@dataclass
class ReportOptions:
    """Options every report section may use."""

    window: timedelta = timedelta(days=14)
    namespaces: list[str] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)
    top: int = 10


@dataclass
class Section:
    """One titled table of the report, with an optional explanation under it."""

    key: str
    title: str
    frame: pl.DataFrame
    note: str = ""


def report_section(con: duckdb.DuckDBPyConnection, options: ReportOptions) -> list[Section]:
    """The cluster summary and the per-node table."""
    table = nodes_report(con, options.window, options.nodes or None)
    start, end = store.analysis_window(con, options.window)
    summary = cluster_summary(table)
    per_node = table.select(
        "node", "cpu_allocatable_cores", "cpu_requests_cores", "cpu_limits_cores", "cpu_usage_p95_cores",
        "cpu_request_ratio", "memory_allocatable_bytes", "memory_requests_bytes", "memory_limits_bytes",
        "memory_usage_p95_bytes", "memory_request_ratio", "memory_physical_headroom_bytes", "pods",
        "memory_unlimited_containers", "reserved_ok",
    )
    note = f"window {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC; {table.height} nodes"
    return [Section("cluster", "Cluster", summary, note), Section("nodes", "Nodes", per_node)]


# (module, attribute) of each section provider, in report order.
SECTION_PROVIDERS: tuple[tuple[str, str], ...] = (
    ("capplan.report", "report_section"),
    ("capplan.analysis.overcommit", "report_section"),
    ("capplan.analysis.eviction", "report_section"),
    ("capplan.analysis.recommend", "report_section"),
    ("capplan.analysis.forecast", "report_section"),
    ("capplan.analysis.rollout", "report_section"),
)


def build_report(con: duckdb.DuckDBPyConnection, options: ReportOptions | None = None) -> list[Section]:
    """All sections of the report, in order."""
    options = options or ReportOptions()
    store.sample_range(con)  # NoDataError on an empty database
    sections: list[Section] = []
    for module_name, attr in SECTION_PROVIDERS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        provider = getattr(module, attr, None)
        if provider is not None:
            sections.extend(provider(con, options))
    return sections


def report_json(sections: list[Section]) -> str:
    """The report as one JSON object: section key -> list of rows (CSV column keys)."""
    return json.dumps({s.key: render.to_records(s.frame) for s in sections}, indent=1, default=str)


def write_report(sections: list[Section], fmt: str = "table", output: str | Path | None = None) -> None:
    """Render the report as tables or JSON to `output` or stdout (HTML: capplan.html_report.write_html,
    which also reads the history its charts draw)."""
    if fmt == "html":
        from capplan.errors import UsageError

        raise UsageError("the HTML report needs the database: call capplan.html_report.write_html(con, options, output)")
    if fmt == "json":
        text = report_json(sections) + "\n"
        if output:
            Path(output).write_text(text)
        else:
            print(text, end="")
        return
    import io
    import sys

    buffer = io.StringIO() if output else None
    console = render.make_console(buffer)
    for section in sections:
        console.rule(f"[bold]{section.title}")
        render.render_table(section.frame, file=buffer if buffer else sys.stdout)
        if section.note:
            console.print(section.note)
    if buffer is not None:
        Path(output).write_text(buffer.getvalue())
