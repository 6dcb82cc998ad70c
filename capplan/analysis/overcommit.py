"""Overcommit beyond the per-node table: how many more pods of a shape fit (`capplan fit`), the
cluster after losing a node (N-1), imbalance in the descheduler's terms, memory-pressure risk
per node, and the per-namespace view (`capplan namespaces`).

Every analysis is a pure function of frames (the node and pod frames of capplan.analysis.nodes
and capplan.analysis.pods); the `load_*` / `*_report` functions read the store and call them.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import polars as pl

from capplan import store
from capplan.analysis.nodes import (
    HARD_EVICTION_BYTES, cluster_summary, load_node_inputs, load_node_series, node_overcommit, parse_taints, ratio,
    snapshot_window,
)
from capplan.analysis.pods import CURRENT_TOLERANCE, load_current_containers, load_current_nodes, pod_resources
from capplan.errors import NoDataError, UsageError

if TYPE_CHECKING:
    from capplan.report import ReportOptions, Section

RESOURCES = ("cpu", "memory", "pods")
# Taint effects that keep a pod off a node at scheduling time: the scheduler's TaintToleration
# Filter only looks at these two (kubernetes/kubernetes pkg/scheduler/framework/plugins/
# tainttoleration/taint_toleration.go, `Filter`); PreferNoSchedule only scores.
BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
FULL_DAY_SHARE = 0.5  # a day with fewer samples than half the node's fullest day is a partial day
MIN_FIT_DAYS = 3


# --- taints and tolerations ---------------------------------------------------------------

@dataclass(frozen=True)
class Toleration:
    """A toleration as `--tolerate` gives it: KEY, KEY=VALUE, KEY:EFFECT, KEY=VALUE:EFFECT, or
    `*` (tolerates everything, like an empty key with operator Exists). Without a value it
    matches any value (operator Exists); without an effect, any effect."""

    key: str
    value: str | None = None
    effect: str | None = None

    def tolerates(self, taint: dict[str, Any]) -> bool:
        """Kubernetes' ToleratesTaint (k8s.io/api core/v1 toleration.go) for Exists/Equal."""
        if self.effect and self.effect != taint.get("effect"):
            return False
        if self.key == "*":
            return True
        if self.key != taint.get("key"):
            return False
        return self.value is None or self.value == (taint.get("value") or "")


def parse_toleration(text: str) -> Toleration:
    """Parse `--tolerate`; UsageError (exit 2) when empty or malformed."""
    raw = text.strip()
    if not raw:
        raise UsageError("--tolerate needs a taint key (KEY, KEY=VALUE, KEY:EFFECT or *)")
    effect = None
    if ":" in raw:
        raw, effect = raw.rsplit(":", 1)
        if effect not in ("NoSchedule", "NoExecute", "PreferNoSchedule"):
            raise UsageError(f"--tolerate {text!r}: effect must be NoSchedule, NoExecute or PreferNoSchedule")
    key, value = (raw.split("=", 1) + [None])[:2] if "=" in raw else (raw, None)
    if not key:
        raise UsageError(f"--tolerate {text!r}: the taint key is empty")
    return Toleration(key=key, value=value, effect=effect)


def _taint_text(taint: dict[str, Any]) -> str:
    value = taint.get("value")
    return f"{taint.get('key', '')}{'=' + value if value else ''}:{taint.get('effect', '')}"


def untolerated_taint(taints: list[dict[str, Any]], tolerations: Sequence[Toleration]) -> str | None:
    """The first NoSchedule/NoExecute taint no toleration matches (as `key=value:Effect`),
    or None when a pod with these tolerations may be scheduled on the node."""
    for taint in taints:
        if taint.get("effect") in BLOCKING_EFFECTS and not any(t.tolerates(taint) for t in tolerations):
            return _taint_text(taint)
    return None


def _blocking_set(taints: list[dict[str, Any]]) -> frozenset[tuple[str, str, str]]:
    return frozenset((t.get("key", ""), t.get("value") or "", t.get("effect", ""))
                     for t in taints if t.get("effect") in BLOCKING_EFFECTS)


# --- node state ---------------------------------------------------------------------------

def node_state(nodes: pl.DataFrame, pods: pl.DataFrame) -> pl.DataFrame:
    """Per node: allocatable, the sums of pod requests, pod count and the raw taints; the input
    of fit, N-1 and imbalance. `nodes` as queries/current_nodes.sql, `pods` as pod_resources()."""
    sums = pods.filter(pl.col("node").is_not_null()).group_by("node").agg(
        pl.len().cast(pl.Int64).alias("pods"),
        pl.col("cpu_request_cores").sum().alias("cpu_requests_cores"),
        pl.col("memory_request_bytes").sum().alias("memory_requests_bytes"),
    )
    taints = nodes["taints"] if "taints" in nodes.columns else pl.Series([None] * nodes.height, dtype=pl.Utf8)
    return nodes.select(
        "node",
        pl.col("cpu_allocatable_cores").cast(pl.Float64),
        pl.col("memory_allocatable_bytes").cast(pl.Float64),
        pl.col("pods_allocatable").cast(pl.Int64),
    ).with_columns(taints.alias("taints")).join(sums, on="node", how="left").with_columns(
        pl.col("pods").fill_null(0),
        pl.col("cpu_requests_cores", "memory_requests_bytes").fill_null(0.0),
    ).sort("node")


