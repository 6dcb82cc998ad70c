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

Pure functions over frames do the work; `load_eviction_inputs` reads the store, and
`eviction_analysis` ties the two together for the CLI and the report.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import polars as pl

from capplan import store
from capplan.analysis.pods import pod_resources
from capplan.analysis.qos import (
    BUILTIN_PRIORITY_CLASSES, container_oom_scores, is_critical_pod, is_node_critical_pod, qos_class,
)
from capplan.errors import BadInputError, NoDataError, UsageError
from capplan.quantity import format_bytes, parse_memory_bytes

if TYPE_CHECKING:  # the report imports this module; avoid a cycle at import time
    from capplan.report import ReportOptions, Section

USAGE_BASES = ("peak", "p95", "latest")
DEFAULT_EVICTION_HARD = "100Mi"
DEFAULT_EVICTION_SOFT = "10%"
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
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
    "worst_moment",
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


# --- priorities ----------------------------------------------------------------------------

@dataclass
class PriorityMap:
    """PriorityClass name -> value, and the globalDefault value for pods without a class."""

    values: dict[str, int] = field(default_factory=lambda: dict(BUILTIN_PRIORITY_CLASSES))
    global_default: int | None = None

    def resolve(self, priority_class: str | None) -> tuple[int, bool]:
        """(priority, known) of a pod's class: the admission plugin sets spec.priority from the
        class, or the globalDefault class, or 0 (plugin/pkg/admission/priority)."""
        if not priority_class:
            return (self.global_default if self.global_default is not None else 0), True
        if priority_class in self.values:
            return self.values[priority_class], True
        return 0, False


