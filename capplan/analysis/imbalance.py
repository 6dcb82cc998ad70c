"""Imbalance in the descheduler's LowNodeUtilization terms: each node's requested share and its
class (under, ok, over)."""

from __future__ import annotations

import polars as pl

from capplan.analysis.taints import UNSCHEDULABLE_TAINT, parse_taints
from capplan.errors import UsageError


def imbalance(state: pl.DataFrame, low: float = 20.0, high: float = 50.0) -> pl.DataFrame:
    """Each node's requested share of allocatable (percent) for cpu, memory and pods, and its
    class in the descheduler's LowNodeUtilization terms (kubernetes-sigs/descheduler
    pkg/framework/plugins/nodeutilization/nodeutilization.go `isNodeBelowThreshold` /
    `isNodeAboveThreshold`): `under` when every resource is at or below `low` (the descheduler
    tests `threshold < usage` for none), else `over` when any is above `high`, else `ok`."""
    if not (0 <= low <= 100 and 0 <= high <= 100):
        raise UsageError("--low and --high are percentages between 0 and 100")
    if low > high:
        raise UsageError(f"--low ({low:g}) must not be above --high ({high:g})")
    def pct(num: str, den: str) -> pl.Expr:
        return pl.when(pl.col(den) > 0).then(pl.col(num).cast(pl.Float64) * 100.0 / pl.col(den)).otherwise(None)
    out = state.select(
        "node",
        pct("cpu_requests_cores", "cpu_allocatable_cores").alias("cpu_request_pct"),
        pct("memory_requests_bytes", "memory_allocatable_bytes").alias("memory_request_pct"),
        pct("pods", "pods_allocatable").alias("pods_pct"),
    )
    cols = ["cpu_request_pct", "memory_request_pct", "pods_pct"]
    # an unschedulable (cordoned) node is never `under` (lownodeutilization.go Balance); the
    # store knows cordoning by the taint the node controller adds for it
    cordoned = pl.Series([any(t.get("key") == UNSCHEDULABLE_TAINT for t in parse_taints(x))
                          for x in state["taints"].to_list()], dtype=pl.Boolean) if "taints" in state.columns \
        else pl.Series([False] * state.height, dtype=pl.Boolean)
    out = out.with_columns(cordoned.alias("cordoned"))
    under = pl.all_horizontal([pl.col(c).fill_null(0.0) <= low for c in cols]) & ~pl.col("cordoned")
    over = pl.any_horizontal([pl.col(c).fill_null(0.0) > high for c in cols])
    return out.with_columns(
        pl.when(under).then(pl.lit("under")).when(over).then(pl.lit("over")).otherwise(pl.lit("ok")).alias("utilization_class")
    ).drop("cordoned")