def _millicores(cores: float) -> int:
    # The scheduler compares CPU in millicores (resource.Quantity.MilliValue); sums of millicore
    # requests are whole numbers up to float noise.
    return int(round(cores * 1000))


@dataclass
class Snapshot:
    """Nodes and pods at the end of the window (no usage)."""

    nodes: pl.DataFrame
    pods: pl.DataFrame
    at: datetime


def load_snapshot(con: duckdb.DuckDBPyConnection, window: timedelta = timedelta(days=14)) -> Snapshot:
    """Nodes and effective pod resources at the end of the window (or at the newest node
    observation of a spec-only store). NoDataError without nodes."""
    _, end = snapshot_window(con, window)
    nodes = load_current_nodes(con, end)
    if nodes.is_empty():
        raise NoDataError(f"no nodes were observed at {end:%Y-%m-%d %H:%M} UTC, the end of the window")
    return Snapshot(nodes=nodes, pods=pod_resources(load_current_containers(con, end)), at=end)


# --- fit ----------------------------------------------------------------------------------

FIT_SCHEMA = {
    "node": pl.Utf8, "fits": pl.Int64, "limited_by": pl.Utf8, "fits_by_cpu": pl.Int64, "fits_by_memory": pl.Int64,
    "fits_by_pods": pl.Int64, "cpu_free_cores": pl.Float64, "memory_free_bytes": pl.Float64, "pods_free": pl.Int64,
    "excluded_by": pl.Utf8,
}


def fit_pods(state: pl.DataFrame, cpu_cores: float, memory_bytes: float,
             tolerations: Sequence[Toleration] = (), replicas: int | None = None) -> pl.DataFrame:
    """How many more pods requesting `cpu_cores` and `memory_bytes` fit on each node, by
    requests and allocatable pods, as the scheduler's NodeResourcesFit filter counts
    (requested + pod <= allocatable, cpu in millicores, memory in bytes). A node with a
    NoSchedule/NoExecute taint that no toleration matches takes none (`excluded_by` names it).

    `limited_by` is the resource giving the smallest count (cpu, then memory, then pods on a
    tie). A resource the shape does not request does not limit (fits_by_* is empty).
    With `replicas`, `placed` says how many of them a first-fit placement (nodes in name order,
    each replica to the first node with room) puts on each node. The last row is `TOTAL`.
    """
    if cpu_cores < 0 or memory_bytes < 0:
        raise UsageError("--cpu and --memory must not be negative")
    if replicas is not None and replicas < 0:
        raise UsageError("--replicas must not be negative")
    # a fractional millicore request counts as a whole one (Quantity.MilliValue rounds up)
    cpu_m = math.ceil(cpu_cores * 1000 - 1e-9)
    mem_b = math.ceil(memory_bytes)
    rows = []
    for r in state.iter_rows(named=True):
        free_m = _millicores(r["cpu_allocatable_cores"] or 0.0) - _millicores(r["cpu_requests_cores"])
        free_b = int(round(r["memory_allocatable_bytes"] or 0.0)) - int(round(r["memory_requests_bytes"]))
        # pods allocatable unknown (not collected): the pod count does not limit
        free_p = None if r["pods_allocatable"] is None else int(r["pods_allocatable"]) - int(r["pods"])
        by = {
            "cpu": max(free_m, 0) // cpu_m if cpu_m > 0 else None,
            "memory": max(free_b, 0) // mem_b if mem_b > 0 else None,
            "pods": None if free_p is None else max(free_p, 0),
        }
        blocked = untolerated_taint(parse_taints(r["taints"]), tolerations)
        bounded = [k for k in RESOURCES if by[k] is not None]
        if not bounded:
            raise UsageError("the pod shape requests nothing and pods allocatable is unknown: give --cpu or --memory")
        limiting = min(bounded, key=lambda k: by[k])
        rows.append({
            "node": r["node"], "fits": 0 if blocked else by[limiting], "limited_by": None if blocked else limiting,
            "fits_by_cpu": by["cpu"], "fits_by_memory": by["memory"], "fits_by_pods": by["pods"],
            "cpu_free_cores": free_m / 1000, "memory_free_bytes": float(free_b), "pods_free": free_p,
            "excluded_by": blocked,
        })
    out = pl.DataFrame(rows, schema=FIT_SCHEMA)
    if replicas is not None:
        left, placed = replicas, []
        for fits in out["fits"].to_list():
            take = min(fits, left)
            placed.append(take)
            left -= take
        out = out.with_columns(pl.Series("placed", placed, dtype=pl.Int64))
    counts = Counter(r for r in out.filter(pl.col("excluded_by").is_null())["limited_by"].to_list())
    total: dict[str, Any] = {
        "node": "TOTAL", "fits": int(out["fits"].sum()),
        "limited_by": counts.most_common(1)[0][0] if counts else None,
        "fits_by_cpu": None if cpu_m == 0 else int(out.filter(pl.col("excluded_by").is_null())["fits_by_cpu"].sum()),
        "fits_by_memory": None if mem_b == 0 else int(out.filter(pl.col("excluded_by").is_null())["fits_by_memory"].sum()),
        "fits_by_pods": _sum_or_none(out.filter(pl.col("excluded_by").is_null())["fits_by_pods"]),
        "cpu_free_cores": sum(max(_millicores(c), 0) for c in out["cpu_free_cores"].to_list()) / 1000,
        "memory_free_bytes": float(out["memory_free_bytes"].clip(lower_bound=0).sum()),
        "pods_free": _sum_or_none(out["pods_free"].clip(lower_bound=0)),
        "excluded_by": f"{out['excluded_by'].is_not_null().sum()} nodes" if out["excluded_by"].is_not_null().any() else None,
    }
    if replicas is not None:
        total["placed"] = int(out["placed"].sum())
    return pl.concat([out, pl.DataFrame([total], schema=out.schema)])


