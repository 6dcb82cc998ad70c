"""Tiny hand-written clusters for the overcommit tests: rows in the store's spec format, and a
builder that writes them into a DuckDB store through the same writers the importer uses."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from capplan import store

GiB = 2**30
MiB = 2**20
T0 = datetime(2026, 1, 1)
T1 = T0 + timedelta(days=1)


def node(name: str, cpu_cap: float, mem_cap: int, cpu_alloc: float | None = None, mem_alloc: int | None = None,
         pods_alloc: int = 110, taints: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """A node row; allocatable defaults to capacity (no reservation)."""
    return {"node": name, "valid_from": T0, "valid_to": T1, "cpu_capacity_cores": cpu_cap,
            "memory_capacity_bytes": mem_cap, "pods_capacity": pods_alloc,
            "cpu_allocatable_cores": cpu_cap if cpu_alloc is None else cpu_alloc,
            "memory_allocatable_bytes": mem_cap if mem_alloc is None else mem_alloc,
            "pods_allocatable": pods_alloc, "labels": "{}", "taints": json.dumps(taints or [])}


def pod(namespace: str, name: str, node_name: str | None, owner_kind: str | None = None,
        overhead_cpu: float | None = None, overhead_memory: int | None = None, phase: str = "Running") -> dict[str, Any]:
    """A pod row."""
    return {"namespace": namespace, "pod": name, "valid_from": T0, "valid_to": T1, "node": node_name,
            "owner_kind": owner_kind, "owner_name": f"{name}-owner" if owner_kind else None,
            "priority_class": None, "qos_class": None, "phase": phase,
            "overhead_cpu_cores": overhead_cpu, "overhead_memory_bytes": overhead_memory}


def ctr(namespace: str, pod_name: str, name: str, cpu_req: float | None = None, cpu_lim: float | None = None,
        mem_req: int | None = None, mem_lim: int | None = None, init: bool = False, sidecar: bool = False,
        order: int | None = None) -> dict[str, Any]:
    """A container row (`sidecar` = restartable init container)."""
    return {"namespace": namespace, "pod": pod_name, "container": name, "valid_from": T0, "valid_to": T1,
            "init_container": init or sidecar, "restartable": sidecar, "init_order": order,
            "cpu_request_cores": cpu_req, "cpu_limit_cores": cpu_lim,
            "memory_request_bytes": mem_req, "memory_limit_bytes": mem_lim}


POD_SCHEMA = {"namespace": pl.Utf8, "pod": pl.Utf8, "valid_from": pl.Datetime("us"), "valid_to": pl.Datetime("us"),
              "node": pl.Utf8, "owner_kind": pl.Utf8, "owner_name": pl.Utf8, "priority_class": pl.Utf8,
              "qos_class": pl.Utf8, "phase": pl.Utf8, "overhead_cpu_cores": pl.Float64,
              "overhead_memory_bytes": pl.Int64}
CTR_SCHEMA = {"namespace": pl.Utf8, "pod": pl.Utf8, "container": pl.Utf8, "valid_from": pl.Datetime("us"),
              "valid_to": pl.Datetime("us"), "init_container": pl.Boolean, "restartable": pl.Boolean,
              "init_order": pl.Int32, "cpu_request_cores": pl.Float64, "cpu_limit_cores": pl.Float64,
              "memory_request_bytes": pl.Int64, "memory_limit_bytes": pl.Int64}
NODE_SCHEMA = {"node": pl.Utf8, "valid_from": pl.Datetime("us"), "valid_to": pl.Datetime("us"),
               "cpu_capacity_cores": pl.Float64, "memory_capacity_bytes": pl.Int64, "pods_capacity": pl.Int32,
               "cpu_allocatable_cores": pl.Float64, "memory_allocatable_bytes": pl.Int64,
               "pods_allocatable": pl.Int32, "labels": pl.Utf8, "taints": pl.Utf8}


def containers_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Container rows plus the pod columns current_containers.sql adds (node, overhead...)."""
    return pl.DataFrame(rows, schema=CTR_SCHEMA)


def pods_with_containers(pods: list[dict[str, Any]], containers: list[dict[str, Any]]) -> pl.DataFrame:
    """The join queries/current_containers.sql makes, for pure-function tests."""
    p = pl.DataFrame(pods, schema=POD_SCHEMA).drop("valid_from", "valid_to")
    return p.join(containers_frame(containers).drop("valid_from", "valid_to"), on=["namespace", "pod"])


def usage_rows(namespace: str, pod_name: str, container: str, node_name: str,
               cpu: list[float], memory: list[float], step: timedelta = timedelta(minutes=5),
               start: datetime = T0) -> list[dict[str, Any]]:
    """One usage sample per value, `step` apart from `start`."""
    return [{"namespace": namespace, "pod": pod_name, "container": container, "node": node_name,
             "ts": start + i * step, "cpu_cores": c, "memory_bytes": int(m)}
            for i, (c, m) in enumerate(zip(cpu, memory, strict=True))]


