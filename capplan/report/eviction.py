"""The report's eviction sections (nodes under memory pressure, first pods in line, advice) and
the sentences that explain an eviction result."""

from __future__ import annotations

import polars as pl

from capplan.analysis.eviction import (
    EvictionResult,
    share_text,
)
from capplan.quantity import format_bytes
from capplan.report.model import Section
from capplan.report.results import ReportResults


def priority_warning(names: list[str]) -> str:
    """The sentence naming PriorityClasses no --priority-classes/--priority resolved."""
    return (f"PriorityClass {', '.join(names)} not given (--priority-classes FILE or --priority NAME=VALUE): "
            f"their pods are ranked as priority 0, which may not be their place in the eviction order "
            f"(see the priority_known column)")


def node_note(result: EvictionResult) -> str:
    """A few sentences explaining the nodes under pressure (or that none is)."""
    under = result.nodes.filter(pl.col("under_pressure"))
    hard = result.options.eviction_hard
    if under.is_empty():
        top = result.nodes.sort("peak_usage_ratio", descending=True).head(1)
        worst = (f"; the fullest is {top['node'][0]} at {share_text(top['peak_usage_ratio'][0])} of its memory"
                 if top.height else "")
        return f"No node reaches memory.available < {hard} in the window{worst}."
    lines = []
    for n in under.iter_rows(named=True):
        victims = result.ranked_all.filter((pl.col("node") == n["node"]) & pl.col("evicted_to_relieve"))
        names = ", ".join(f"{r['namespace']}/{r['pod']} ({r['qos_class']}, priority {r['priority']}, "
                          f"{format_bytes(r['usage_at_worst_bytes'])} used vs {format_bytes(r['memory_request_bytes'])} requested)"
                          for r in victims.iter_rows(named=True))
        lines.append(
            f"{n['node']} is under memory pressure: at {n['worst_moment']:%Y-%m-%d %H:%M} UTC its pods' working set is "
            f"{format_bytes(n['working_set_at_worst_bytes'])} of {format_bytes(n['memory_capacity_bytes'])} "
            f"({share_text(n['peak_usage_ratio'])}), leaving {format_bytes(n['available_at_worst_bytes'])} < {hard} "
            f"(hard eviction threshold); memory.available is under it in {share_text(n['share_under_hard'])} of the window's "
            f"{n['memory_moments']} samples, and under the soft margin ({result.options.eviction_soft}) in "
            f"{share_text(n['share_under_soft'])}. "
            f"Pods above their requests go first, lower priority first, then the largest excess: the kubelet must "
            f"evict {n['evictions_to_relieve']} pod(s) to relieve it: {names or 'none can be evicted'}."
        )
    return " ".join(lines)


def eviction_sections(results: ReportResults) -> list[Section]:
    """Eviction exposure for `capplan report`: nodes, the first pods in line, and advice."""
    result, options = results.eviction, results.options
    if result is None:
        return []  # no usage with a known node: nothing to say about eviction
    node_cols = ["node", "worst_moment", "peak_usage_ratio", "available_at_worst_bytes", "hard_threshold_bytes",
                 "under_pressure", "share_under_hard", "share_under_soft", "evictions_to_relieve"]
    first = result.pods.filter(pl.col("evicted_to_relieve") | (pl.col("rank") <= 3)).sort(
        "evicted_to_relieve", "node", "rank", descending=[True, False, False]).head(max(options.top, 1))
    pod_cols = ["node", "rank", "namespace", "pod", "qos_class", "priority", "memory_request_bytes",
                "memory_usage_bytes", "exceeds_request", "cumulative_freed_bytes", "evicted_to_relieve", "oom_score_adj"]
    sections = [
        Section("eviction_nodes", "Eviction exposure (memory pressure per node)", result.nodes.select(node_cols),
                node_note(result)),
        Section("eviction", "First in line for eviction", first.sort("node", "rank").select(pod_cols),
                "ranked as the kubelet's rankMemoryPressure does, at each node's worst moment; "
                "cumulative_freed_bytes counts working set freed at that moment"
                + (f". {priority_warning(result.unresolved_priority_classes)}"
                   if result.unresolved_priority_classes else "")),
    ]
    if result.advice.height:
        sections.append(Section("eviction_advice", "Eviction advice", result.advice.head(max(options.top, 1))))
    return sections
