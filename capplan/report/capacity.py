"""The report's capacity sections: N-1 and node loss, imbalance, memory-pressure risk, namespaces."""

from __future__ import annotations

import polars as pl

from capplan.analysis.imbalance import imbalance
from capplan.analysis.n_minus_1 import n_minus_1, node_loss
from capplan.analysis.pressure import memory_pressure
from capplan.analysis.snapshot import node_state
from capplan.errors import NoDataError
from capplan.report.model import Section
from capplan.report.results import ReportResults


def imbalance_note(table: pl.DataFrame, low: float, high: float) -> str:
    """Whether LowNodeUtilization would move pods: it needs under- and over-utilized nodes, and
    not every node under (descheduler lownodeutilization.go `Balance`)."""
    n_under = int((table["utilization_class"] == "under").sum())
    n_over = int((table["utilization_class"] == "over").sum())
    acts = n_under > 0 and n_over > 0 and n_under < table.height
    return (f"{n_under} nodes under {low:g}% (all of cpu, memory, pods requested), {n_over} over {high:g}% "
            f"(any); the descheduler's LowNodeUtilization {'would' if acts else 'would not'} move pods")


def capacity_sections(results: ReportResults) -> list[Section]:
    """N-1, node loss, imbalance, memory-pressure risk and namespaces (the cluster and node
    tables themselves come from capplan.report)."""
    options = results.options
    try:
        inputs = results.node_inputs
    except NoDataError:
        return []  # no node at the window's end (or no data at all): nothing to lose or balance
    nodes, pods, start = inputs.nodes, inputs.pods, inputs.start
    state = node_state(nodes, pods)
    sections = []
    n1 = n_minus_1(state, pods)
    loss = node_loss(state, pods)
    stranded = loss.filter(~pl.col("survives")).sort(["unplaceable_pods", "node"], descending=[True, False])
    # Two different questions, named apart: do the requests fit in the remaining allocatable as
    # totals (n_minus_1), and can each lost pod be placed somewhere, pod by pod (node_loss)?
    note = ("the largest node by each resource is lost; its DaemonSet pods go with it. fits_in_total: the "
            "remaining requests fit in the remaining allocatable as sums (fragmentation and taints ignored). "
            + (f"Pod by pod (first-fit, taints kept), {stranded.height} of {loss.height} nodes would strand "
               "pods if lost: see the next table"
               if stranded.height else f"Pod by pod (first-fit, taints kept), any one of the {loss.height} "
               "nodes can be lost"))
    sections.append(Section("n_minus_1", "N-1: losing the largest node (totals)",
                            n1.rename({"holds": "fits_in_total"}), note))
    if stranded.height:
        sections.append(Section("node_loss", "Nodes whose loss strands pods (pod by pod)",
                                stranded.head(options.top).rename({"survives": "all_pods_placed"})))
    low, high = 20.0, 50.0
    imb = imbalance(state, low, high)
    if options.nodes:
        imb = imb.filter(pl.col("node").is_in(options.nodes))
    sections.append(Section("imbalance", f"Imbalance (descheduler LowNodeUtilization {low:g}/{high:g})",
                            imb.filter(pl.col("utilization_class") != "ok"), imbalance_note(imb, low, high)))
    if start is not None:
        risk = memory_pressure(inputs.daily, nodes)
        if options.nodes:
            risk = risk.filter(pl.col("node").is_in(options.nodes))
        sections.append(Section(
            "memory_pressure", "Memory-pressure risk",
            risk.select("node", "memory_threshold_bytes", "daily_max_max_bytes", "breach_points", "breach_share", "breach_days",
                        "days", "breach_day_probability", "daily_max_slope_bytes_per_day").head(options.top),
            "breach: the node's summed working set above allocatable - 100Mi; probability of a breach in a "
            "day from a Gumbel fit of the daily maxima"))
    ns = results.namespaces
    if options.namespaces:
        ns = ns.filter(pl.col("namespace").is_in(options.namespaces))
    sections.append(Section("namespaces", "Namespaces", ns.select(
        "namespace", "pods", "cpu_requests_cores", "cpu_usage_p95_cores", "cpu_usage_request_ratio",
        "memory_requests_bytes", "memory_usage_p95_bytes", "memory_usage_request_ratio",
        "quota_cpu_requests_used_ratio", "quota_memory_requests_used_ratio")))
    return sections
