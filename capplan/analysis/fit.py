"""How many more pods of a shape fit (`capplan fit`): per node by the scheduler's NodeResourcesFit
arithmetic and taints, and by the namespace's ResourceQuota."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import duckdb
import polars as pl

from capplan import store
from capplan.analysis.namespaces import namespace_table
from capplan.analysis.pods import CURRENT_TOLERANCE
from capplan.analysis.snapshot import load_snapshot, millicores, node_state
from capplan.analysis.taints import Toleration, parse_taints, untolerated_taint
from capplan.errors import NoDataError, UsageError

RESOURCES = ("cpu", "memory", "pods")


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
        free_m = millicores(r["cpu_allocatable_cores"] or 0.0) - millicores(r["cpu_requests_cores"])
        free_b = int(round(r["memory_allocatable_bytes"] or 0.0)) - int(round(r["memory_requests_bytes"]))
        # pods allocatable unknown (not collected): the pod count does not limit
        free_p = None if r["pods_allocatable"] is None else int(r["pods_allocatable"]) - int(r["pods"])
        by: dict[str, int | None] = {
            "cpu": max(free_m, 0) // cpu_m if cpu_m > 0 else None,
            "memory": max(free_b, 0) // mem_b if mem_b > 0 else None,
            "pods": None if free_p is None else max(free_p, 0),
        }
        blocked = untolerated_taint(parse_taints(r["taints"]), tolerations)
        bounded = {k: n for k in RESOURCES if (n := by[k]) is not None}
        if not bounded:
            raise UsageError("the pod shape requests nothing and pods allocatable is unknown: give --cpu or --memory")
        limiting = min(bounded, key=bounded.__getitem__)
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
        "cpu_free_cores": sum(max(millicores(c), 0) for c in out["cpu_free_cores"].to_list()) / 1000,
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
        room["requests.cpu"] = max(millicores(hard_cpu) - millicores(namespace_row["cpu_requests_cores"]), 0) // cpu_m
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
