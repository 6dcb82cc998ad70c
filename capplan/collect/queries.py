"""What the collector asks Prometheus for, and how a run is cut into chunks and batches.

Usage (cAdvisor) is pulled as raw samples (an instant query of `metric{...}[range]`, which
Prometheus and VictoriaMetrics both answer with the stored samples) and turned into per-step CPU
and memory by capplan itself (transform.cpu_from_counters, transform.memory_peaks): backends
differ in what `rate()` does at window edges (VictoriaMetrics also uses the sample before the
window), so computing it here gives the same number from every backend and spares the server
the per-step work.

Declared state (kube-state-metrics) changes a few times a day, so a long run reads it once at a
coarse step (COARSE_SECONDS): the last value per window. A window whose series held the same
value in the window before and goes on in the window after is expanded to the spec step
locally; only the windows where a series appeared, ended or changed value are asked again at the
spec step, for those objects only. The result is what
`max by (...) (last_over_time(metric[spec_step - 1ms]))` at the spec step would have returned,
at a fraction of the server's work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from capplan.promql import label_matcher

MAX_POINTS_PER_SERIES = 11_000  # Prometheus refuses (end-start)/step + 1 above this
REAL_CONTAINERS = 'container!="",container!="POD"'
USAGE_KEYS = ("namespace", "pod", "container", "node")
# Labels kept from raw cAdvisor series besides the keys: which scrape (job, metrics_path) exported it.
USAGE_SOURCE_LABELS = ("job", "metrics_path")
# Declared state is read per 6 hours on long runs. Measured on bench/collect_bench.py's M data
# (Prometheus 2.42, 7 days of kube_pod_container_resource_requests, 1,856 series): the server's
# CPU for last_over_time was 0.61 s at a 1 h step, 0.35 s at 6 h and 0.34 s at 1 d (reading the
# samples dominates from 6 h on), against ~6 s at the 5-minute spec step; longer windows only
# make the re-reads of changed windows longer.
COARSE_SECONDS = 6 * 3600


@dataclass(frozen=True)
class Metric:
    """One source metric: what to select, how to fold it, and what capplan lacks without it."""

    key: str            # the metric name (also the high-water-mark key)
    kind: str           # "usage", "spec" or "node" (node metrics have no namespace label)
    lacks: str          # what is missing when the metric is absent
    by: tuple[str, ...] = ()      # the answer's label columns (folded with `max by`); () = keep every label
    match: str = ""               # extra label matchers
    post: str = ""                # a filter after folding (" == 1" for 0/1 state series)
    aliases: tuple[tuple[str, str], ...] = ()  # label -> column renames (a label named "value")
    required: bool = False

    @property
    def labels(self) -> tuple[str, ...] | None:
        return self.by or None

    @property
    def key_label(self) -> str:
        """The label naming the object (to ask again for a few objects only)."""
        for label in ("pod", "node", "replicaset", "job_name", "horizontalpodautoscaler", "resourcequota",
                      "deployment"):
            if label in self.by:
                return label
        return self.by[0] if self.by else "__name__"


def _spec(name: str, by: str, lacks: str, extra: str = "", post: str = "", kind: str = "spec") -> Metric:
    labels = tuple(part.strip() for part in by.split(","))
    aliases = (("value", "taint_value"),) if "value" in labels else ()
    return Metric(name, kind, lacks, by=labels, match=extra, post=post, aliases=aliases)


METRICS: tuple[Metric, ...] = (
    Metric("container_cpu_usage_seconds_total", "usage",
           "CPU usage (no CPU percentiles, recommendations or forecasts)", by=USAGE_KEYS, match=REAL_CONTAINERS,
           required=True),
    Metric("container_memory_working_set_bytes", "usage",
           "memory usage (no memory percentiles, eviction exposure or recommendations)", by=USAGE_KEYS,
           match=REAL_CONTAINERS, required=True),
    _spec("kube_pod_container_resource_requests", "namespace, pod, container, resource",
          "container requests (overcommit, fit and QoS need them)", 'resource=~"cpu|memory"'),
    _spec("kube_pod_container_resource_limits", "namespace, pod, container, resource",
          "container limits", 'resource=~"cpu|memory"'),
    _spec("kube_pod_init_container_resource_requests", "namespace, pod, container, resource",
          "init-container requests (pod requests may be understated)", 'resource=~"cpu|memory"'),
    _spec("kube_pod_init_container_resource_limits", "namespace, pod, container, resource",
          "init-container limits", 'resource=~"cpu|memory"'),
    _spec("kube_pod_container_info", "namespace, pod, container",
          "containers without requests or limits (BestEffort containers)"),
    _spec("kube_pod_init_container_info", "namespace, pod, container, restart_policy",
          "which init containers are sidecars (restartPolicy Always)"),
    _spec("kube_node_status_capacity", "node, resource", "node capacity",
          'resource=~"cpu|memory|pods"', kind="node"),
    _spec("kube_node_status_allocatable", "node, resource", "node allocatable (no headroom or fit)",
          'resource=~"cpu|memory|pods"', kind="node"),
    _spec("kube_pod_info", "namespace, pod, node, priority_class",
          "pods and their nodes (no per-node analyses)"),
    _spec("kube_pod_owner", "namespace, pod, owner_kind, owner_name",
          "pod owners (recommendations cannot roll up to workloads)", 'owner_is_controller="true"'),
    _spec("kube_replicaset_owner", "namespace, replicaset, owner_kind, owner_name",
          "ReplicaSet -> Deployment links", 'owner_is_controller="true"'),
    _spec("kube_job_owner", "namespace, job_name, owner_kind, owner_name",
          "Job -> CronJob links", 'owner_is_controller="true"'),
    _spec("kube_pod_status_qos_class", "namespace, pod, qos_class",
          "reported QoS classes (capplan computes them from requests and limits)", post=" == 1"),
    _spec("kube_pod_status_phase", "namespace, pod, phase", "pod phases", post=" == 1"),
    _spec("kube_pod_container_status_last_terminated_reason", "namespace, pod, container, reason",
          "restart reasons (OOM kills)", post=" == 1"),
    _spec("kube_pod_container_status_restarts_total", "namespace, pod, container", "container restarts"),
    _spec("kube_pod_init_container_status_last_terminated_reason", "namespace, pod, container, reason",
          "init and sidecar container restart reasons (OOM kills)", post=" == 1"),
    _spec("kube_pod_init_container_status_restarts_total", "namespace, pod, container",
          "init and sidecar container restarts"),
    # all label_* labels are wanted, so no folding here
    Metric("kube_node_labels", "node", "node labels (instance types, zones)"),
    _spec("kube_node_info", "node, provider_id", "node provider ids (zones when node labels are missing)",
          kind="node"),
    _spec("kube_node_spec_taint", "node, key, value, effect", "node taints", kind="node"),
    _spec("kube_resourcequota", "namespace, resourcequota, resource", "resource quotas", 'type="hard"'),
    _spec("kube_horizontalpodautoscaler_spec_target_metric", "namespace, horizontalpodautoscaler, metric_name",
          "HPAs"),
    _spec("kube_horizontalpodautoscaler_info", "namespace, horizontalpodautoscaler, scaletargetref_kind, scaletargetref_name",
          "HPA targets"),
    _spec("kube_deployment_spec_strategy_rollingupdate_max_surge", "namespace, deployment",
          "rolling-update surge (rollout checks assume the default 25%)"),
    _spec("kube_deployment_spec_replicas", "namespace, deployment", "Deployment replicas and strategies"),
)
METRICS_BY_KEY = {m.key: m for m in METRICS}
# Metrics whose absence is no loss worth a warning (newer kube-state-metrics series, fallbacks).
OPTIONAL_QUIET = {"kube_pod_init_container_status_last_terminated_reason", "kube_pod_init_container_status_restarts_total",
                  "kube_node_info"}


def selector(namespaces: list[str] | None) -> str:
    """The label-selector body restricting a namespaced metric to `namespaces` (escaped)."""
    return label_matcher("namespace", namespaces) if namespaces else ""


def _selector(metric: Metric, namespaces: list[str] | None, extra: str = "") -> str:
    parts = [metric.match, extra, "" if metric.kind == "node" else selector(namespaces)]
    return metric.key + "{" + ",".join(p for p in parts if p) + "}"


def render(metric: Metric, namespaces: list[str] | None, window_ms: int, only: tuple[str, list[str]] | None = None,
           scope: str = "") -> str:
    """`max by (labels) (last_over_time(metric[window]))` (the spec-step query), restricted to
    `namespaces` (None = all), with `only` to some values of one label, and with `scope` (label
    matchers) to one cluster of a central Prometheus."""
    extra = ",".join(p for p in (label_matcher(only[0], only[1]) if only else "", scope) if p)
    sel = _selector(metric, namespaces, extra)
    if not metric.by:
        return f"last_over_time({sel}[{window_ms}ms])"
    return f"max by ({', '.join(metric.by)}) (last_over_time({sel}[{window_ms}ms])){metric.post}"


def render_coarse(metric: Metric, namespaces: list[str] | None, window_ms: int, scope: str = "") -> str:
    """`last_over_time(metric[window])` per series, without render's `max by`: the client folds
    the answer (transform.coarse_values), which spares the server the aggregation at every step
    (bench/collect_bench.py's M first run, every coarse read replayed alone on Prometheus 2.42:
    2.69 s of server CPU with `max by`, 2.25 s without, though the answer is ~30% larger). A
    ` == 1` filter becomes ` >= 1` per series: the maximum of a group is 1 exactly when the
    maximum of its values of at least 1 is (NaN compares false; +Inf stays and wins, as in `max`)."""
    sel = _selector(metric, namespaces, scope)
    post = " >= 1" if metric.post == " == 1" else metric.post
    return f"last_over_time({sel}[{window_ms}ms]){post}"


def render_raw(metric: Metric, namespaces: list[str] | None, range_ms: int, usage_selector: str = "") -> str:
    """The raw samples of a usage metric in the `range_ms` before the evaluation time (1 ms short
    of the previous boundary, so a sample on it is read once)."""
    return f"{_selector(metric, namespaces, usage_selector)}[{range_ms}ms]"


def render_raw_group(names: list[str], match: str, namespaces: list[str] | None, range_ms: int, extra: str = "") -> str:
    """The raw samples of several metrics sharing their extra matchers (`match`), in one answer:
    `{__name__=~"a|b",match,extra,namespace=~"..."}[range]` (metric names need no escaping: they
    hold no regex metacharacters, and Prometheus anchors the regex)."""
    parts = [f'__name__=~"{"|".join(names)}"', match, extra, selector(namespaces)]
    return "{" + ",".join(p for p in parts if p) + f"}}[{range_ms}ms]"


# --- time grid and chunks ---------------------------------------------------------------------


def utc_naive(dt: datetime) -> datetime:
    """Naive UTC (the store's convention)."""
    return dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo else dt


def epoch(dt: datetime) -> float:
    """Epoch seconds of a naive-UTC or aware datetime."""
    return (dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt).timestamp()


def from_epoch(seconds: float) -> datetime:
    """Naive UTC datetime from epoch seconds."""
    return datetime.fromtimestamp(seconds, tz=UTC).replace(tzinfo=None)


def align_down(dt: datetime, step_seconds: int) -> datetime:
    """The grid time (a multiple of step since the epoch) at or before dt."""
    return from_epoch(math.floor(epoch(dt) / step_seconds) * step_seconds)


def align_up(dt: datetime, step_seconds: int) -> datetime:
    """The grid time at or after dt."""
    return from_epoch(math.ceil(epoch(dt) / step_seconds) * step_seconds)


@dataclass(frozen=True)
class Chunk:
    """A closed range [start, end] of usage grid times, committed as one transaction."""

    start: datetime
    end: datetime


def plan_chunks(start: datetime, end: datetime, step_seconds: int, chunk_steps: int) -> list[Chunk]:
    """Cut [start, end] (grid-aligned) into chunks of at most `chunk_steps` grid points."""
    if end < start:
        return []
    chunk_steps = max(1, min(chunk_steps, MAX_POINTS_PER_SERIES - 1))
    out = []
    t = start
    span = timedelta(seconds=step_seconds * (chunk_steps - 1))
    while t <= end:
        hi = min(end, t + span)
        out.append(Chunk(t, hi))
        t = hi + timedelta(seconds=step_seconds)
    return out


def split_range(start: datetime, end: datetime, step_seconds: int) -> list[tuple[datetime, datetime]]:
    """Halve [start, end] on the grid (for an answer the server found too large)."""
    n = int(round((epoch(end) - epoch(start)) / step_seconds)) + 1
    if n <= 1:
        return []
    mid = start + timedelta(seconds=step_seconds * (n // 2 - 1))
    return [(start, mid), (mid + timedelta(seconds=step_seconds), end)]


def batch_namespaces(counts: dict[str, int], max_series: int) -> list[list[str]]:
    """Group namespaces so each group holds at most `max_series` series (a bigger namespace is a
    group of its own). Largest first, first fit."""
    groups: list[tuple[int, list[str]]] = []
    for ns, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        for i, (size, members) in enumerate(groups):
            if size + n <= max_series:
                groups[i] = (size + n, members + [ns])
                break
        else:
            groups.append((n, [ns]))
    return [sorted(members) for _, members in groups]