def _sum_or_none(column: pl.Series) -> int | None:
    """Sum of a count column; None (unbounded) when any value is."""
    return None if column.null_count() else int(column.sum())


def fit_summary(table: pl.DataFrame, replicas: int) -> str:
    """One line: whether `replicas` fit, and where (from fit_pods' `placed`), and whether the
    namespace's ResourceQuota admits them (from fit_report's `quota_fits`)."""
    placed = table.filter((pl.col("node") != "TOTAL") & (pl.col("placed") > 0))
    where = ", ".join(f"{r['node']} x{r['placed']}" for r in placed.iter_rows(named=True))
    got = int(placed["placed"].sum()) if placed.height else 0
    if got >= replicas:
        text = f"all {replicas} replicas fit: {where}" if replicas else "0 replicas asked"
    else:
        text = f"only {got} of {replicas} replicas fit" + (f": {where}" if where else "")
    if "quota_fits" in table.columns:
        total = table.filter(pl.col("node") == "TOTAL").row(0, named=True)
        if total["quota_fits"] is not None and total["quota_fits"] < replicas:
            text += f"; but the ResourceQuota admits only {total['quota_fits']} ({total['quota_limited_by']})"
    return text


def quota_room(namespace_row: dict[str, Any] | None, cpu_cores: float, memory_bytes: float) -> tuple[int | None, str | None]:
    """How many more pods of the shape the namespace's ResourceQuota admits (requests.cpu,
    requests.memory, pods: hard - used, over the pod's request), and the quota resource that
    binds; (None, None) without such a quota. `namespace_row` is a row of namespace_table.
    limits.* quotas are not checked: the shape has no limits (a LimitRange may give it some)."""
    if namespace_row is None:
        return None, None
    room: dict[str, int] = {}
    cpu_m = math.ceil(cpu_cores * 1000 - 1e-9)
    hard_cpu = namespace_row.get("quota_cpu_requests_cores")
    if hard_cpu is not None and cpu_m > 0:
        room["requests.cpu"] = max(_millicores(hard_cpu) - _millicores(namespace_row["cpu_requests_cores"]), 0) // cpu_m
    hard_mem = namespace_row.get("quota_memory_requests_bytes")
    if hard_mem is not None and memory_bytes > 0:
        room["requests.memory"] = int(max(hard_mem - namespace_row["memory_requests_bytes"], 0) // math.ceil(memory_bytes))
    hard_pods = namespace_row.get("quota_pods")
    if hard_pods is not None:
        room["pods"] = max(int(hard_pods) - int(namespace_row["pods"]), 0)
    if not room:
        return None, None
    binding = min(room, key=lambda k: room[k])
    return room[binding], binding


def fit_report(con: duckdb.DuckDBPyConnection, cpu_cores: float, memory_bytes: float, *,
               tolerations: Sequence[Toleration] = (), replicas: int | None = None,
               window: timedelta = timedelta(days=14), nodes: list[str] | None = None,
               namespace: str | None = None) -> pl.DataFrame:
    """`capplan fit`: fit_pods on the nodes and pods at the end of the window. With
    `namespace`, the TOTAL row also says how many its ResourceQuota admits (quota_fits,
    quota_limited_by; empty when the namespace has no such quota)."""
    snap = load_snapshot(con, window)
    state = node_state(snap.nodes, snap.pods)
    if nodes:
        state = state.filter(pl.col("node").is_in(nodes))
        if state.is_empty():
            raise NoDataError(f"none of the nodes {', '.join(nodes)} is in the store")
    table = fit_pods(state, cpu_cores, memory_bytes, tolerations, replicas)
    if namespace is None:
        return table
    quotas = store.query(con, "current_resource_quotas", {"at": snap.at, "tolerance": CURRENT_TOLERANCE})
    ns = namespace_table(snap.pods, None, quotas).filter(pl.col("namespace") == namespace)
    fits, binding = quota_room(ns.row(0, named=True) if ns.height else None, cpu_cores, memory_bytes)
    is_total = pl.col("node") == "TOTAL"
    return table.with_columns(
        pl.when(is_total).then(pl.lit(fits, dtype=pl.Int64)).otherwise(None).alias("quota_fits"),
        pl.when(is_total).then(pl.lit(binding, dtype=pl.Utf8)).otherwise(None).alias("quota_limited_by"),
    )


# --- N-1 ----------------------------------------------------------------------------------

def _is_daemonset(pods: pl.DataFrame) -> pl.Expr:
    kind = "workload_kind" if "workload_kind" in pods.columns else "owner_kind"
    if kind not in pods.columns:
        return pl.lit(False)
    return pl.col(kind).fill_null("") == "DaemonSet"


def n_minus_1(state: pl.DataFrame, pods: pl.DataFrame) -> pl.DataFrame:
    """Per resource: does the cluster still hold all requests after losing its largest node
    (by that resource's allocatable)? The DaemonSet pods of the lost node go with it and need
    no room; everything else must fit in the allocatable of the remaining nodes (a total,
    ignoring fragmentation and taints: see node_loss for the pod-by-pod placement)."""
    ds = pods.filter(pl.col("node").is_not_null() & _is_daemonset(pods)).group_by("node").agg(
        pl.len().cast(pl.Float64).alias("ds_pods"),
        pl.col("cpu_request_cores").sum().alias("ds_cpu"),
        pl.col("memory_request_bytes").sum().alias("ds_memory"),
    )
    s = state.join(ds, on="node", how="left").with_columns(pl.col("ds_pods", "ds_cpu", "ds_memory").fill_null(0.0))
    rows = []
    for resource, unit, alloc_col, req_col, ds_col in (
        ("cpu", "cores", "cpu_allocatable_cores", "cpu_requests_cores", "ds_cpu"),
        ("memory", "bytes", "memory_allocatable_bytes", "memory_requests_bytes", "ds_memory"),
        ("pods", "pods", "pods_allocatable", "pods", "ds_pods"),
    ):
        if s.is_empty():
            continue
        allocatable = float(s[alloc_col].cast(pl.Float64).sum())
        requests = float(s[req_col].cast(pl.Float64).sum())
        largest = s.sort([alloc_col, "node"], descending=[True, False]).row(0, named=True)
        after = allocatable - float(largest[alloc_col])
        need = requests - float(largest[ds_col])
        digits = 9 if resource == "cpu" else 0  # sums of millicores / bytes: no float noise
        allocatable, requests, after, need = (round(v, digits) for v in (allocatable, requests, after, need))
        rows.append({
            "resource": resource, "unit": unit, "allocatable": allocatable, "requests": requests,
            "largest_node": largest["node"], "largest_allocatable": float(largest[alloc_col]),
            "allocatable_without_largest": after, "requests_to_hold": need,
            "holds": need <= after, "spare_after": round(after - need, digits),
            "request_ratio_after": need / after if after > 0 else None,
        })
    return pl.DataFrame(rows, schema={
        "resource": pl.Utf8, "unit": pl.Utf8, "allocatable": pl.Float64, "requests": pl.Float64,
        "largest_node": pl.Utf8, "largest_allocatable": pl.Float64, "allocatable_without_largest": pl.Float64,
        "requests_to_hold": pl.Float64, "holds": pl.Boolean, "spare_after": pl.Float64,
        "request_ratio_after": pl.Float64,
    })


def node_loss(state: pl.DataFrame, pods: pl.DataFrame) -> pl.DataFrame:
    """For each node: if it were lost, could its pods (DaemonSet pods excluded: they go with
    it) be placed on the other nodes' free requests, first-fit, largest first? A pod may only
    move to a node whose blocking taints it already tolerated where it ran (tolerations are not
    stored, so a pod from an untainted node only goes to untainted nodes)."""
    names = state["node"].to_list()
    index = {n: i for i, n in enumerate(names)}
    free_cpu = np.array([_millicores(a) - _millicores(r) for a, r in
                         zip(state["cpu_allocatable_cores"].to_list(), state["cpu_requests_cores"].to_list())], dtype=np.int64)
    free_mem = (state["memory_allocatable_bytes"] - state["memory_requests_bytes"]).round(0).to_numpy().astype(np.int64)
    free_pods = (state["pods_allocatable"] - state["pods"]).to_numpy().astype(np.int64)
    taint_sets = [_blocking_set(parse_taints(t)) for t in state["taints"].to_list()]
    movable = pods.filter(pl.col("node").is_in(names) & ~_is_daemonset(pods)).select(
        "node", (pl.col("cpu_request_cores") * 1000).round(0).cast(pl.Int64).alias("cpu_m"),
        pl.col("memory_request_bytes").round(0).cast(pl.Int64).alias("mem_b"),
    ).sort(["node", "cpu_m", "mem_b"], descending=[False, True, True])
    by_node = {n: g for (n,), g in movable.group_by(["node"], maintain_order=True)}
    rows = []
    for name in names:
        i = index[name]
        group = by_node.get(name)
        allowed = np.array([ts <= taint_sets[i] for ts in taint_sets]) if any(taint_sets) else np.ones(len(names), bool)
        allowed[i] = False
        fc, fm, fp = free_cpu.copy(), free_mem.copy(), free_pods.copy()
        unplaced = 0
        count = cpu = mem = 0
        if group is not None:
            for c, m in zip(group["cpu_m"].to_list(), group["mem_b"].to_list()):
                count += 1
                cpu += c
                mem += m
                ok = allowed & (fc >= c) & (fm >= m) & (fp >= 1)
                j = int(np.argmax(ok))
                if not ok[j]:
                    unplaced += 1
                    continue
                fc[j] -= c
                fm[j] -= m
                fp[j] -= 1
        rows.append({"node": name, "pods_to_move": count, "cpu_to_move_cores": cpu / 1000,
                     "memory_to_move_bytes": float(mem), "unplaceable_pods": unplaced, "survives": unplaced == 0})
    return pl.DataFrame(rows, schema={
        "node": pl.Utf8, "pods_to_move": pl.Int64, "cpu_to_move_cores": pl.Float64,
        "memory_to_move_bytes": pl.Float64, "unplaceable_pods": pl.Int64, "survives": pl.Boolean,
    })


def cluster_report(con: duckdb.DuckDBPyConnection, window: timedelta = timedelta(days=14)) -> pl.DataFrame:
    """`capplan cluster`: cluster totals per resource (cluster_summary) with the N-1 check."""
    inputs = load_node_inputs(con, window)
    summary = cluster_summary(node_overcommit(inputs.nodes, inputs.pods, inputs.usage))
    n1 = n_minus_1(node_state(inputs.nodes, inputs.pods), inputs.pods).select(
        "resource", "largest_node", "allocatable_without_largest", "requests_to_hold",
        pl.col("holds").alias("n1_holds"), pl.col("spare_after").alias("n1_spare"),
    )
    return summary.join(n1, on="resource", how="left", maintain_order="left")


# --- imbalance ----------------------------------------------------------------------------

def imbalance(state: pl.DataFrame, low: float = 20.0, high: float = 50.0) -> pl.DataFrame:
    """Each node's requested share of allocatable (percent) for cpu, memory and pods, and its
    class in the descheduler's LowNodeUtilization terms (kubernetes-sigs/descheduler
    pkg/framework/plugins/nodeutilization/nodeutilization.go `isNodeBelowThreshold` /
    `isNodeAboveThreshold`): `under` when every resource is at or below `low` (the descheduler
    tests `threshold < usage` for none), else `over` when any is above `high`, else `ok`."""
    if not (0 <= low <= 100 and 0 <= high <= 100):
        raise UsageError("--low and --high are percentages between 0 and 100")
    if low > high:
        raise UsageError(f"--low ({low:g}) must not be above --high ({high:g})")
    pct = lambda num, den: pl.when(pl.col(den) > 0).then(pl.col(num).cast(pl.Float64) * 100.0 / pl.col(den)).otherwise(None)  # noqa: E731
    out = state.select(
        "node",
        pct("cpu_requests_cores", "cpu_allocatable_cores").alias("cpu_request_pct"),
        pct("memory_requests_bytes", "memory_allocatable_bytes").alias("memory_request_pct"),
        pct("pods", "pods_allocatable").alias("pods_pct"),
    )
    cols = ["cpu_request_pct", "memory_request_pct", "pods_pct"]
    # an unschedulable (cordoned) node is never `under` (lownodeutilization.go Balance); the
    # store knows cordoning by the taint the node controller adds for it
    cordoned = pl.Series([any(t.get("key") == UNSCHEDULABLE_TAINT for t in parse_taints(x))
                          for x in state["taints"].to_list()], dtype=pl.Boolean) if "taints" in state.columns \
        else pl.Series([False] * state.height, dtype=pl.Boolean)
    out = out.with_columns(cordoned.alias("cordoned"))
    under = pl.all_horizontal([pl.col(c).fill_null(0.0) <= low for c in cols]) & ~pl.col("cordoned")
    over = pl.any_horizontal([pl.col(c).fill_null(0.0) > high for c in cols])
    return out.with_columns(
        pl.when(under).then(pl.lit("under")).when(over).then(pl.lit("over")).otherwise(pl.lit("ok")).alias("utilization_class")
    ).drop("cordoned")


def imbalance_note(table: pl.DataFrame, low: float, high: float) -> str:
    """Whether LowNodeUtilization would move pods: it needs under- and over-utilized nodes, and
    not every node under (descheduler lownodeutilization.go `Balance`)."""
    n_under = int((table["utilization_class"] == "under").sum())
    n_over = int((table["utilization_class"] == "over").sum())
    acts = n_under > 0 and n_over > 0 and n_under < table.height
    return (f"{n_under} nodes under {low:g}% (all of cpu, memory, pods requested), {n_over} over {high:g}% "
            f"(any); the descheduler's LowNodeUtilization {'would' if acts else 'would not'} move pods")


# --- memory-pressure risk -----------------------------------------------------------------

PRESSURE_SCHEMA = {
    "node": pl.Utf8, "memory_allocatable_bytes": pl.Float64, "memory_threshold_bytes": pl.Float64,
    "points": pl.Int64, "breach_points": pl.Int64, "breach_share": pl.Float64, "days": pl.Int64,
    "breach_days": pl.Int64, "daily_max_p50_bytes": pl.Float64, "daily_max_max_bytes": pl.Float64,
    "gumbel_loc_bytes": pl.Float64, "gumbel_scale_bytes": pl.Float64, "breach_day_probability": pl.Float64,
    "daily_max_slope_bytes_per_day": pl.Float64,
}


def breach_day_probability(daily_max: np.ndarray, threshold: float) -> tuple[float | None, float | None, float | None]:
    """P(a day's maximum working set > threshold) from a Gumbel (GEV type I) fit of the daily
    maxima (scipy.stats.gumbel_r, maximum likelihood): (probability, loc, scale).

    Gumbel rather than the full GEV: two weeks give ~14 maxima, too few to estimate the GEV
    shape; the fitted tail still ranks a node whose peaks come near the threshold but rarely
    cross it above one whose peaks stay far below. With fewer than 3 days the share of days
    that breached is returned instead; with no spread, 1 or 0.
    """
    from scipy import stats

    x = np.asarray(daily_max, dtype=np.float64)
    if x.size == 0:
        return None, None, None
    if x.size < MIN_FIT_DAYS:
        return float((x > threshold).mean()), None, None
    scale_unit = max(float(np.abs(x).max()), 1.0)  # fit in units of the largest value: better conditioned
    z = x / scale_unit
    if float(z.std()) < 1e-9:
        return (1.0 if x[0] > threshold else 0.0), float(x[0]), 0.0
    loc, scale = stats.gumbel_r.fit(z)
    p = float(stats.gumbel_r.sf(threshold / scale_unit, loc=loc, scale=scale))
    return p, float(loc * scale_unit), float(scale * scale_unit)


def daily_memory(series: pl.DataFrame, nodes: pl.DataFrame,
                 eviction_bytes: float = HARD_EVICTION_BYTES) -> pl.DataFrame:
    """Per node and UTC day: samples, the maximum of the node's summed working set, and the
    samples in breach (working set > allocatable - eviction_bytes, allocatable from `nodes`).
    `series` as load_node_series (node, ts, memory_bytes)."""
    threshold = nodes.select("node", (pl.col("memory_allocatable_bytes").cast(pl.Float64) - eviction_bytes).alias("t"))
    return series.join(threshold, on="node", how="inner").group_by("node", pl.col("ts").dt.truncate("1d").alias("day")).agg(
        pl.len().cast(pl.Int64).alias("points"),
        pl.col("memory_bytes").max().cast(pl.Float64).alias("memory_max_bytes"),
        (pl.col("memory_bytes") > pl.col("t")).sum().cast(pl.Int64).alias("breach_points"),
    ).sort("node", "day")


def _slope_per_day(days: pl.Series, values: np.ndarray) -> float | None:
    if values.size < 2:
        return None
    x = (days.cast(pl.Datetime("us")).dt.epoch("s").to_numpy() / 86400.0).astype(np.float64)
    if float(np.ptp(x)) == 0.0:
        return None
    return float(np.polyfit(x, values, 1)[0])


def memory_pressure(daily: pl.DataFrame, nodes: pl.DataFrame,
                    eviction_bytes: float = HARD_EVICTION_BYTES) -> pl.DataFrame:
    """Memory overcommit risk per node, most at risk first.

    `daily` (daily_memory): node, day, points, memory_max_bytes, breach_points, where a breach
    is a timestamp at which the node's summed container working set exceeded allocatable minus
    the hard eviction threshold (memory.available<100Mi). breach_share is the share of the
    window's timestamps in breach; breach_day_probability the fitted chance that a (full) day's
    maximum exceeds the threshold. Partial days (fewer than half the samples of the node's
    fullest day) are left out of the fit, not out of the share.
    """
    rows = []
    alloc = dict(zip(nodes["node"].to_list(), nodes["memory_allocatable_bytes"].cast(pl.Float64).to_list()))
    for (name,), g in daily.sort("node", "day").group_by(["node"], maintain_order=True):
        if name not in alloc:
            continue
        threshold = alloc[name] - eviction_bytes
        full = g.filter(pl.col("points") >= FULL_DAY_SHARE * g["points"].max())
        maxima = full["memory_max_bytes"].cast(pl.Float64).to_numpy()
        p, loc, scale = breach_day_probability(maxima, threshold)
        points, breaches = int(g["points"].sum()), int(g["breach_points"].sum())
        rows.append({
            "node": name, "memory_allocatable_bytes": alloc[name], "memory_threshold_bytes": threshold,
            "points": points, "breach_points": breaches, "breach_share": breaches / points if points else None,
            "days": full.height, "breach_days": int((full["breach_points"] > 0).sum()),
            "daily_max_p50_bytes": float(np.median(maxima)) if maxima.size else None,
            "daily_max_max_bytes": float(maxima.max()) if maxima.size else None,
            "gumbel_loc_bytes": loc, "gumbel_scale_bytes": scale, "breach_day_probability": p,
            # the fit treats days alike; a leak or growth shows here (least squares over full days)
            "daily_max_slope_bytes_per_day": _slope_per_day(full["day"], maxima),
        })
    out = pl.DataFrame(rows, schema=PRESSURE_SCHEMA)
    return out.sort(["breach_day_probability", "breach_share", "node"], descending=[True, True, False], nulls_last=True)


def memory_pressure_report(con: duckdb.DuckDBPyConnection, window: timedelta = timedelta(days=14),
                           nodes: list[str] | None = None) -> pl.DataFrame:
    """memory_pressure over the window (empty for a store without usage samples)."""
    start, end = snapshot_window(con, window)
    if start is None:
        return pl.DataFrame(schema=PRESSURE_SCHEMA)
    current = load_current_nodes(con, end)
    out = memory_pressure(daily_memory(load_node_series(con, start, end), current), current)
    return out.filter(pl.col("node").is_in(nodes)) if nodes else out


# --- `capplan nodes` with the extra columns -----------------------------------------------

def nodes_overview(con: duckdb.DuckDBPyConnection, window: timedelta = timedelta(days=14),
                   nodes: list[str] | None = None, low: float = 20.0, high: float = 50.0) -> pl.DataFrame:
    """The per-node table of nodes_report, plus the descheduler class (`--low/--high`) and the
    memory-pressure risk columns."""

    inputs = load_node_inputs(con, window)
    table = node_overcommit(inputs.nodes, inputs.pods, inputs.usage)
    classes = imbalance(node_state(inputs.nodes, inputs.pods), low, high).select("node", "utilization_class")
    risk = memory_pressure(daily_memory(inputs.series, inputs.nodes), inputs.nodes)
    table = table.join(classes, on="node", how="left").join(
        risk.select("node", pl.col("breach_share").alias("memory_pressure_share"),
                    pl.col("breach_day_probability").alias("memory_pressure_day_probability")),
        on="node", how="left",
    ).sort("node")
    if nodes:
        table = table.filter(pl.col("node").is_in(nodes))
        if table.is_empty():
            raise NoDataError(f"none of the nodes {', '.join(nodes)} is in the store")
    return table


# --- namespaces ---------------------------------------------------------------------------

# ResourceQuota resource names -> capplan column; `cpu`/`memory` are the same as `requests.*`
# (kubernetes/kubernetes pkg/quota/v1/evaluator/core/pods.go counts both from PodRequests).
QUOTA_COLUMNS = {
    "requests.cpu": "quota_cpu_requests_cores", "cpu": "quota_cpu_requests_cores",
    "requests.memory": "quota_memory_requests_bytes", "memory": "quota_memory_requests_bytes",
    "limits.cpu": "quota_cpu_limits_cores", "limits.memory": "quota_memory_limits_bytes",
    "pods": "quota_pods",
}
NAMESPACE_USAGE_SCHEMA = {
    "namespace": pl.Utf8, "usage_points": pl.Int64, "cpu_usage_p95_cores": pl.Float64, "cpu_usage_max_cores": pl.Float64,
    "memory_usage_p95_bytes": pl.Float64, "memory_usage_max_bytes": pl.Float64,
}


def namespace_table(pods: pl.DataFrame, usage: pl.DataFrame | None = None,
                    quotas: pl.DataFrame | None = None) -> pl.DataFrame:
    """Per namespace: pods, requests, limits (unbounded when a running container has none),
    usage p95 of the namespace's summed usage, usage/requests ratios, and ResourceQuota hard
    values (the smallest where several quotas name a resource) with the share used."""
    usage = usage if usage is not None else pl.DataFrame(schema=NAMESPACE_USAGE_SCHEMA)
    agg = pods.group_by("namespace").agg(
        pl.len().cast(pl.Int64).alias("pods"),
        pl.col("cpu_request_cores").sum().alias("cpu_requests_cores"),
        pl.col("cpu_limit_cores").sum().alias("cpu_limits_set_cores"),
        pl.col("memory_request_bytes").sum().alias("memory_requests_bytes"),
        pl.col("memory_limit_bytes").sum().alias("memory_limits_set_bytes"),
        pl.col("cpu_unlimited_containers").sum().cast(pl.Int64).alias("cpu_unlimited_containers"),
        pl.col("memory_unlimited_containers").sum().cast(pl.Int64).alias("memory_unlimited_containers"),
    )
    # namespaces with usage in the window or a quota but no pod alive at its end still show
    names = [agg.select("namespace"), usage.select("namespace")]
    if quotas is not None and not quotas.is_empty():
        names.append(quotas.select("namespace"))
    names = pl.concat(names).unique()
    out = names.join(agg, on="namespace", how="left").join(usage, on="namespace", how="left").with_columns(
        pl.col("pods", "cpu_unlimited_containers", "memory_unlimited_containers").fill_null(0),
        pl.col("cpu_requests_cores", "cpu_limits_set_cores", "memory_requests_bytes", "memory_limits_set_bytes").fill_null(0.0),
    )
    out = out.with_columns(
        pl.when(pl.col("cpu_unlimited_containers") > 0).then(float("inf")).otherwise(pl.col("cpu_limits_set_cores")).alias("cpu_limits_cores"),
        pl.when(pl.col("memory_unlimited_containers") > 0).then(float("inf")).otherwise(pl.col("memory_limits_set_bytes")).alias("memory_limits_bytes"),
    )
    out = out.with_columns(
        ratio("cpu_usage_p95_cores", "cpu_requests_cores").alias("cpu_usage_request_ratio"),
        ratio("memory_usage_p95_bytes", "memory_requests_bytes").alias("memory_usage_request_ratio"),
    )
    quota_cols = sorted(set(QUOTA_COLUMNS.values()))
    if quotas is not None and not quotas.is_empty():
        q = quotas.filter(pl.col("resource").is_in(list(QUOTA_COLUMNS))).with_columns(
            pl.col("resource").replace_strict(QUOTA_COLUMNS, return_dtype=pl.Utf8).alias("column")
        ).group_by("namespace", "column").agg(pl.col("hard").min())
        wide = q.pivot(on="column", index="namespace", values="hard") if q.height else pl.DataFrame(schema={"namespace": pl.Utf8})
        out = out.join(wide, on="namespace", how="left")
    for c in quota_cols:
        if c not in out.columns:
            out = out.with_columns(pl.lit(None, dtype=pl.Float64).alias(c))
    out = out.with_columns(
        ratio("cpu_requests_cores", "quota_cpu_requests_cores").alias("quota_cpu_requests_used_ratio"),
        ratio("memory_requests_bytes", "quota_memory_requests_bytes").alias("quota_memory_requests_used_ratio"),
        ratio("cpu_limits_cores", "quota_cpu_limits_cores").alias("quota_cpu_limits_used_ratio"),
        ratio("memory_limits_bytes", "quota_memory_limits_bytes").alias("quota_memory_limits_used_ratio"),
        ratio("pods", "quota_pods").alias("quota_pods_used_ratio"),
    )
    return out.select(
        "namespace", "pods",
        "cpu_requests_cores", "cpu_limits_cores", "cpu_usage_p95_cores", "cpu_usage_request_ratio",
        "memory_requests_bytes", "memory_limits_bytes", "memory_usage_p95_bytes", "memory_usage_request_ratio",
        "cpu_unlimited_containers", "memory_unlimited_containers", "cpu_usage_max_cores", "memory_usage_max_bytes",
        "quota_cpu_requests_cores", "quota_cpu_requests_used_ratio",
        "quota_memory_requests_bytes", "quota_memory_requests_used_ratio",
        "quota_cpu_limits_cores", "quota_cpu_limits_used_ratio",
        "quota_memory_limits_bytes", "quota_memory_limits_used_ratio",
        "quota_pods", "quota_pods_used_ratio",
    ).sort("namespace")


def namespaces_report(con: duckdb.DuckDBPyConnection, window: timedelta = timedelta(days=14),
                      namespaces: Iterable[str] | None = None) -> pl.DataFrame:
    """`capplan namespaces`: namespace_table from the store."""
    start, end = snapshot_window(con, window)
    pods = pod_resources(load_current_containers(con, end))
    usage = (store.query(con, "namespace_usage_percentiles", {"start": start, "end": end})
             if start is not None else pl.DataFrame(schema=NAMESPACE_USAGE_SCHEMA))
    quotas = store.query(con, "current_resource_quotas", {"at": end, "tolerance": CURRENT_TOLERANCE})
    out = namespace_table(pods, usage, quotas)
    wanted = list(namespaces or [])
    if wanted:
        out = out.filter(pl.col("namespace").is_in(wanted))
        if out.is_empty():
            raise NoDataError(f"no pods or usage in namespace(s) {', '.join(wanted)}")
    return out


# --- report -------------------------------------------------------------------------------

def report_section(con: duckdb.DuckDBPyConnection, options: ReportOptions) -> list[Section]:
    """N-1, node loss, imbalance, memory-pressure risk and namespaces (the cluster and node
    tables themselves come from capplan.report)."""
    from capplan.report import Section

    start, end = snapshot_window(con, options.window)
    nodes = load_current_nodes(con, end)
    if nodes.is_empty():
        return []
    pods = pod_resources(load_current_containers(con, end))
    state = node_state(nodes, pods)
    sections = []
    n1 = n_minus_1(state, pods)
    loss = node_loss(state, pods)
    stranded = loss.filter(~pl.col("survives")).sort(["unplaceable_pods", "node"], descending=[True, False])
    note = ("the largest node by each resource is lost; its DaemonSet pods go with it. "
            + (f"{stranded.height} of {loss.height} nodes would strand pods if lost (pod-by-pod first-fit)"
               if stranded.height else f"any one of the {loss.height} nodes can be lost: its pods fit elsewhere (first-fit)"))
    sections.append(Section("n_minus_1", "N-1: losing the largest node", n1, note))
    if stranded.height:
        sections.append(Section("node_loss", "Nodes whose loss strands pods", stranded.head(options.top)))
    low, high = 20.0, 50.0
    imb = imbalance(state, low, high)
    if options.nodes:
        imb = imb.filter(pl.col("node").is_in(options.nodes))
    sections.append(Section("imbalance", f"Imbalance (descheduler LowNodeUtilization {low:g}/{high:g})",
                            imb.filter(pl.col("utilization_class") != "ok"), imbalance_note(imb, low, high)))
    if start is not None:
        risk = memory_pressure(daily_memory(load_node_series(con, start, end), nodes), nodes)
        if options.nodes:
            risk = risk.filter(pl.col("node").is_in(options.nodes))
        sections.append(Section(
            "memory_pressure", "Memory-pressure risk",
            risk.select("node", "memory_threshold_bytes", "daily_max_max_bytes", "breach_points", "breach_share", "breach_days",
                        "days", "breach_day_probability", "daily_max_slope_bytes_per_day").head(options.top),
            "breach: the node's summed working set above allocatable - 100Mi; probability of a breach in a "
            "day from a Gumbel fit of the daily maxima"))
    usage = (store.query(con, "namespace_usage_percentiles", {"start": start, "end": end})
             if start is not None else None)
    quotas = store.query(con, "current_resource_quotas", {"at": end, "tolerance": CURRENT_TOLERANCE})
    ns = namespace_table(pods, usage, quotas)
    if options.namespaces:
        ns = ns.filter(pl.col("namespace").is_in(options.namespaces))
    sections.append(Section("namespaces", "Namespaces", ns.select(
        "namespace", "pods", "cpu_requests_cores", "cpu_usage_p95_cores", "cpu_usage_request_ratio",
        "memory_requests_bytes", "memory_usage_p95_bytes", "memory_usage_request_ratio",
        "quota_cpu_requests_used_ratio", "quota_memory_requests_used_ratio")))
    return sections
