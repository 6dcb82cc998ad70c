"""Advice lines that follow from an eviction result, most urgent first."""

from __future__ import annotations

import math

import polars as pl

from capplan.analysis.eviction.model import BESTEFFORT_DANGER_RATIO, EvictionResult
from capplan.quantity import format_bytes


def share_text(ratio: float | None) -> str:
    """A share as a percentage, with decimals where rounding would say 0% or 100%."""
    if ratio is None or math.isnan(ratio):
        return "?"
    if 0 < ratio < 0.01:
        return f"{ratio * 100:.2f}%"
    if 0.99 < ratio < 1:
        return f"{ratio * 100:.1f}%"
    return f"{ratio * 100:.0f}%"


def advise(result: EvictionResult, restarts: pl.DataFrame, containers: pl.DataFrame) -> pl.DataFrame:
    """Advice lines that follow from the analysis, most urgent first."""
    rows: list[dict] = []
    nodes = {r["node"]: r for r in result.nodes.iter_rows(named=True)}
    for node, n in nodes.items():
        if n["under_pressure"]:
            victims = result.ranked_all.filter((pl.col("node") == node) & pl.col("evicted_to_relieve"))
            names = ", ".join(f"{r['namespace']}/{r['pod']}" for r in victims.iter_rows(named=True))
            tail = (f"the kubelet would evict {victims.height} pod(s) to relieve it: {names}" if n["relievable"]
                    else "evicting every evictable pod would not relieve it")
            rows.append({"severity": "high", "node": node, "namespace": None, "pod": None, "advice": (
                f"node {node} reaches {share_text(n['peak_usage_ratio'])} memory at {n['worst_moment']:%Y-%m-%d %H:%M} "
                f"(memory.available {format_bytes(n['available_at_worst_bytes'])} < hard threshold "
                f"{format_bytes(n['hard_threshold_bytes'])}; {share_text(n['share_under_hard'])} of the window under it): {tail}")})
    for r in result.ranked_all.iter_rows(named=True):
        on_node = nodes.get(r["node"])
        if on_node is None:
            continue
        who = f"{r['namespace']}/{r['pod']}"
        if r["qos_class"] == "BestEffort" and (on_node["peak_usage_ratio"] or 0) >= BESTEFFORT_DANGER_RATIO:
            rows.append({"severity": "high" if on_node["under_pressure"] else "medium", "node": r["node"],
                         "namespace": r["namespace"], "pod": r["pod"], "advice": (
                f"BestEffort pod {who} sits on node {r['node']} that reaches {share_text(on_node['peak_usage_ratio'])} memory: "
                f"give it a memory request (it is first in line for eviction and for the OOM killer)")})
        elif r["evicted_to_relieve"] and r["exceeds_request"]:
            rows.append({"severity": "high", "node": r["node"], "namespace": r["namespace"], "pod": r["pod"], "advice": (
                f"{r['qos_class']} pod {who} uses {format_bytes(r['usage_at_worst_bytes'])} against a "
                f"{format_bytes(r['memory_request_bytes'])} request on node {r['node']}: it is evicted (rank {r['rank']}) "
                f"when the node runs short; raise its memory request to its real use, or give it a higher priority")})
        if r["qos_mismatch"]:
            rows.append({"severity": "low", "node": r["node"], "namespace": r["namespace"], "pod": r["pod"], "advice": (
                f"pod {who}: its containers make it {r['qos_class']} but kube-state-metrics reports "
                f"{r['qos_class_reported']}: check the collected requests and limits")})
    # OOM kills: the container hit its own limit
    limits = containers.filter(~pl.col("init_container").fill_null(False) | pl.col("restartable").fill_null(False))
    specs = {(r["namespace"], r["pod"]): r for r in result.ranked_all.iter_rows(named=True)}
    for r in restarts.filter(pl.col("oom_kills") > 0).iter_rows(named=True):
        pod = specs.get((r["namespace"], r["pod"]))
        if pod is None:
            continue  # filtered out or not on an analysed node
        who = f"{r['namespace']}/{r['pod']}"
        for name in r["oom_killed_containers"] or []:
            c = limits.filter((pl.col("namespace") == r["namespace"]) & (pl.col("pod") == r["pod"])
                              & (pl.col("container") == name))
            limit = c["memory_limit_bytes"][0] if c.height else None
            at = f"at its limit {format_bytes(limit)}" if limit is not None else "(no limit: the node ran out)"
            rows.append({"severity": "high", "node": pod["node"], "namespace": r["namespace"], "pod": r["pod"], "advice": (
                f"{pod['qos_class']} pod {who} is OOM-killed {at} ({r['oom_kills']} times in the window, container "
                f"{name}): raise its memory limit" + (" and request" if pod["qos_class"] == "Guaranteed" else ""))})
    order = {"high": 0, "medium": 1, "low": 2}
    frame = pl.DataFrame(rows, schema={"severity": pl.Utf8, "node": pl.Utf8, "namespace": pl.Utf8, "pod": pl.Utf8,
                                       "advice": pl.Utf8})
    return frame.with_columns(pl.col("severity").replace_strict(order, return_dtype=pl.Int8).alias("_o")).sort(
        "_o", "node", "namespace", "pod", nulls_last=False).drop("_o")
