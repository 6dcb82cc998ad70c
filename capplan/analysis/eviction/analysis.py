"""The eviction analysis end to end: inputs from the store, ranking, exposure and advice."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import duckdb
import polars as pl

from capplan import store
from capplan.analysis.eviction.advice import advise
from capplan.analysis.eviction.exposure import (
    eviction_thresholds,
    finish_exposure,
    node_exposure,
    pod_exposure,
    pressure_needs,
)
from capplan.analysis.eviction.model import (
    EVICTION_COLUMNS,
    NODE_COLUMNS,
    QOS_COLUMNS,
    USAGE_BASES,
    EvictionOptions,
    EvictionResult,
)
from capplan.analysis.eviction.ranking import (
    pod_oom_scores,
    pod_specs,
    rank_memory_pressure,
    relieve,
)
from capplan.analysis.eviction.thresholds import check_threshold
from capplan.analysis.rollup_span import Span, raw_only, rollup_span, stored_bounds
from capplan.analysis.series_parts import PERCENTILE_SAMPLES_PER_PART, run_parts
from capplan.errors import NoDataError, UsageError


@dataclass
class EvictionInputs:
    """What the analysis reads: either the node series (`moments`) and the pods' working sets at
    every moment that matters (`pod_moments`), from which eviction_analysis computes the exposure
    (tests build these by hand), or, from the store (load_eviction_inputs), the exposure already
    aggregated in DuckDB (`exposure`, `latest`, `pod_exposure`, `pressure_moments`) with
    `pod_moments` at each node's worst and latest moment only."""

    start: datetime
    end: datetime
    nodes: pl.DataFrame        # node, memory_capacity_bytes, ...
    containers: pl.DataFrame   # window_containers.sql
    moments: pl.DataFrame      # node, ts, working_set_bytes
    pod_stats: pl.DataFrame    # node, namespace, pod, last_seen (and working_set_p95_bytes for --usage p95)
    restarts: pl.DataFrame     # namespace, pod, restarts, oom_kills, oom_killed_containers
    pod_moments: pl.DataFrame = field(default_factory=pl.DataFrame)  # node, ts, namespace, pod, working_set_bytes
    exposure: pl.DataFrame | None = None          # exposure.finish_exposure, for `thresholds`
    latest: pl.DataFrame | None = None            # node, ts: each node's latest moment
    pod_exposure: pl.DataFrame | None = None      # node, namespace, pod, evicted_moments
    pressure_moments: pl.DataFrame | None = None  # node, pressure_moments
    specs: pl.DataFrame | None = None             # ranking.pod_specs of the containers
    thresholds: tuple[str, str] | None = None     # (hard, soft) the aggregates were computed for

    @property
    def has_memory(self) -> bool:
        """Whether any node has a memory sample in the window (else there is nothing to rank)."""
        return not self.moments.is_empty() or (self.latest is not None and not self.latest.is_empty())


POD_MOMENTS_SCHEMA = pl.Schema({"node": pl.Utf8(), "ts": pl.Datetime("us"), "namespace": pl.Utf8(), "pod": pl.Utf8(),
                                "working_set_bytes": pl.Int64()})
MOMENTS_SCHEMA = pl.Schema({"node": pl.Utf8(), "ts": pl.Datetime("us"), "working_set_bytes": pl.Int64()})


