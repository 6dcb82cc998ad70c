"""The report's one-screen summary: a line per question, each answered with its number."""

from __future__ import annotations

import polars as pl

from capplan import store
from capplan.analysis.n_minus_1 import n_minus_1
from capplan.analysis.nodes import cluster_summary
from capplan.analysis.snapshot import node_state
from capplan.quantity import format_bytes
from capplan.report.model import Section
from capplan.report.results import ReportResults


def _pct(value: float | None) -> str:
    if value is None or value != value:
        return "?"
    if value == float("inf"):
        return "unbounded"
    return f"{value * 100:.0f}%"


def summary_section(results: ReportResults) -> list[Section]:
    """item / value rows: the window, nodes and their use, N-1, eviction, savings, forecast, rollouts."""
    con, options = results.con, results.options
    rows: list[tuple[str, str]] = []
    start, end = store.analysis_window(con, options.window)
    nodes = results.nodes
    rows.append(("window", f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"))
    by = {r["resource"]: r for r in cluster_summary(nodes).iter_rows(named=True)}
    for resource in ("cpu", "memory"):
        r = by.get(resource)
        if r:
            rows.append((f"{resource} requested / used (p95)",
                         f"{_pct(r['request_ratio'])} / {_pct(r['usage_ratio'])} of allocatable, limits {_pct(r['limit_ratio'])}"))
    current, pods = results.node_inputs.nodes, results.node_inputs.pods
    if not current.is_empty():
        n1 = n_minus_1(node_state(current, pods), pods)
        short = [r["resource"] for r in n1.iter_rows(named=True) if not r["holds"]]
        rows.append(("losing the largest node (N-1)",
                     f"requests still fit ({nodes.height} nodes)" if not short
                     else f"{', '.join(short)} requests no longer fit ({nodes.height} nodes)"))
    ev = results.eviction
    if ev is not None:
        under = ev.nodes.filter(pl.col("under_pressure"))
        ooms = int(ev.pods["oom_kills"].fill_null(0).sum()) if "oom_kills" in ev.pods.columns else 0
        rows.append(("memory pressure", f"{under.height} of {ev.nodes.height} nodes past eviction; {ooms} OOM kills"))
    rec = results.recommendations
    if not rec.is_empty():
        cpu = float(rec["cpu_savings_cores"].fill_null(0).sum())
        mem = float(rec["memory_savings_gib"].fill_null(0).sum())
        def verb(v):
            return "frees" if v >= 0 else "adds"
        rows.append(("right-sizing every container",
                     f"{verb(cpu)} {abs(cpu):.2f} cores and {verb(mem)} {format_bytes(abs(mem) * 2**30)} of requests"))
    fc = results.forecast
    soon = fc.filter(pl.col("days_to_exhaustion").is_not_null())
    rows.append(("running out within the horizon", f"{soon['scope'].n_unique()} scopes"
                 + (f", soonest {soon.sort('days_to_exhaustion').row(0, named=True)['scope']} in "
                    f"{soon.select(pl.col('days_to_exhaustion').min()).item():.0f} days" if soon.height else "")))
    ro = results.rollout
    stuck = ro.filter(pl.col("can_roll").eq(False)).height
    rows.append(("rollouts", f"{stuck} of {ro.height} Deployments cannot roll out now"))
    frame = pl.DataFrame({"item": [r[0] for r in rows], "value": [r[1] for r in rows]}, schema={"item": pl.Utf8, "value": pl.Utf8})
    return [Section("summary", "Summary", frame)]