FIVE = [1.0, 2.0, 3.0, 4.0, 5.0]


def hand_cluster() -> tuple[list, list, list, list]:
    """Three nodes:
    node-a 4 cores / 16Gi, allocatable 3.9 / 14Gi (memory reservation 2Gi: below the guideline)
      web/p1: 1 core (limit 2), 2Gi (limit 4Gi); web/p2: 0.5 core, 1Gi, no limits
    node-b 4 cores / 16Gi, allocatable 3.9 / 13Gi (reservation 0.1 core, 3Gi: meets the guideline)
      data/p3: app 2/2 cores 4Gi/4Gi + sidecar 0.5/0.5, 512Mi/512Mi; monitoring/ds-b (DaemonSet) 0.1, 128Mi
    node-c 2 cores / 8Gi, allocatable == capacity (nothing reserved)
      monitoring/ds-c (DaemonSet) 0.1, 128Mi; web/done (Succeeded: not counted)
    web/p4 is Pending without a node.
    """
    nodes = [
        node("node-a", 4.0, 16 * GiB, 3.9, 14 * GiB),
        node("node-b", 4.0, 16 * GiB, 3.9, 13 * GiB),
        node("node-c", 2.0, 8 * GiB),
    ]
    pods = [
        pod("web", "p1", "node-a", "ReplicaSet"), pod("web", "p2", "node-a", "ReplicaSet"),
        pod("data", "p3", "node-b", "StatefulSet"),
        pod("monitoring", "ds-b", "node-b", "DaemonSet"), pod("monitoring", "ds-c", "node-c", "DaemonSet"),
        pod("web", "done", "node-c", "Job", phase="Succeeded"), pod("web", "p4", None, "ReplicaSet", phase="Pending"),
    ]
    containers = [
        ctr("web", "p1", "app", 1.0, 2.0, 2 * GiB, 4 * GiB),
        ctr("web", "p2", "app", 0.5, None, 1 * GiB, None),
        ctr("data", "p3", "db", 2.0, 2.0, 4 * GiB, 4 * GiB),
        ctr("data", "p3", "proxy", 0.5, 0.5, 512 * MiB, 512 * MiB, sidecar=True, order=0),
        ctr("monitoring", "ds-b", "exporter", 0.1, 0.1, 128 * MiB, 128 * MiB),
        ctr("monitoring", "ds-c", "exporter", 0.1, 0.1, 128 * MiB, 128 * MiB),
        ctr("web", "done", "job", 3.0, None, 3 * GiB, None),
        ctr("web", "p4", "app", 0.25, None, 256 * MiB, None),
    ]
    # node-a's containers sum to 1..5 cores and 1..5 GiB over five samples; ds-b uses 0.05 / 100Mi
    usage = (usage_rows("web", "p1", "app", "node-a", [v / 2 for v in FIVE], [v * GiB / 2 for v in FIVE])
             + usage_rows("web", "p2", "app", "node-a", [v / 2 for v in FIVE], [v * GiB / 2 for v in FIVE])
             + usage_rows("monitoring", "ds-b", "exporter", "node-b", [0.05] * 5, [100 * MiB] * 5))
    return nodes, pods, containers, usage


def build_store(path: Path, nodes: list[dict[str, Any]], pods: list[dict[str, Any]],
                containers: list[dict[str, Any]], usage: list[dict[str, Any]] | None = None,
                quotas: list[dict[str, Any]] | None = None, valid_to: datetime | None = None) -> Path:
    """Write a hand cluster into a new store at `path`. Spec intervals end at `valid_to`
    (default: the last usage sample, else T1) so that they are current at the window's end."""
    end = valid_to or (max(r["ts"] for r in usage) if usage else T1)
    con = store.open_db(path)
    try:
        with store.transaction(con):
            for table, rows, schema in (("nodes", nodes, NODE_SCHEMA), ("pods", pods, POD_SCHEMA),
                                        ("containers", containers, CTR_SCHEMA)):
                frame = pl.DataFrame(rows, schema=schema).with_columns(valid_to=pl.lit(end).cast(pl.Datetime("us")))
                store.write_spec(con, table, frame)
            if quotas:
                store.write_spec(con, "resource_quotas", pl.DataFrame(quotas).with_columns(
                    valid_from=pl.lit(T0).cast(pl.Datetime("us")), valid_to=pl.lit(end).cast(pl.Datetime("us"))))
            if usage:
                store.write_usage(con, pl.DataFrame(usage))
    finally:
        con.close()
    return path
