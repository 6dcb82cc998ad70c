"""Who dies first when a node runs out of memory: the kubelet's memory-pressure eviction order,
per node, at the node's worst moment in the window, with the exposure of nodes and pods.

The rules come from the Kubernetes source (kubernetes/kubernetes):
- pkg/kubelet/eviction/helpers.go `rankMemoryPressure`:
  `orderedBy(exceedMemoryRequests(stats), priority, memory(stats)).Sort(pods)`, i.e. pods whose
  working set exceeds their memory request first (a pod without stats before any with), then
  lower priority first, then larger (working set - request) first. `memoryUsage` is the pod's
  working set; the request is `GetResourceRequestQuantity` (pkg/api/v1/resource/helpers.go):
  PodRequests without overhead, plus the pod overhead only when that is non-zero.
  `sort.Sort` is not stable, so the kubelet orders exact ties arbitrarily; capplan breaks them by
  namespace and pod name to be reproducible.
- helpers.go `thresholdsMet`: a threshold is met when the threshold quantity is greater than the
  observed `memory.available` (available < threshold); a percentage is of capacity
  (`GetThresholdQuantity`). The hard default is memory.available<100Mi.
- eviction_manager.go: one pod is evicted per housekeeping pass, until the signal is out of
  pressure; `evictPod` refuses critical pods (`IsCriticalPod`), so they are skipped.

capplan's memory.available is node memory capacity minus the summed working set of the
containers on the node (the kubelet uses the node's root cgroup, which also counts system
daemons and page cache it cannot reclaim: real availability is somewhat lower).

The package, one idea per module: model (defaults, columns, options, result), priorities,
thresholds, ranking (the kubelet order), exposure (nodes and pods under pressure), advice, and
analysis (store -> result: `load_eviction_inputs` reads the store, `eviction_analysis` ties the
parts together for the CLI and the report).
"""

from capplan.analysis.eviction.advice import advise, share_text
from capplan.analysis.eviction.analysis import (
    EvictionInputs,
    eviction_analysis,
    eviction_report,
    load_eviction_inputs,
)
from capplan.analysis.eviction.exposure import (
    node_exposure,
    pod_exposure,
    pressure_needs,
)
from capplan.analysis.eviction.model import (
    BESTEFFORT_DANGER_RATIO,
    DEFAULT_EVICTION_HARD,
    DEFAULT_EVICTION_SOFT,
    EVICTION_COLUMNS,
    NODE_COLUMNS,
    QOS_COLUMNS,
    USAGE_BASES,
    EvictionOptions,
    EvictionResult,
)
from capplan.analysis.eviction.priorities import (
    PriorityMap,
    load_priority_map,
    parse_priority_classes,
)
from capplan.analysis.eviction.ranking import (
    pod_oom_scores,
    pod_specs,
    rank_memory_pressure,
    relieve,
)
from capplan.analysis.eviction.thresholds import check_threshold, threshold_bytes

__all__ = [
    "BESTEFFORT_DANGER_RATIO", "DEFAULT_EVICTION_HARD", "DEFAULT_EVICTION_SOFT", "EVICTION_COLUMNS", "NODE_COLUMNS",
    "QOS_COLUMNS", "USAGE_BASES", "EvictionInputs", "EvictionOptions", "EvictionResult", "PriorityMap", "advise",
    "check_threshold", "eviction_analysis", "eviction_report", "load_eviction_inputs", "load_priority_map",
    "node_exposure", "parse_priority_classes", "pod_exposure", "pod_oom_scores", "pod_specs", "pressure_needs",
    "rank_memory_pressure", "relieve", "share_text", "threshold_bytes",
]
