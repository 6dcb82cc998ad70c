"""Pods by QoS, priority and request, and the kubelet's rankMemoryPressure order."""

from __future__ import annotations

import polars as pl

from capplan.analysis.eviction.priorities import PriorityMap
from capplan.analysis.pods import pod_resources
from capplan.analysis.qos import (
    container_oom_scores,
    is_critical_pod,
    is_node_critical_pod,
    qos_class,
)
from capplan.analysis.row_groups import rows_by


def pod_specs(containers: pl.DataFrame, priorities: PriorityMap) -> pl.DataFrame:
    """One row per pod: QoS (computed and reported), priority, criticality and the memory
    request the eviction manager compares usage with.

    `containers` has the columns of queries/window_containers.sql (or current_containers.sql).
    """
    schema = {
        "namespace": pl.Utf8, "pod": pl.Utf8, "node": pl.Utf8, "priority_class": pl.Utf8, "priority": pl.Int64,
        "priority_known": pl.Boolean, "critical": pl.Boolean, "node_critical": pl.Boolean, "qos_class": pl.Utf8,
        "qos_class_reported": pl.Utf8, "qos_mismatch": pl.Boolean, "memory_request_bytes": pl.Int64,
        "memory_limit_bytes": pl.Int64,
    }
    if containers.is_empty():
        return pl.DataFrame(schema=schema)
    # apiserver defaulting: a missing request takes the limit (same rule as GetPodQOS assumes)
    defaulted = containers.with_columns(
        pl.coalesce("memory_request_bytes", "memory_limit_bytes").alias("memory_request_bytes"),
        pl.coalesce("cpu_request_cores", "cpu_limit_cores").alias("cpu_request_cores"),
    )
    # GetResourceRequestQuantity: PodRequests with ExcludeOverhead, then overhead if non-zero
    no_overhead = defaulted.drop([c for c in ("overhead_cpu_cores", "overhead_memory_bytes") if c in defaulted.columns])
    sums = pod_resources(no_overhead).select("namespace", "pod", "memory_request_bytes", "memory_limit_bytes",
                                             "memory_unlimited_containers")
    rows = []
    for (namespace, pod), group in rows_by(containers, ["namespace", "pod"]).items():
        first = group[0]
        priority_class = first.get("priority_class")
        priority, known = priorities.resolve(priority_class)
        qos = qos_class(group)
        reported = first.get("qos_class_reported")
        rows.append({
            "namespace": namespace, "pod": pod, "node": first.get("node"), "priority_class": priority_class,
            "priority": priority, "priority_known": known, "critical": is_critical_pod(priority),
            "node_critical": is_node_critical_pod(priority_class, priority), "qos_class": qos,
            "qos_class_reported": reported, "qos_mismatch": bool(reported) and reported != qos,
            "overhead_memory_bytes": first.get("overhead_memory_bytes"),
        })
    pods = pl.DataFrame(rows, schema={**{k: v for k, v in schema.items() if not k.startswith("memory_")},
                                      "overhead_memory_bytes": pl.Float64})
    out = pods.join(sums, on=["namespace", "pod"], how="left").with_columns(
        (pl.col("memory_request_bytes").fill_null(0.0)
         + pl.when(pl.col("memory_request_bytes").fill_null(0.0) > 0)
         .then(pl.col("overhead_memory_bytes").fill_null(0.0)).otherwise(0.0)).round(0).cast(pl.Int64)
        .alias("memory_request_bytes"),
        # a container without a memory limit leaves the pod unbounded: null
        pl.when(pl.col("memory_unlimited_containers") > 0).then(None)
        .otherwise(pl.col("memory_limit_bytes")).round(0).cast(pl.Int64).alias("memory_limit_bytes"),
    )
    return out.select(list(schema))


def pod_oom_scores(containers: pl.DataFrame, pods: pl.DataFrame, capacities: dict[str, int]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(per-container oom_score_adj, per-pod highest oom_score_adj: the container the kernel's
    OOM killer leans to first)."""
    per_container = container_oom_scores(containers, pods, capacities)
    per_pod = per_container.group_by(["namespace", "pod"]).agg(pl.col("oom_score_adj").max())
    return per_container, per_pod


# --- ranking -------------------------------------------------------------------------------

def rank_memory_pressure(pods: pl.DataFrame, group_by: list[str] | None = None) -> pl.DataFrame:
    """Order pods as the kubelet's `rankMemoryPressure` does, within each group (a node, or a
    node and moment).

    Input columns: namespace, pod, memory_usage_bytes (null = no stats), memory_request_bytes,
    priority. Adds has_stats, exceeds_request (usage > request, `Cmp == 1`),
    usage_above_request_bytes and rank (1 = evicted first), sorted by group then rank.
    """
    group_by = group_by or []
    out = pods.with_columns(
        pl.col("memory_usage_bytes").is_not_null().alias("has_stats"),
        pl.col("memory_request_bytes").fill_null(0).alias("memory_request_bytes"),
        pl.col("priority").fill_null(0).alias("priority"),
    ).with_columns(
        (pl.col("has_stats") & (pl.col("memory_usage_bytes") > pl.col("memory_request_bytes"))).alias("exceeds_request"),
        (pl.col("memory_usage_bytes") - pl.col("memory_request_bytes")).alias("usage_above_request_bytes"),
    )
    # exceedMemoryRequests: no stats first, then exceeding first; priority: lower first;
    # memory: no stats first, then larger usage - request first; then a reproducible tie-break.
    out = out.sort(
        [*group_by, "has_stats", "exceeds_request", "priority", "usage_above_request_bytes", "namespace", "pod"],
        descending=[*([False] * len(group_by)), False, True, False, True, False, False],
        nulls_last=False,
    )
    rank = pl.int_range(1, pl.len() + 1, dtype=pl.Int64)
    return out.with_columns((rank.over(group_by) if group_by else rank).alias("rank"))


def relieve(ranked: pl.DataFrame, need: pl.DataFrame, group_by: list[str], freed_column: str = "memory_usage_bytes") -> pl.DataFrame:
    """Walk the ranked list as the eviction manager does, one pod at a time, until the node is
    out of pressure.

    `need` holds, per group, need_bytes = threshold - available (> 0 under pressure). Each
    evictable pod frees `freed_column`; critical pods cannot be evicted and free nothing. Adds
    cumulative_freed_bytes (after evicting this pod and all before it) and evicted_to_relieve.
    """
    freed = pl.when(pl.col("evictable")).then(pl.col(freed_column).fill_null(0)).otherwise(0)
    out = ranked.join(need, on=group_by, how="left").with_columns(
        freed.cum_sum().over(group_by, order_by="rank").alias("cumulative_freed_bytes"),
    ).with_columns(
        (pl.col("cumulative_freed_bytes") - freed).alias("_freed_before"),
    ).with_columns(
        (pl.col("evictable") & pl.col("need_bytes").is_not_null() & (pl.col("need_bytes") > 0)
         & (pl.col("_freed_before") < pl.col("need_bytes"))).alias("evicted_to_relieve"),
    )
    return out.drop("_freed_before", "need_bytes")
