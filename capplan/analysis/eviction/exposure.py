"""How exposed each node and pod is: moments under the thresholds, what must be freed, and who goes."""

from __future__ import annotations

import polars as pl

from capplan.analysis.eviction.model import DEFAULT_EVICTION_HARD, DEFAULT_EVICTION_SOFT
from capplan.analysis.eviction.ranking import rank_memory_pressure, relieve
from capplan.analysis.eviction.thresholds import threshold_bytes


def eviction_thresholds(nodes: pl.DataFrame, hard: str = DEFAULT_EVICTION_HARD, soft: str = DEFAULT_EVICTION_SOFT) -> pl.DataFrame:
    """Per node with a known memory capacity: the hard and soft thresholds in bytes
    (node, memory_capacity_bytes, hard_threshold_bytes, soft_threshold_bytes)."""
    caps = nodes.select("node", pl.col("memory_capacity_bytes").cast(pl.Int64)).filter(
        pl.col("memory_capacity_bytes").is_not_null() & (pl.col("memory_capacity_bytes") > 0))
    return caps.with_columns(
        pl.col("memory_capacity_bytes").map_elements(lambda c: threshold_bytes(hard, c), return_dtype=pl.Int64)
        .alias("hard_threshold_bytes"),
        pl.col("memory_capacity_bytes").map_elements(lambda c: threshold_bytes(soft, c), return_dtype=pl.Int64)
        .alias("soft_threshold_bytes"),
    )


def finish_exposure(thresholds: pl.DataFrame, worst: pl.DataFrame, shares: pl.DataFrame) -> pl.DataFrame:
    """The exposure table from the thresholds, each node's worst moment (node, worst_moment,
    working_set_at_worst_bytes, available_at_worst_bytes) and its shares (node, memory_moments,
    share_under_hard, share_under_soft), however they were computed."""
    out = thresholds.join(worst, on="node", how="inner").join(shares, on="node", how="left").with_columns(
        (pl.col("working_set_at_worst_bytes") / pl.col("memory_capacity_bytes")).alias("peak_usage_ratio"),
        (pl.col("available_at_worst_bytes") < pl.col("hard_threshold_bytes")).alias("under_pressure"),
        (pl.col("hard_threshold_bytes") - pl.col("available_at_worst_bytes")).alias("need_bytes"),
    )
    return out.sort("node")


def node_exposure(moments: pl.DataFrame, nodes: pl.DataFrame, hard: str = DEFAULT_EVICTION_HARD,
                  soft: str = DEFAULT_EVICTION_SOFT) -> pl.DataFrame:
    """Per node: its worst moment (largest working set), memory.available then, and the share of
    the window's samples with memory.available under the hard threshold and under the soft margin.

    `moments`: node, ts, working_set_bytes (a node's summed working set per sample time).
    `nodes`: node, memory_capacity_bytes. The store's path computes the same in DuckDB
    (queries/eviction_node_exposure.sql, capplan.analysis.eviction.analysis).
    """
    thresholds = eviction_thresholds(nodes, hard, soft)
    m = moments.join(thresholds, on="node", how="inner").with_columns(
        (pl.col("memory_capacity_bytes") - pl.col("working_set_bytes")).alias("available_bytes"))
    worst = m.sort(["node", "working_set_bytes", "ts"], descending=[False, True, True]).group_by(
        "node", maintain_order=True).first().select(
        "node", pl.col("ts").alias("worst_moment"), pl.col("working_set_bytes").alias("working_set_at_worst_bytes"),
        pl.col("available_bytes").alias("available_at_worst_bytes"))
    shares = m.group_by("node").agg(
        pl.len().alias("memory_moments"),
        (pl.col("available_bytes") < pl.col("hard_threshold_bytes")).mean().alias("share_under_hard"),
        (pl.col("available_bytes") < pl.col("soft_threshold_bytes")).mean().alias("share_under_soft"),
    )
    return finish_exposure(thresholds, worst, shares)


def pressure_needs(moments: pl.DataFrame, exposure: pl.DataFrame) -> pl.DataFrame:
    """The node moments under the hard threshold: node, ts, need_bytes (threshold - available > 0)."""
    return moments.join(exposure.select("node", "memory_capacity_bytes", "hard_threshold_bytes"), on="node").with_columns(
        (pl.col("hard_threshold_bytes") - (pl.col("memory_capacity_bytes") - pl.col("working_set_bytes"))).alias("need_bytes"),
    ).filter(pl.col("need_bytes") > 0).select("node", "ts", "need_bytes")


def pod_exposure(pod_moments: pl.DataFrame, needs: pl.DataFrame, specs: pl.DataFrame) -> pl.DataFrame:
    """Per node and pod: in how many of the node's pressure moments the pod is among those the
    kubelet would evict to relieve it (ranked and relieved at each moment on its own)."""
    schema = {"node": pl.Utf8, "namespace": pl.Utf8, "pod": pl.Utf8, "evicted_moments": pl.UInt32}
    if needs.is_empty() or pod_moments.is_empty():
        return pl.DataFrame(schema=schema)
    frame = pod_moments.join(needs.select("node", "ts"), on=["node", "ts"]).join(
        specs.select("namespace", "pod", "memory_request_bytes", "priority", "critical"), on=["namespace", "pod"], how="left",
    ).with_columns(
        pl.col("working_set_bytes").alias("memory_usage_bytes"),
        (~pl.col("critical").fill_null(False)).alias("evictable"),
    )
    ranked = rank_memory_pressure(frame, ["node", "ts"])
    relieved = relieve(ranked, needs, ["node", "ts"])
    return relieved.group_by("node", "namespace", "pod").agg(
        pl.col("evicted_to_relieve").sum().cast(pl.UInt32).alias("evicted_moments"))
