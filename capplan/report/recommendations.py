"""The report's recommendations section: the top rows by severity and savings."""

from __future__ import annotations

import polars as pl

from capplan.analysis.recommend import CONTRACT_COLUMNS, SEVERITY_ORDER
from capplan.analysis.strategies import DEFAULT_STRATEGY
from capplan.report.model import Section
from capplan.report.results import ReportResults


def recommendation_sections(results: ReportResults) -> list[Section]:
    """The report's recommendations: the top rows by severity and savings (default strategy)."""
    frame, options = results.recommendations, results.options
    ranked = frame.with_columns(
        pl.col("severity").replace_strict(SEVERITY_ORDER, return_dtype=pl.Int32).alias("_rank"),
        (pl.col("cpu_savings_cores").abs().fill_null(0) + pl.col("memory_savings_gib").abs().fill_null(0)).alias("_size"),
    ).sort(["_rank", "_size"], descending=True).drop("_rank", "_size")
    top = ranked.head(options.top).select(CONTRACT_COLUMNS + ["cpu_savings_cores", "memory_savings_gib"])
    saved_cpu = frame["cpu_savings_cores"].fill_null(0).sum()
    saved_mem = frame["memory_savings_gib"].fill_null(0).sum()
    def change(amount: float, unit: str) -> str:  # a negative saving adds requests: say so
        return f"{'free' if amount >= 0 else 'add'} {abs(amount):.2f} {unit}"

    note = (f"strategy {DEFAULT_STRATEGY}; {frame.height} workload containers, top {top.height} shown; "
            f"applying all would {change(saved_cpu, 'cores')} and {change(saved_mem, 'GiB')} of requests")
    return [Section("recommendations", "Recommendations", top, note)]
