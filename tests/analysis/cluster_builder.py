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
            for i, (c, m) in enumerate(zip(cpu, memory))]


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