def _int32(value: object, what: str, allow_text: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or (isinstance(value, str) and not allow_text):
        raise BadInputError(f"{what}: priority value {value!r} is not an integer")
    try:
        number = int(value)
    except ValueError:
        raise BadInputError(f"{what}: priority value {value!r} is not an integer") from None
    if not INT32_MIN <= number <= INT32_MAX:
        raise BadInputError(f"{what}: priority value {number} is outside int32")
    return number


def parse_priority_classes(text: str, source: str = "priority classes") -> PriorityMap:
    """Parse `kubectl get priorityclasses -o json` (a List with `items`), one PriorityClass
    object, or a JSON list of them, into a PriorityMap (built-in classes included)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInputError(f"{source}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if isinstance(data, dict) and "items" in data:
        items = data["items"]
    elif isinstance(data, dict):
        items = [data]
    else:
        items = data
    if not isinstance(items, list):
        raise BadInputError(f"{source}: expected a PriorityClass list (kubectl get priorityclasses -o json)")
    result = PriorityMap()
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("metadata"), dict) or "value" not in item:
            raise BadInputError(f"{source}: item {index} is not a PriorityClass (needs metadata.name and value)")
        name = item["metadata"].get("name")
        if not isinstance(name, str) or not name:
            raise BadInputError(f"{source}: item {index} has no metadata.name")
        value = _int32(item["value"], f"{source}: {name}")
        result.values[name] = value
        if item.get("globalDefault") is True:
            result.global_default = value
    return result


def load_priority_map(path: str | Path | None = None, overrides: list[str] | None = None) -> PriorityMap:
    """Priorities from a `kubectl get priorityclasses -o json` file and NAME=VALUE overrides
    (which win). Bad input raises BadInputError (exit 4)."""
    result = PriorityMap()
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as exc:
            raise BadInputError(f"cannot read priority classes file {p}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise BadInputError(f"priority classes file {p} is not text (expected JSON)") from None
        result = parse_priority_classes(text, str(p))
    for item in overrides or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise BadInputError(f"--priority {item!r}: expected NAME=VALUE, e.g. web-critical=1000")
        result.values[name.strip()] = _int32(value.strip(), f"--priority {item!r}", allow_text=True)
    return result


# --- thresholds ----------------------------------------------------------------------------

def threshold_bytes(spec: str, capacity_bytes: float) -> int:
    """An eviction threshold (`100Mi`, `1Gi`, `5%`) in bytes for a node of that capacity
    (pkg/kubelet/eviction/api `GetThresholdQuantity`: a percentage is of capacity)."""
    text = str(spec).strip()
    if text.endswith("%"):
        try:
            share = float(text[:-1])
        except ValueError:
            raise BadInputError(f"eviction threshold {spec!r}: not a quantity or percentage") from None
        if not 0 <= share <= 100:
            raise BadInputError(f"eviction threshold {spec!r}: a percentage must be within 0..100")
        # GetThresholdQuantity: int64(float64(capacity.Value()) * float64(percentage))
        return int(float(capacity_bytes) * share / 100.0)
    try:
        value = parse_memory_bytes(text)
    except BadInputError as exc:
        raise BadInputError(f"eviction threshold {spec!r}: {exc}") from None
    if value < 0:
        raise BadInputError(f"eviction threshold {spec!r} is negative")
    return value


def check_threshold(spec: str) -> str:
    """Validate a threshold spec early (exit 4 on a bad one)."""
    threshold_bytes(spec, 1)
    return spec


# --- pods: QoS, priority, requests ---------------------------------------------------------

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
    cols = ["cpu_request_cores", "cpu_limit_cores", "memory_request_bytes", "memory_limit_bytes"]
    rows = []
    for (namespace, pod), group in containers.group_by(["namespace", "pod"], maintain_order=True):
        first = group.row(0, named=True)
        priority_class = first.get("priority_class")
        priority, known = priorities.resolve(priority_class)
        qos = qos_class(group.select(cols).to_dicts())
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


# --- nodes ---------------------------------------------------------------------------------

def node_exposure(moments: pl.DataFrame, nodes: pl.DataFrame, hard: str = DEFAULT_EVICTION_HARD,
                  soft: str = DEFAULT_EVICTION_SOFT) -> pl.DataFrame:
    """Per node: its worst moment (largest working set), memory.available then, and the share of
    the window's samples with memory.available under the hard threshold and under the soft margin.

    `moments`: node, ts, working_set_bytes (queries/node_memory_moments.sql).
    `nodes`: node, memory_capacity_bytes.
    """
    caps = nodes.select("node", pl.col("memory_capacity_bytes").cast(pl.Int64)).filter(
        pl.col("memory_capacity_bytes").is_not_null() & (pl.col("memory_capacity_bytes") > 0))
    thresholds = caps.with_columns(
        pl.col("memory_capacity_bytes").map_elements(lambda c: threshold_bytes(hard, c), return_dtype=pl.Int64)
        .alias("hard_threshold_bytes"),
        pl.col("memory_capacity_bytes").map_elements(lambda c: threshold_bytes(soft, c), return_dtype=pl.Int64)
        .alias("soft_threshold_bytes"),
    )
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
    out = thresholds.join(worst, on="node", how="inner").join(shares, on="node", how="left").with_columns(
        (pl.col("working_set_at_worst_bytes") / pl.col("memory_capacity_bytes")).alias("peak_usage_ratio"),
        (pl.col("available_at_worst_bytes") < pl.col("hard_threshold_bytes")).alias("under_pressure"),
        (pl.col("hard_threshold_bytes") - pl.col("available_at_worst_bytes")).alias("need_bytes"),
    )
    return out.sort("node")


# --- the whole analysis --------------------------------------------------------------------

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
class EvictionInputs:
    """What the analysis reads from the store."""

    start: datetime
    end: datetime
    nodes: pl.DataFrame        # node, memory_capacity_bytes, ...
    containers: pl.DataFrame   # window_containers.sql
    moments: pl.DataFrame      # node, ts, working_set_bytes
    pod_stats: pl.DataFrame    # node, namespace, pod, working_set_{p95,peak,latest}_bytes, last_seen
    restarts: pl.DataFrame     # namespace, pod, restarts, oom_kills, oom_killed_containers
    pod_moments: pl.DataFrame = field(default_factory=pl.DataFrame)  # node, ts, namespace, pod, working_set_bytes


def load_eviction_inputs(con: duckdb.DuckDBPyConnection, window: timedelta, hard: str = DEFAULT_EVICTION_HARD,
                         nodes: list[str] | None = None) -> EvictionInputs:
    """Read what the eviction analysis needs over the window ending at the newest sample."""
    start, end = store.analysis_window(con, window)
    params = {"start": start, "end": end}
    node_frame = store.query(con, "window_nodes", params)
    moments = store.query(con, "node_memory_moments", params)
    if nodes:
        node_frame = node_frame.filter(pl.col("node").is_in(nodes))
        moments = moments.filter(pl.col("node").is_in(nodes))
    inputs = EvictionInputs(
        start=start, end=end, nodes=node_frame, containers=store.query(con, "window_containers", params),
        moments=moments, pod_stats=store.query(con, "pod_memory_stats", params),
        restarts=store.query(con, "restarts_in_window", params),
    )
    # The pods' working sets at the moments that matter: each node's worst and latest moment,
    # and every moment under the hard threshold (for the per-pod exposure).
    exposure = node_exposure(moments, node_frame, hard, DEFAULT_EVICTION_SOFT)
    m = moments.join(exposure.select("node", "memory_capacity_bytes", "hard_threshold_bytes"), on="node")
    wanted = pl.concat([
        m.filter((pl.col("memory_capacity_bytes") - pl.col("working_set_bytes")) < pl.col("hard_threshold_bytes"))
        .select("node", "ts"),
        exposure.select("node", pl.col("worst_moment").alias("ts")),
        moments.group_by("node").agg(pl.col("ts").max()),
    ]).unique()
    if wanted.height:
        lo, hi = wanted["ts"].min(), wanted["ts"].max()
        inputs.pod_moments = store.query(con, "pod_memory_at_moments", {
            "nodes": wanted["node"].to_list(), "ts": wanted["ts"].to_list(), "start": lo, "end": hi})
    else:
        inputs.pod_moments = pl.DataFrame(schema={"node": pl.Utf8, "ts": pl.Datetime("us"), "namespace": pl.Utf8,
                                                  "pod": pl.Utf8, "working_set_bytes": pl.Int64})
    return inputs


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


def eviction_analysis(inputs: EvictionInputs, options: EvictionOptions) -> EvictionResult:
    """The ranked list per node with cumulative memory freed and the relief mark, node and pod
    exposure, per-container oom_score_adj and advice (pure: frames in, frames out)."""
    if options.usage not in USAGE_BASES:
        raise UsageError(f"--usage must be one of {', '.join(USAGE_BASES)}, not {options.usage!r}")
    specs = pod_specs(inputs.containers, options.priorities)
    capacities = {r["node"]: int(r["memory_capacity_bytes"]) for r in inputs.nodes.iter_rows(named=True)
                  if r["memory_capacity_bytes"]}
    # Capacity for oom_score_adj is that of the node the pod ran on (usage), else its spec node.
    ran_on = inputs.pod_stats.sort("last_seen").group_by("namespace", "pod").agg(pl.col("node").last().alias("ran_on"))
    specs = specs.join(ran_on, on=["namespace", "pod"], how="left").with_columns(
        pl.coalesce("ran_on", "node").alias("node")).drop("ran_on")
    containers, pod_scores = pod_oom_scores(inputs.containers, specs, capacities)
    specs = specs.join(pod_scores, on=["namespace", "pod"], how="left")

    exposure = node_exposure(inputs.moments, inputs.nodes, options.eviction_hard, options.eviction_soft)
    pm = inputs.pod_moments
    at_worst = pm.join(exposure.select("node", pl.col("worst_moment").alias("ts")), on=["node", "ts"]).select(
        "node", "namespace", "pod", pl.col("working_set_bytes").alias("usage_at_worst_bytes"))
    latest_ts = inputs.moments.group_by("node").agg(pl.col("ts").max())
    at_latest = pm.join(latest_ts, on=["node", "ts"]).select(
        "node", "namespace", "pod", pl.col("working_set_bytes").alias("usage_latest_bytes"))

    # The population ranked: the pods on the node at its worst moment (peak) or now (p95, latest).
    if options.usage == "peak":
        population = at_worst.with_columns(pl.col("usage_at_worst_bytes").alias("memory_usage_bytes"))
    else:
        population = at_latest.join(at_worst, on=["node", "namespace", "pod"], how="left")
        if options.usage == "latest":
            population = population.with_columns(pl.col("usage_latest_bytes").alias("memory_usage_bytes"))
        else:
            population = population.join(
                inputs.pod_stats.select("node", "namespace", "pod", "working_set_p95_bytes"),
                on=["node", "namespace", "pod"], how="left",
            ).with_columns(pl.col("working_set_p95_bytes").round(0).cast(pl.Int64).alias("memory_usage_bytes"))
    population = population.select("node", "namespace", "pod", "memory_usage_bytes", "usage_at_worst_bytes")
    frame = population.join(specs.drop("node"), on=["namespace", "pod"], how="left").with_columns(
        pl.col("priority").fill_null(0),
        pl.col("memory_request_bytes").fill_null(0),
        (~pl.col("critical").fill_null(False)).alias("evictable"),
    )
    ranked = rank_memory_pressure(frame, ["node"])
    need = exposure.select("node", "need_bytes")
    ranked = relieve(ranked, need, ["node"], freed_column="usage_at_worst_bytes")

    # exposure per pod and its restarts
    needs = pressure_needs(inputs.moments, exposure)
    pod_exp = pod_exposure(pm, needs, specs)
    pressure_moments = needs.group_by("node").agg(pl.len().cast(pl.UInt32).alias("pressure_moments"))
    ranked = ranked.join(pod_exp, on=["node", "namespace", "pod"], how="left").join(
        pressure_moments, on="node", how="left").join(
        inputs.restarts.select("namespace", "pod", "restarts", "oom_kills"), on=["namespace", "pod"], how="left",
    ).with_columns(
        pl.col("pressure_moments").fill_null(0),
        pl.col("evicted_moments").fill_null(0),
        pl.col("restarts").fill_null(0),
        pl.col("oom_kills").fill_null(0),
    ).with_columns(
        pl.when(pl.col("pressure_moments") > 0).then(pl.col("evicted_moments") / pl.col("pressure_moments"))
        .otherwise(None).alias("evicted_share"),
        pl.lit(options.usage).alias("usage_basis"),
    ).join(exposure.select("node", "worst_moment"), on="node", how="left")

    relief = ranked.group_by("node").agg(
        pl.col("evicted_to_relieve").sum().cast(pl.Int64).alias("evictions_to_relieve"),
        pl.when(pl.col("evicted_to_relieve")).then(pl.col("usage_at_worst_bytes").fill_null(0)).otherwise(0).sum()
        .cast(pl.Int64).alias("freed_to_relieve_bytes"),
        pl.len().alias("pods_ranked"),
    )
    pods_at_worst = at_worst.group_by("node").agg(pl.len().cast(pl.Int64).alias("pods_at_worst"))
    nodes = exposure.join(relief, on="node", how="left").join(pods_at_worst, on="node", how="left").with_columns(
        pl.col("evictions_to_relieve").fill_null(0), pl.col("freed_to_relieve_bytes").fill_null(0),
        pl.col("pods_at_worst").fill_null(0),
        (~pl.col("under_pressure") | (pl.col("freed_to_relieve_bytes") >= pl.col("need_bytes"))).alias("relievable"),
    )

    ranked_all = ranked.sort("node", "rank").select(EVICTION_COLUMNS)
    qos = specs.select(QOS_COLUMNS).sort("namespace", "pod")
    # The relief and the advice are about whole nodes; the filters only choose what is shown.
    result = EvictionResult(pods=ranked_all, nodes=nodes.select(NODE_COLUMNS).sort("node"),
                            containers=containers.sort("node", "namespace", "pod", "container"), advice=pl.DataFrame(),
                            start=inputs.start, end=inputs.end, options=options, qos=qos, ranked_all=ranked_all)
    advice = advise(result, inputs.restarts, inputs.containers)
    in_namespaces = pl.col("namespace").is_in(options.namespaces) if options.namespaces else pl.lit(True)
    on_nodes = pl.col("node").is_in(options.nodes) if options.nodes else pl.lit(True)
    result.pods = ranked_all.filter(in_namespaces & on_nodes)
    result.containers = result.containers.filter(in_namespaces & on_nodes)
    result.qos = qos.filter(in_namespaces & on_nodes)
    result.nodes = result.nodes.filter(on_nodes)
    # node-wide advice (no namespace) stays with its node; pod advice follows both filters
    result.advice = advice.filter(on_nodes & (pl.col("namespace").is_null() | in_namespaces))
    return result


# --- advice --------------------------------------------------------------------------------

def _pct(ratio: float | None) -> str:
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
                f"node {node} reaches {_pct(n['peak_usage_ratio'])} memory at {n['worst_moment']:%Y-%m-%d %H:%M} "
                f"(memory.available {format_bytes(n['available_at_worst_bytes'])} < hard threshold "
                f"{format_bytes(n['hard_threshold_bytes'])}; {_pct(n['share_under_hard'])} of the window under it): {tail}")})
    for r in result.ranked_all.iter_rows(named=True):
        n = nodes.get(r["node"])
        if n is None:
            continue
        who = f"{r['namespace']}/{r['pod']}"
        if r["qos_class"] == "BestEffort" and (n["peak_usage_ratio"] or 0) >= BESTEFFORT_DANGER_RATIO:
            rows.append({"severity": "high" if n["under_pressure"] else "medium", "node": r["node"],
                         "namespace": r["namespace"], "pod": r["pod"], "advice": (
                f"BestEffort pod {who} sits on node {r['node']} that reaches {_pct(n['peak_usage_ratio'])} memory: "
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


# --- entry points --------------------------------------------------------------------------

def eviction_report(con: duckdb.DuckDBPyConnection, options: EvictionOptions | None = None) -> EvictionResult:
    """`capplan eviction`: load from the store and analyse."""
    options = options or EvictionOptions()
    check_threshold(options.eviction_hard)
    check_threshold(options.eviction_soft)
    inputs = load_eviction_inputs(con, options.window, options.eviction_hard)
    if inputs.moments.is_empty():
        raise NoDataError("no memory usage with a known node in the window: nothing to rank")
    return eviction_analysis(inputs, options)


def node_note(result: EvictionResult) -> str:
    """A few sentences explaining the nodes under pressure (or that none is)."""
    under = result.nodes.filter(pl.col("under_pressure"))
    hard = result.options.eviction_hard
    if under.is_empty():
        top = result.nodes.sort("peak_usage_ratio", descending=True).head(1)
        worst = (f"; the fullest is {top['node'][0]} at {_pct(top['peak_usage_ratio'][0])} of its memory"
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
            f"({_pct(n['peak_usage_ratio'])}), leaving {format_bytes(n['available_at_worst_bytes'])} < {hard} "
            f"(hard eviction threshold); memory.available is under it in {_pct(n['share_under_hard'])} of the window's "
            f"{n['memory_moments']} samples, and under the soft margin ({result.options.eviction_soft}) in "
            f"{_pct(n['share_under_soft'])}. "
            f"Pods above their requests go first, lower priority first, then the largest excess: the kubelet must "
            f"evict {n['evictions_to_relieve']} pod(s) to relieve it: {names or 'none can be evicted'}."
        )
    return " ".join(lines)


def report_section(con: duckdb.DuckDBPyConnection, options: "ReportOptions") -> list["Section"]:
    """Eviction exposure for `capplan report`: nodes, the first pods in line, and advice."""
    from capplan.report import Section

    try:
        result = eviction_report(con, EvictionOptions(window=options.window, namespaces=list(options.namespaces),
                                                      nodes=list(options.nodes)))
    except NoDataError:
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
                f"ranked as the kubelet's rankMemoryPressure does, at each node's worst moment; "
                f"cumulative_freed_bytes counts working set freed at that moment"),
    ]
    if result.advice.height:
        sections.append(Section("eviction_advice", "Eviction advice", result.advice.head(max(options.top, 1))))
    return sections