def _slices(days: list[datetime], start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """[start, end] cut to each of the UTC `days` (inclusive bounds, so slices never overlap)."""
    out = []
    for day in days:
        lo, hi = max(start, day), min(end, day + timedelta(days=1) - timedelta(microseconds=1))
        if lo <= hi:
            out.append((lo, hi))
    return out


def pod_memory_stats(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, rollups: Span,
                     samples_per_part: int = PERCENTILE_SAMPLES_PER_PART) -> pl.DataFrame:
    """Per node and pod its working set's p95, peak and latest sample over [start, end]
    (queries/pod_memory_stats.sql), in parts of the pods run one after another: the exact p95 keeps
    every per-time sum of the pods a query aggregates, so about `samples_per_part` stored samples
    at a time bound the peak memory (series_parts.PERCENTILE_SAMPLES_PER_PART). A
    pod belongs to the part of its smallest series id (ranges cut at the stored blocks of series,
    series_parts.id_ranges), so all its containers are summed in one part: each part's rows are
    final, and the parts hold every pod once."""
    bounds, raw = stored_bounds(start, end), raw_only(rollups, start, end)
    # a pod of one series takes its samples as its per-time sums when no series has two samples of
    # one time (queries/pod_memory_stats.sql): so in usage_raw alone, else when the tables' times
    # do not overlap
    distinct_times = raw or bool(store.fetch_row(con, store.load_sql("stored_times_distinct"), bounds)[0])
    # open ends: a pod's smallest series id may lie outside the ids with samples in the window
    params = {**bounds, "distinct_times": distinct_times}
    frame = run_parts(con, start, end, lambda part: store.query(
        con, "pod_memory_stats", {**params, "first_id": part.first_id, "last_id": part.last_id}, raw=raw),
        samples_per_part, open_ends=True)
    # each part's rows come sorted (queries/pod_memory_stats.sql), the parts' in the order of their
    # pods' smallest ids; (node, namespace, pod) is unique, so one part's sort changes nothing
    return frame.sort("node", "namespace", "pod")


def load_eviction_inputs(con: duckdb.DuckDBPyConnection, options: EvictionOptions) -> EvictionInputs:
    """Read what the eviction analysis needs over the window ending at the newest sample, the
    per-sample work done in DuckDB: per node its exposure (queries/eviction_node_exposure.sql, on
    the stored node sums), per pod how often it would be evicted (queries/eviction_pod_exposure.sql,
    a UTC day at a time, only days with a moment under the hard threshold: memory stays that of a
    day), and the pods' working sets at each node's worst and latest moment. Under
    store.bounded_memory: each sample is read once or twice, and DuckDB's buffer pool kept what the
    scans read (bench L: the peak grew with the samples)."""
    return store.bounded_memory(con, lambda: _load_eviction_inputs(con, options))


def _load_eviction_inputs(con: duckdb.DuckDBPyConnection, options: EvictionOptions) -> EvictionInputs:
    start, end = store.analysis_window(con, options.window)
    params = {"start": start, "end": end}
    node_frame = store.query(con, "window_nodes", params)
    containers = store.query(con, "window_containers", params)
    specs = pod_specs(containers, options.priorities)
    thresholds = eviction_thresholds(node_frame, options.eviction_hard, options.eviction_soft)
    # a window (or stretch of moments) without rolled-up samples reads usage_raw alone
    rollups = rollup_span(con, start, end)
    con.register("_eviction_thresholds", thresholds.with_row_index("node_id").to_arrow())
    try:
        agg = store.query(con, "eviction_node_exposure", store.node_usage_params(con, start, end))
        exposed = agg.filter(pl.col("worst_moment").is_not_null()).join(
            thresholds.select("node", "memory_capacity_bytes"), on="node")
        worst = exposed.select(
            "node", pl.col("worst_moment").cast(pl.Datetime("us")),
            pl.col("working_set_at_worst_bytes").cast(pl.Int64),
            (pl.col("memory_capacity_bytes") - pl.col("working_set_at_worst_bytes")).cast(pl.Int64).alias("available_at_worst_bytes"))
        shares = exposed.select(
            "node", pl.col("memory_moments").cast(pl.UInt32),
            (pl.col("under_hard") / pl.col("memory_moments")).alias("share_under_hard"),
            (pl.col("under_soft") / pl.col("memory_moments")).alias("share_under_soft"))
        exposure = finish_exposure(thresholds, worst, shares)
        pressure_moments = exposed.filter(pl.col("under_hard") > 0).select(
            "node", pl.col("under_hard").cast(pl.UInt32).alias("pressure_moments"))
        days = sorted({d for ds in exposed["pressure_days"].to_list() if ds for d in ds})
        parts = []
        if days:
            evictable = specs.select("namespace", "pod", "memory_request_bytes", "priority",
                                     (~pl.col("critical").fill_null(False)).alias("evictable"))
            con.register("_eviction_specs", evictable.to_arrow())
            try:
                for lo, hi in _slices(days, start, end):
                    parts.append(store.query(con, "eviction_pod_exposure", store.node_usage_params(con, lo, hi)))
            finally:
                con.unregister("_eviction_specs")
    finally:
        con.unregister("_eviction_thresholds")
    exposure_schema = pl.Schema({"node": pl.Utf8(), "namespace": pl.Utf8(), "pod": pl.Utf8(), "evicted_moments": pl.UInt32()})
    pod_exp = (pl.concat(parts).group_by("node", "namespace", "pod").agg(pl.col("evicted_moments").sum().cast(pl.UInt32))
               if parts else pl.DataFrame(schema=exposure_schema))
    latest = agg.select("node", pl.col("latest_moment").cast(pl.Datetime("us")).alias("ts"))
    wanted = pl.concat([exposure.select("node", pl.col("worst_moment").alias("ts")), latest]).unique()
    if wanted.height:
        first, last = wanted["ts"].min(), wanted["ts"].max()
        assert isinstance(first, datetime) and isinstance(last, datetime)
        moments = {"nodes": wanted["node"].to_list(), "ts": wanted["ts"].to_list()}
        pod_moments = store.query(con, "pod_memory_at_moments", {**moments, **stored_bounds(first, last)},
                                  raw=raw_only(rollups, first, last))
    else:
        pod_moments = pl.DataFrame(schema=POD_MOMENTS_SCHEMA)
    # --usage p95 needs every pod's per-timestamp sums; the other bases only where each pod ran last
    if options.usage == "p95":
        pod_stats = pod_memory_stats(con, start, end, rollups)
    else:
        pod_stats = store.query(con, "pod_last_seen", stored_bounds(start, end), raw=raw_only(rollups, start, end))
    return EvictionInputs(
        start=start, end=end, nodes=node_frame, containers=containers, moments=pl.DataFrame(schema=MOMENTS_SCHEMA),
        pod_stats=pod_stats, restarts=store.query(con, "restarts_in_window", params), pod_moments=pod_moments,
        exposure=exposure, latest=latest, pod_exposure=pod_exp, pressure_moments=pressure_moments, specs=specs,
        thresholds=(options.eviction_hard, options.eviction_soft))


def eviction_analysis(inputs: EvictionInputs, options: EvictionOptions) -> EvictionResult:
    """The ranked list per node with cumulative memory freed and the relief mark, node and pod
    exposure, per-container oom_score_adj and advice (pure: frames in, frames out)."""
    if options.usage not in USAGE_BASES:
        raise UsageError(f"--usage must be one of {', '.join(USAGE_BASES)}, not {options.usage!r}")
    specs = inputs.specs if inputs.specs is not None else pod_specs(inputs.containers, options.priorities)
    capacities = {r["node"]: int(r["memory_capacity_bytes"]) for r in inputs.nodes.iter_rows(named=True)
                  if r["memory_capacity_bytes"]}
    # Capacity for oom_score_adj is that of the node the pod ran on (usage), else its spec node.
    ran_on = inputs.pod_stats.sort("last_seen").group_by("namespace", "pod").agg(pl.col("node").last().alias("ran_on"))
    specs = specs.join(ran_on, on=["namespace", "pod"], how="left").with_columns(
        pl.coalesce("ran_on", "node").alias("node")).drop("ran_on")
    containers, pod_scores = pod_oom_scores(inputs.containers, specs, capacities)
    specs = specs.join(pod_scores, on=["namespace", "pod"], how="left")

    if inputs.exposure is not None and inputs.latest is not None:
        if inputs.thresholds != (options.eviction_hard, options.eviction_soft):
            raise ValueError("the inputs were aggregated for other eviction thresholds than the options'")
        exposure, latest_ts = inputs.exposure, inputs.latest
    else:
        exposure = node_exposure(inputs.moments, inputs.nodes, options.eviction_hard, options.eviction_soft)
        latest_ts = inputs.moments.group_by("node").agg(pl.col("ts").max())
    pm = inputs.pod_moments
    at_worst = pm.join(exposure.select("node", pl.col("worst_moment").alias("ts")), on=["node", "ts"]).select(
        "node", "namespace", "pod", pl.col("working_set_bytes").alias("usage_at_worst_bytes"))
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
    if inputs.pod_exposure is not None and inputs.pressure_moments is not None:
        pod_exp, pressure_moments = inputs.pod_exposure, inputs.pressure_moments
    else:
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
    result.unresolved_priority_classes = sorted(
        specs.filter(~pl.col("priority_known") & pl.col("priority_class").is_not_null() & (pl.col("priority_class") != ""))
        ["priority_class"].unique().to_list())
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


def eviction_report(con: duckdb.DuckDBPyConnection, options: EvictionOptions | None = None) -> EvictionResult:
    """`capplan eviction`: load from the store and analyse."""
    options = options or EvictionOptions()
    check_threshold(options.eviction_hard)
    check_threshold(options.eviction_soft)
    inputs = load_eviction_inputs(con, options)
    if not inputs.has_memory:
        raise NoDataError("no memory usage with a known node in the window: nothing to rank")
    return eviction_analysis(inputs, options)
