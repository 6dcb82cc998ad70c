"""`capplan nodes`: the per-node table with the descheduler class and the memory-pressure columns."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import polars as pl

from capplan.analysis.imbalance import imbalance
from capplan.analysis.nodes import (
    load_node_inputs,
    node_overcommit,
)
from capplan.analysis.pressure import memory_pressure
from capplan.analysis.snapshot import node_state
from capplan.errors import NoDataError


def nodes_overview(con: duckdb.DuckDBPyConnection, window: timedelta = timedelta(days=14),
                   nodes: list[str] | None = None, low: float = 20.0, high: float = 50.0) -> pl.DataFrame:
    """The per-node table of nodes_report, plus the descheduler class (`--low/--high`) and the
    memory-pressure risk columns."""

    inputs = load_node_inputs(con, window, with_daily=True)
    table = node_overcommit(inputs.nodes, inputs.pods, inputs.usage)
    classes = imbalance(node_state(inputs.nodes, inputs.pods), low, high).select("node", "utilization_class")
    risk = memory_pressure(inputs.daily, inputs.nodes)
    table = table.join(classes, on="node", how="left").join(
        risk.select("node", pl.col("breach_share").alias("memory_pressure_share"),
                    pl.col("breach_day_probability").alias("memory_pressure_day_probability")),
        on="node", how="left",
    ).sort("node")
    if nodes:
        table = table.filter(pl.col("node").is_in(nodes))
        if table.is_empty():
            raise NoDataError(f"none of the nodes {', '.join(nodes)} is in the store")
    return table
