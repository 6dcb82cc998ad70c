"""Pod-level requests and limits exactly as the scheduler counts them.

Follows kubernetes/kubernetes staging/src/k8s.io/component-helpers/resource/helpers.go,
`PodRequests` / `PodLimits` via `AggregateContainerRequests` / `AggregateContainerLimits` and
`aggregateContainerResourcesByFn` (SidecarContainers, KEP-753), per resource:

    pod = max( sum(app containers) + sum(restartable init containers),
               max over regular init containers i of
                   (value_i + sum of restartable init containers declared before i) )
    requests: + pod overhead (spec.overhead)
    limits:   + pod overhead only where the limit is non-zero (PodLimits adds overhead "to
              non-zero limits")

A restartable init container (restartPolicy: Always, a sidecar) keeps running beside the app
containers, so it counts in the sum; a regular init container runs alone (with the sidecars
started before it), so only the largest such moment counts. helpers.go also takes, for a
sidecar j, the sum of sidecars up to and including j; that moment is never above the running
sum, so it is left out here.

Before that, the apiserver's defaulting applies: a container with a limit but no request gets
request = limit (kubernetes/kubernetes pkg/apis/core/v1/defaults.go, `SetDefaults_Pod`, for
containers and init containers), so collected specs already look like that and imported ones
are made to.

A limit that is not set adds nothing to PodLimits (as in helpers.go), so capplan also counts the
running containers (app containers and sidecars) without a limit: one of them makes the pod's
limit, and its node's limit sum, unbounded.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import polars as pl

from capplan import store

CURRENT_TOLERANCE = timedelta(minutes=15)

# value column -> the pod overhead column added to it
_RESOURCES = {
    "cpu_request_cores": "overhead_cpu_cores",
    "cpu_limit_cores": "overhead_cpu_cores",
    "memory_request_bytes": "overhead_memory_bytes",
    "memory_limit_bytes": "overhead_memory_bytes",
}
_DEFAULTED = {"cpu_request_cores": "cpu_limit_cores", "memory_request_bytes": "memory_limit_bytes"}
# Declaration order when the store does not know it: assume every sidecar was declared before
# every regular init container, the larger (safer) of the possible init-time requests.
_SIDECAR_UNKNOWN_ORDER = -1
_INIT_UNKNOWN_ORDER = 2**31 - 1

POD_RESOURCE_SCHEMA = {
    "namespace": pl.Utf8, "pod": pl.Utf8, "node": pl.Utf8, "cpu_request_cores": pl.Float64,
    "cpu_limit_cores": pl.Float64, "memory_request_bytes": pl.Float64, "memory_limit_bytes": pl.Float64,
    "cpu_unlimited_containers": pl.UInt32, "memory_unlimited_containers": pl.UInt32, "containers": pl.UInt32,
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
    count of running containers (app containers and sidecars) without a cpu or memory limit, the
    count of running containers, and the pod's metadata columns when present.

    `containers` has the columns of queries/current_containers.sql (init_order, restartable and
    the overhead columns may be null).
    """
    if containers.is_empty():
        return pl.DataFrame(schema=POD_RESOURCE_SCHEMA)
    keys = ["namespace", "pod"]
    frame = containers.with_columns(
        pl.col("init_container").fill_null(False),
        pl.col("restartable").fill_null(False),
        *[pl.col(c).cast(pl.Float64) for c in _RESOURCES],
    )
    # apiserver defaulting (defaults.go SetDefaults_Pod): request := limit when only the limit is set
    frame = frame.with_columns(
        *[pl.coalesce(pl.col(req), pl.col(lim)).alias(req) for req, lim in _DEFAULTED.items()]
    )
    sidecar = pl.col("init_container") & pl.col("restartable")
    regular_init = pl.col("init_container") & ~pl.col("restartable")
    running = ~pl.col("init_container") | pl.col("restartable")
    frame = frame.with_columns(
        pl.when(sidecar).then(pl.col("init_order").fill_null(_SIDECAR_UNKNOWN_ORDER))
        .otherwise(pl.col("init_order").fill_null(_INIT_UNKNOWN_ORDER)).alias("init_order")
    )
    meta_cols = [c for c in ("node", "owner_kind", "owner_name", "workload_kind", "workload_name",
                             "priority_class", "qos_class_reported", "phase", "overhead_cpu_cores",
                             "overhead_memory_bytes") if c in frame.columns]
    base = frame.group_by(keys, maintain_order=True).agg(
        *[pl.col(c).first() for c in meta_cols],
        running.sum().cast(pl.UInt32).alias("containers"),
        (running & pl.col("cpu_limit_cores").is_null()).sum().cast(pl.UInt32).alias("cpu_unlimited_containers"),
        (running & pl.col("memory_limit_bytes").is_null()).sum().cast(pl.UInt32).alias("memory_unlimited_containers"),
    )
    # sum over app containers and sidecars (helpers.go adds both to `result`)
    sums = frame.filter(running).group_by(keys).agg(
        *[pl.col(c).fill_null(0.0).sum().alias(f"sum_{c}") for c in _RESOURCES]
    )
    # each regular init container plus the sidecars declared before it
    sidecars = frame.filter(sidecar).select(*keys, pl.col("init_order").alias("sidecar_order"),
                                            *[pl.col(c).alias(f"sc_{c}") for c in _RESOURCES])
    inits = frame.filter(regular_init).select(*keys, "container", "init_order", *_RESOURCES)
    if inits.height:
        joined = inits.join(sidecars, on=keys, how="left").with_columns(
            before=pl.col("sidecar_order").is_not_null() & (pl.col("sidecar_order") < pl.col("init_order"))
        )
        init_moments = joined.group_by([*keys, "container"]).agg(
            *[(pl.col(c).first().fill_null(0.0)
               + pl.when(pl.col("before")).then(pl.col(f"sc_{c}").fill_null(0.0)).otherwise(0.0).sum()).alias(c)
              for c in _RESOURCES]
        ).group_by(keys).agg(*[pl.col(c).max().alias(f"init_{c}") for c in _RESOURCES])
    else:
        init_moments = pl.DataFrame(schema={**{k: pl.Utf8 for k in keys},
                                            **{f"init_{c}": pl.Float64 for c in _RESOURCES}})
    out = base.join(sums, on=keys, how="left").join(init_moments, on=keys, how="left")
    for c, overhead in _RESOURCES.items():
        over = pl.col(overhead).cast(pl.Float64).fill_null(0.0) if overhead in out.columns else pl.lit(0.0)
        value = pl.max_horizontal(pl.col(f"sum_{c}").fill_null(0.0), pl.col(f"init_{c}").fill_null(0.0))
        if "limit" in c:
            # PodLimits: overhead is added to non-zero limits only
            out = out.with_columns(pl.when(value > 0).then(value + over).otherwise(value).alias(c))
        else:
            out = out.with_columns((value + over).alias(c))
    return out.drop([f"sum_{c}" for c in _RESOURCES] + [f"init_{c}" for c in _RESOURCES])
