"""The report's rollout section and the sentences that explain rollout headroom."""

from __future__ import annotations

import polars as pl

from capplan.report.model import Section
from capplan.report.results import ReportResults


def rollout_note(table: pl.DataFrame) -> str:
    """Which Deployments cannot roll out now and which cannot go blue-green, then the reason of
    each blocked one, a line each."""
    stuck = table.filter(pl.col("can_roll").eq(False))  # null = unknown: not counted as stuck
    no_bg = table.filter(pl.col("can_blue_green").eq(False))
    def name(f: pl.DataFrame) -> str:
        return ", ".join(f"{r['namespace']}/{r['deployment']}" for r in f.iter_rows(named=True))
    parts = [f"cannot roll out now: {name(stuck)}" if stuck.height else "every Deployment can roll out now",
             f"cannot go blue-green: {name(no_bg)}" if no_bg.height else "every Deployment could go blue-green"]
    lines = ["; ".join(parts)]
    for r in table.filter(pl.col("blocked_by").is_not_null()).iter_rows(named=True):
        lines.append(f"{r['namespace']}/{r['deployment']}: {r['reason']}")
    return "\n".join(lines)


REPORT_COLUMNS = ["namespace", "deployment", "strategy", "replicas", "max_surge", "pod_cpu_request_cores",
                  "pod_memory_request_bytes", "rolling_extra_pods", "rolling_placeable_pods", "can_roll",
                  "blue_green_extra_pods", "blue_green_placeable_pods", "can_blue_green", "blocked_by"]


def rollout_sections(results: ReportResults) -> list[Section]:
    """The rollout section: Deployments that cannot roll first, then those that cannot go
    blue-green, at most `options.top` rows."""
    table, options = results.rollout, results.options
    shown = table.sort(pl.col("can_roll").fill_null(True), pl.col("can_blue_green").fill_null(True),
                       "namespace", "deployment").head(options.top)
    return [Section("rollout", "Rollout headroom", shown.select(REPORT_COLUMNS), rollout_note(table))]
