"""What the collector asks Prometheus for, and how a run is cut into chunks and batches.

Window semantics (the same in Prometheus 2.x, whose range windows include both ends, and 3.x,
whose windows are left-open), for evaluation times on a grid of `step`:

- CPU: `rate(counter[step + 1ms])` at T covers the samples in [T-step, T]: with samples on the
  grid that is exactly (c(T) - c(T-step)) / step, the average over the step ending at T
  (Prometheus extrapolates the 1 ms, which cancels out).
- Memory: `max_over_time(gauge[step - 1ms])` at T covers (T-step, T]: consecutive steps
  partition time, so a peak between two evaluation times is in exactly one of them.
- Spec (kube-state-metrics): `last_over_time(gauge[spec_step - 1ms])` at T: the value last seen
  in the spec step ending at T, so a deleted pod stops at its last scrape instead of lingering for
  the 5-minute lookback.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from capplan.promql import label_matcher

MAX_POINTS_PER_SERIES = 11_000  # Prometheus refuses (end-start)/step + 1 above this
REAL_CONTAINERS = 'container!="",container!="POD"'
USAGE_BY = "namespace, pod, container, node"


@dataclass(frozen=True)
class Metric:
    """One source metric: the query template and what capplan lacks without it."""

    key: str            # the metric name (also the high-water-mark key)
    kind: str           # "usage", "spec" or "node" (node metrics have no namespace label)
    template: str       # PromQL with {sel} (label selector body) and {w} (window)
    lacks: str          # what is missing when the metric is absent
    required: bool = False
    labels: tuple[str, ...] | None = None   # the answer's label columns; None = keep the raw answer
    aliases: tuple[tuple[str, str], ...] = ()  # label -> column renames (a label named "value")


def _labels(by: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in by.split(","))


def _spec(name: str, by: str, lacks: str, extra: str = "", post: str = "", kind: str = "spec") -> Metric:
    sel = "{" + (extra + ("," if extra else "")) + "{sel}}"
    aliases = (("value", "taint_value"),) if "value" in _labels(by) else ()
    return Metric(name, kind, f"max by ({by}) (last_over_time({name}{sel}[{{w}}])){post}", lacks,
                  labels=_labels(by), aliases=aliases)


METRICS: tuple[Metric, ...] = (
    Metric("container_cpu_usage_seconds_total", "usage",
           f"sum by ({USAGE_BY}) (rate(container_cpu_usage_seconds_total{{{REAL_CONTAINERS},{{sel}}}}[{{w}}]))",
           "CPU usage (no CPU percentiles, recommendations or forecasts)", required=True, labels=_labels(USAGE_BY)),
    Metric("container_memory_working_set_bytes", "usage",
           f"max by ({USAGE_BY}) (max_over_time(container_memory_working_set_bytes{{{REAL_CONTAINERS},{{sel}}}}[{{w}}]))",
           "memory usage (no memory percentiles, eviction exposure or recommendations)", required=True,
           labels=_labels(USAGE_BY)),
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
    # all label_* labels are wanted, so no aggregation here
    Metric("kube_node_labels", "node", "last_over_time(kube_node_labels{{sel}}[{w}])", "node labels (instance types, zones)"),
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


def selector(namespaces: list[str] | None) -> str:
    """The label-selector body restricting a namespaced metric to `namespaces` (escaped)."""
    return label_matcher("namespace", namespaces) if namespaces else ""


def render(metric: Metric, namespaces: list[str] | None, window_ms: int) -> str:
    """The PromQL for `metric`, restricted to `namespaces` (None = all), window in ms."""
    sel = "" if metric.kind == "node" else selector(namespaces)
    text = metric.template.replace("{w}", f"{window_ms}ms")
    if not sel:
        return text.replace(",{sel}", "").replace("{sel}", "")
    return text.replace("{sel}", sel)


def usage_window_ms(metric: Metric, step_seconds: int, scrape_seconds: int | None = None) -> int:
    """CPU: step + 1 ms (both grid samples); memory: step - 1 ms (left-open step).

    When cAdvisor is scraped less often than the step, the windows widen so each still holds
    enough samples: CPU to two scrape intervals (a rate needs two samples), memory to one."""
    scrape = scrape_seconds or 0
    if metric.key == "container_cpu_usage_seconds_total":
        return max(step_seconds, 2 * scrape if scrape > step_seconds else 0) * 1000 + 1
    return max(step_seconds, scrape) * 1000 - 1


# --- time grid and chunks ---------------------------------------------------------------------


def utc_naive(dt: datetime) -> datetime:
    """Naive UTC (the store's convention)."""
    return dt.astimezone(timezone.utc).replace(tzinfo=None) if dt.tzinfo else dt


def epoch(dt: datetime) -> float:
    """Epoch seconds of a naive-UTC or aware datetime."""
    return (dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt).timestamp()


def from_epoch(seconds: float) -> datetime:
    """Naive UTC datetime from epoch seconds."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc).replace(tzinfo=None)


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
