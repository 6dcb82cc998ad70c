"""`max-target`: Kubecost's request sizing (max usage / target utilisation).

CPU request = peak CPU / target, memory request = limit = peak memory / target
(`--target-utilization`, default 0.7); no CPU limit.
"""

from __future__ import annotations

import polars as pl

from capplan.analysis.strategies.base import (
    History,
    Needs,
    StrategyParams,
    ceil_bytes,
    ceil_millicores,
    fmt_cpu,
    fmt_mem,
    result_frame,
)

NEEDS = Needs()


def recommend(history: History, params: StrategyParams) -> pl.DataFrame:
    """One row per group: max / target-utilisation sizes."""
    target = params.target_utilization
    per_group = history.series.group_by("group_id").agg(
        pl.col("cpu_max_cores").max().alias("cpu"), pl.col("memory_max_bytes").max().alias("mem"),
    )
    rows = []
    for row in per_group.iter_rows(named=True):
        if row["cpu"] is None or row["mem"] is None:
            continue  # no usable samples of one resource: no recommendation
        cpu = ceil_millicores(row["cpu"] / target) if row["cpu"] is not None else None
        mem = ceil_bytes(row["mem"] / target) if row["mem"] is not None else None
        rows.append({
            "group_id": row["group_id"], "cpu_request_cores": cpu, "cpu_limit_cores": None,
            "memory_request_bytes": mem, "memory_limit_bytes": mem,
            "reason": (f"max-target: cpu = max {fmt_cpu(row['cpu'])} / {target:g}, "
                       f"memory = max {fmt_mem(row['mem'])} / {target:g}"),
        })
    return result_frame(rows)
