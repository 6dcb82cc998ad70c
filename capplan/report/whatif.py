"""The report's "Nodes you could give back" section and the sentence that explains a what-if."""

from __future__ import annotations

import polars as pl

from capplan.analysis.whatif import WHATIF_COLUMNS, WhatIfResult
from capplan.report.model import Section
from capplan.report.results import ReportResults


def whatif_note(result: WhatIfResult) -> str:
    """One paragraph: what was applied, what could go, and whether it holds."""
    total = result.pools.filter(pl.col("pool") == "TOTAL").row(0, named=True)
    parts = [f"with {result.apply} requests, {total['nodes_removable']} of {total['nodes_now']} nodes could be "
             f"drained ({total['removable_nodes'] or 'none'})"]
    if total["n_minus_1_holds"] is False:
        already = " (it already would today)" if total["n_minus_1_holds_now"] is False else ""
        parts.append(f"after that, losing the largest remaining node would strand pods{already}")
    if total["overfull_nodes"]:
        parts.append(f"{total['overfull_nodes']} node(s) cannot hold their pods' new requests even after moving "
                     "pods: more capacity is needed there")
    if total["pressure_ok"] is False:
        parts.append("the pods placed together would have exceeded a node's allocatable memory at their peak")
    if total["monthly_savings"] is not None:
        parts.append(f"saving {total['monthly_savings']:,.0f} per month")
    return "; ".join(parts) + ". " + " ".join(result.notes)


def whatif_sections(results: ReportResults) -> list[Section]:
    """Consolidation after right-sizing with the default strategy, one row per pool and TOTAL."""
    result = results.whatif
    shown = result.pools.select(WHATIF_COLUMNS + ["removable_nodes"])
    return [Section("whatif", "Nodes you could give back", shown, whatif_note(result))]
