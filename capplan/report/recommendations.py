"""The report's recommendations section: the top rows by severity and savings."""

from __future__ import annotations

import duckdb
import polars as pl

from capplan.analysis.recommend import CONTRACT_COLUMNS, SEVERITY_ORDER, recommend
from capplan.analysis.strategies import DEFAULT_STRATEGY
from capplan.report.model import ReportOptions, Section


def recommendation_sections(con: duckdb.DuckDBPyConnection, options: ReportOptions) -> list[Section]:
    """The report's recommendations: the top rows by severity and savings (default strategy)."""
    frame = recommend(con, DEFAULT_STRATEGY, options.window, options.namespaces or None)
    ranked = frame.with_columns(
        pl.col("severity").replace_strict(SEVERITY_ORDER, return_dtype=pl.Int32).alias("_rank"),
        (pl.col("cpu_savings_cores").abs().fill_null(0) + pl.col("memory_savings_gib").abs().fill_null(0)).alias("_size"),
    ).sort(["_rank", "_size"], descending=True).drop("_rank", "_size")
    top = ranked.head(options.top).select(CONTRACT_COLUMNS + ["cpu_savings_cores", "memory_savings_gib"])
    saved_cpu = frame["cpu_savings_cores"].fill_null(0).sum()
    saved_mem = frame["memory_savings_gib"].fill_null(0).sum()
    note = (f"strategy {DEFAULT_STRATEGY}; {frame.height} workload containers, top {top.height} shown; "
            f"applying all would free {saved_cpu:.2f} cores and {saved_mem:.2f} GiB of requests")
    return [Section("recommendations", "Recommendations", top, note)]
