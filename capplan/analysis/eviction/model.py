"""The eviction analysis' defaults, columns, options and result."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import polars as pl

from capplan.analysis.eviction.priorities import PriorityMap

USAGE_BASES = ("peak", "p95", "latest")
DEFAULT_EVICTION_HARD = "100Mi"
DEFAULT_EVICTION_SOFT = "10%"
# Advice: a BestEffort pod is in danger on a node whose worst moment uses at least this share.
BESTEFFORT_DANGER_RATIO = 0.90

EVICTION_COLUMNS = [
    # CONTRACT.md `eviction`
    "node", "rank", "namespace", "pod", "qos_class", "priority", "memory_request_bytes",
    "memory_usage_bytes", "exceeds_request", "oom_score_adj",
    # extras
    "usage_above_request_bytes", "usage_at_worst_bytes", "cumulative_freed_bytes", "evicted_to_relieve",
    "evictable", "priority_class", "qos_class_reported", "qos_mismatch", "memory_limit_bytes",
    "pressure_moments", "evicted_moments", "evicted_share", "oom_kills", "restarts", "usage_basis",
    "worst_moment", "priority_known",
]
QOS_COLUMNS = [
    "namespace", "pod", "node", "qos_class", "qos_class_reported", "qos_mismatch", "priority_class", "priority",
    "priority_known", "critical", "memory_request_bytes", "memory_limit_bytes", "oom_score_adj",
]
NODE_COLUMNS = [
    "node", "memory_capacity_bytes", "worst_moment", "working_set_at_worst_bytes", "available_at_worst_bytes",
    "peak_usage_ratio", "hard_threshold_bytes", "soft_threshold_bytes", "under_pressure", "memory_moments",
    "share_under_hard", "share_under_soft", "pods_at_worst", "evictions_to_relieve", "freed_to_relieve_bytes",
    "relievable",
]


@dataclass
class EvictionOptions:
    """What `capplan eviction` and the report section take."""

    window: timedelta = timedelta(days=14)
    usage: str = "peak"
    eviction_hard: str = DEFAULT_EVICTION_HARD
    eviction_soft: str = DEFAULT_EVICTION_SOFT
    priorities: PriorityMap = field(default_factory=PriorityMap)
    namespaces: list[str] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)


@dataclass
class EvictionResult:
    """The analysis' frames: ranked pods per node, node exposure, container scores, advice."""

    pods: pl.DataFrame
    nodes: pl.DataFrame
    containers: pl.DataFrame
    advice: pl.DataFrame
    start: datetime
    end: datetime
    options: EvictionOptions
    qos: pl.DataFrame = field(default_factory=pl.DataFrame)        # every pod seen in the window
    ranked_all: pl.DataFrame = field(default_factory=pl.DataFrame)  # `pods` before -n/--node filters
    # PriorityClass names pods use that neither --priority-classes nor --priority resolved: their
    # pods are ranked as priority 0 (what the admission plugin does for an unknown class is refuse
    # the pod, so the real value is unknown), and the user is told (issue 13)
    unresolved_priority_classes: list[str] = field(default_factory=list)
