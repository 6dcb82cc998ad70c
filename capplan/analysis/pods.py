"""Pod-level requests and limits exactly as the scheduler counts them.

Follows kubernetes/kubernetes staging/src/k8s.io/component-helpers/resource/helpers.go,
`PodRequests` / `PodLimits` (with the SidecarContainers feature): per resource,

    pod = max( sum(app containers) + sum(restartable init containers),
               max over init containers i of (request_i + sum of restartable init containers
                                                declared before i) )
          + pod overhead

A restartable init container (restartPolicy: Always, a sidecar) keeps running beside the app
containers, so it counts in the sum; a regular init container runs alone (with the sidecars
started before it), so only the largest such moment counts. A limit that is not set adds
nothing to PodLimits (as in helpers.go), so capplan also counts containers without a limit:
one of them makes the pod's limit, and its node's limit sum, unbounded.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import polars as pl

from capplan import store

CURRENT_TOLERANCE = timedelta(minutes=15)

_RESOURCES = {
    "cpu_request_cores": "overhead_cpu_cores",
    "cpu_limit_cores": "overhead_cpu_cores",
    "memory_request_bytes": "overhead_memory_bytes",
    "memory_limit_bytes": "overhead_memory_bytes",
}


def load_current_containers(con: duckdb.DuckDBPyConnection, at: datetime,
                            tolerance: timedelta = CURRENT_TOLERANCE) -> pl.DataFrame:
    """Containers of the pods alive at `at` (queries/current_containers.sql)."""
    return store.query(con, "current_containers", {"at": at, "tolerance": tolerance})


def load_current_nodes(con: duckdb.DuckDBPyConnection, at: datetime,
                       tolerance: timedelta = CURRENT_TOLERANCE) -> pl.DataFrame:
    """Nodes as seen at `at` (queries/current_nodes.sql)."""
    return store.query(con, "current_nodes", {"at": at, "tolerance": tolerance})


def pod_resources(containers: pl.DataFrame) -> pl.DataFrame:
    """One row per pod: effective cpu/memory requests and limits (PodRequests/PodLimits), the
    count of app containers (sidecars included) without a cpu or memory limit, and pod metadata.

    `containers` has the columns of queries/current_containers.sql.
    """
    if containers.is_empty():
        return pl.DataFrame(schema={
            "namespace": pl.Utf8, "pod": pl.Utf8, "node": pl.Utf8, "cpu_request_cores": pl.Float64,
            "cpu_limit_cores": pl.Float64, "memory_request_bytes": pl.Float64, "memory_limit_bytes": pl.Float64,
            "cpu_unlimited_containers": pl.UInt32, "memory_unlimited_containers": pl.UInt32, "containers": pl.UInt32,
        })
    frame = containers.with_columns(
        pl.col("init_container").fill_null(False),
        pl.col("restartable").fill_null(False),
        # unknown init order: assume every sidecar starts before the regular init containers
        pl.col("init_order").fill_null(-1),
        *[pl.col(c).cast(pl.Float64) for c in _RESOURCES],
    )
    sidecar = pl.col("init_container") & pl.col("restartable")
    regular_init = pl.col("init_container") & ~pl.col("restartable")
    running = ~pl.col("init_container") | pl.col("restartable")
    pods = []
    keys = ["namespace", "pod"]
    meta_cols = [c for c in ("node", "owner_kind", "owner_name", "workload_kind", "workload_name",
                             "priority_class", "qos_class_reported", "phase", "overhead_cpu_cores",
                             "overhead_memory_bytes") if c in frame.columns]
    base = frame.group_by(keys, maintain_order=True).agg(
        *[pl.col(c).first() for c in meta_cols],
        running.sum().alias("containers"),
        (running & pl.col("cpu_limit_cores").is_null()).sum().alias("cpu_unlimited_containers"),
        (running & pl.col("memory_limit_bytes").is_null()).sum().alias("memory_unlimited_containers"),
    )
    # sidecars declared before each regular init container
    sidecars = frame.filter(sidecar).select(*keys, pl.col("init_order").alias("sidecar_order"),
                                            *[pl.col(c).alias(f"sc_{c}") for c in _RESOURCES])
    inits = frame.filter(regular_init).select(*keys, "init_order", *_RESOURCES)
    if inits.height:
        joined = inits.join(sidecars, on=keys, how="left").with_columns(
            before=pl.col("sidecar_order").is_not_null() & (pl.col("sidecar_order") < pl.col("init_order"))
        )
        init_moments = joined.group_by([*keys, "init_order"]).agg(
            *[(pl.col(c).first().fill_null(0.0) + pl.when(pl.col("before")).then(pl.col(f"sc_{c}")).otherwise(0.0).fill_null(0.0).sum()).alias(c)
              for c in _RESOURCES]
        ).group_by(keys).agg(*[pl.col(c).max().alias(f"init_{c}") for c in _RESOURCES])
    else:
        init_moments = pl.DataFrame(schema={**{k: pl.Utf8 for k in keys}, **{f"init_{c}": pl.Float64 for c in _RESOURCES}})
    sums = frame.filter(running).group_by(keys).agg(*[pl.col(c).fill_null(0.0).sum().alias(f"sum_{c}") for c in _RESOURCES])
    out = base.join(sums, on=keys, how="left").join(init_moments, on=keys, how="left")
    for c, overhead in _RESOURCES.items():
        over = pl.col(overhead).fill_null(0.0) if overhead in out.columns else pl.lit(0.0)
        out = out.with_columns(
            (pl.max_horizontal(pl.col(f"sum_{c}").fill_null(0.0), pl.col(f"init_{c}").fill_null(0.0)) + over).alias(c)
        )
    pods.append(out.drop([f"sum_{c}" for c in _RESOURCES] + [f"init_{c}" for c in _RESOURCES]))
    return pods[0]
