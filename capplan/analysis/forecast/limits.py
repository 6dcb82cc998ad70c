"""What each scope's series runs into: the allocatable of its nodes, or its namespace's ResourceQuota."""

from __future__ import annotations

from typing import Any

import polars as pl

from capplan.analysis.forecast.model import (
    ALLOCATABLE_COLUMN,
    BASES,
    LIMIT_SCHEMA,
    NO_POOL,
    QUOTA_BY_BASIS,
    RESOURCES,
)


def scope_limits(nodes: pl.DataFrame, pools: pl.DataFrame, quotas: pl.DataFrame, daily: pl.DataFrame) -> pl.DataFrame:
    """The limit each series is projected against (LIMIT_SCHEMA).

    Cluster and pools: the sum of allocatable of their nodes (`nodes` at the window's end).
    Namespaces: the tightest ResourceQuota hard value that bounds the basis (requests.* for
    requests, limits.* for usage) when there is one, else the cluster's allocatable minus the
    other namespaces' current value on the same basis.
    """
    rows: list[dict[str, Any]] = []
    now = nodes.join(pools, on="node", how="left").with_columns(pl.col("pool").fill_null(NO_POOL))
    # in scope order: the sum of the other namespaces' values is then the same float on every run
    current = daily.sort("day").group_by("scope_kind", "scope_name", "resource", "basis").agg(
        pl.col("value").last()).sort("scope_kind", "scope_name", "resource", "basis")
    ns_current = current.filter(pl.col("scope_kind") == "namespace")
    for resource in RESOURCES:
        column = ALLOCATABLE_COLUMN[resource]
        cluster_alloc = float(now[column].cast(pl.Float64).sum()) if now.height else 0.0
        for basis in BASES:
            rows.append({"scope_kind": "cluster", "scope_name": "cluster", "resource": resource, "basis": basis,
                         "allocatable": cluster_alloc, "limit_source": f"allocatable of {now.height} nodes"})
            for pool, group in now.group_by("pool", maintain_order=True):
                rows.append({"scope_kind": "pool", "scope_name": pool[0], "resource": resource, "basis": basis,
                             "allocatable": float(group[column].cast(pl.Float64).sum()),
                             "limit_source": f"allocatable of {group.height} nodes"})
            used = ns_current.filter((pl.col("resource") == resource) & (pl.col("basis") == basis))
            total_used = float(used["value"].sum()) if used.height else 0.0
            for namespace, value in zip(used["scope_name"].to_list(), used["value"].to_list(), strict=True):
                hard = quotas.filter((pl.col("namespace") == namespace)
                                     & pl.col("resource").is_in(list(QUOTA_BY_BASIS[(resource, basis)])))
                if hard.height:
                    tightest = hard.sort("hard").row(0, named=True)
                    rows.append({"scope_kind": "namespace", "scope_name": namespace, "resource": resource,
                                 "basis": basis, "allocatable": float(tightest["hard"]),
                                 "limit_source": f"quota {tightest['quota']} {tightest['resource']}"})
                else:
                    others = total_used - float(value)
                    rows.append({"scope_kind": "namespace", "scope_name": namespace, "resource": resource,
                                 "basis": basis, "allocatable": cluster_alloc - others,
                                 "limit_source": "share: cluster allocatable minus the other namespaces' current value"})
    return pl.DataFrame(rows, schema=LIMIT_SCHEMA)
