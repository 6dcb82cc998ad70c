"""`simple`: KRR's simple strategy (robusta-dev/krr, robusta_krr/strategies/simple.py).

CPU request = the largest per-pod percentile (`--cpu-percentile`, 95) of CPU usage; no CPU
limit. Memory request = limit = the peak working set over all pods x (1 + `--memory-buffer`/100).
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

NEEDS = Needs(cpu_percentile=True)


def recommend(history: History, params: StrategyParams) -> pl.DataFrame:
    """One row per group: KRR-simple requests and limits."""
    per_group = history.series.group_by("group_id").agg(
        pl.col("cpu_pq_cores").max().alias("cpu"),
        pl.col("memory_max_bytes").max().alias("mem"),
    )
    buffer = 1.0 + params.memory_buffer_percent / 100.0
    rows = []
    for row in per_group.iter_rows(named=True):
        if row["cpu"] is None or row["mem"] is None:
            continue  # no usable samples of one resource: no recommendation
        cpu = ceil_millicores(row["cpu"])
        mem = ceil_bytes(row["mem"] * buffer) if row["mem"] is not None else None
        rows.append({
            "group_id": row["group_id"], "cpu_request_cores": cpu, "cpu_limit_cores": None,
            "memory_request_bytes": mem, "memory_limit_bytes": mem,
            "reason": (f"simple: cpu = largest per-pod p{params.cpu_percentile:g} {fmt_cpu(cpu)}, no cpu limit; "
                       f"memory = peak {fmt_mem(row['mem'])} + {params.memory_buffer_percent:g}%"),
        })
    return result_frame(rows)
