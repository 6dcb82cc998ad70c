"""The report's cluster summary and per-node table."""

from __future__ import annotations

from capplan import store
from capplan.analysis.nodes import cluster_summary
from capplan.report.model import Section
from capplan.report.results import ReportResults

NODE_COLUMNS = (
    "node", "cpu_allocatable_cores", "cpu_requests_cores", "cpu_limits_cores", "cpu_usage_p95_cores",
    "cpu_request_ratio", "memory_allocatable_bytes", "memory_requests_bytes", "memory_limits_bytes",
    "memory_usage_p95_bytes", "memory_request_ratio", "memory_physical_headroom_bytes", "pods",
    "memory_unlimited_containers", "reserved_ok",
)


def cluster_sections(results: ReportResults) -> list[Section]:
    """The cluster summary and the per-node table."""
    con, options = results.con, results.options
    table = results.nodes
    start, end = store.analysis_window(con, options.window)
    summary = cluster_summary(table)
    note = f"window {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC; {table.height} nodes"
    return [Section("cluster", "Cluster", summary, note), Section("nodes", "Nodes", table.select(NODE_COLUMNS))]
