"""Turn Prometheus answers into the store's frames.

Pure functions from decoded JSON results (lists of {"metric": {...}, "values": [[t, "v"], ...]})
to polars frames with the column names of data/samples/*.parquet, so they are easy to test on
tiny inputs. Spec observations (one per spec step) are compressed into intervals
valid_from..valid_to: a run of equal values, broken by a change or by a gap longer than a step.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from capplan.collect.matrix import Matrix, as_matrix
from capplan.errors import BadInputError

TS = pl.Datetime("us")

# kube-state-metrics turns label names into Prometheus label names (label_ + every byte outside
# [a-zA-Z0-9_] replaced by _: internal/store/utils.go sanitizeLabelName), which cannot be undone
# in general. Well-known labels are mapped back to their real names; others keep the sanitized
# name without the label_ prefix.
WELL_KNOWN_NODE_LABELS = (
    "kubernetes.io/hostname", "kubernetes.io/os", "kubernetes.io/arch",
    "node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type",
    "beta.kubernetes.io/os", "beta.kubernetes.io/arch",
    "topology.kubernetes.io/zone", "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region",
    "node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master", "node-role.kubernetes.io/worker",
    "eks.amazonaws.com/nodegroup", "eks.amazonaws.com/capacityType", "cloud.google.com/gke-nodepool",
    "cloud.google.com/machine-family", "kubernetes.azure.com/agentpool", "karpenter.sh/capacity-type",
    "karpenter.sh/nodepool", "node.kubernetes.io/lifecycle",
)


_CAMEL = re.compile(r"([a-z0-9])([A-Z])")


def sanitize_label_name(name: str) -> str:
    """The name kube-state-metrics gives a Kubernetes label (without the `label_` prefix): every
    byte outside [a-zA-Z0-9_] becomes `_`, then camelCase becomes snake_case and all is lower
    case (internal/store/utils.go: SanitizeLabelName, toSnakeCase), so
    `eks.amazonaws.com/capacityType` is `eks_amazonaws_com_capacity_type`."""
    sanitized = "".join(ch if (ch.isascii() and (ch.isalnum() or ch == "_")) else "_" for ch in name)
    return _CAMEL.sub(r"\1_\2", sanitized).lower()


_UNSANITIZE = {sanitize_label_name(n): n for n in WELL_KNOWN_NODE_LABELS}


# Answers are decoded with polars alone: numpy's import cost ~0.1 s of CPU in every hourly
# `capplan collect` (issue 15's next hour, `python -X importtime`).
def _repeat_index(counts: Sequence[int]) -> pl.Series:
    """0 repeated counts[0] times, 1 counts[1] times, ... (numpy.repeat(arange(n), counts))."""
    total = sum(counts)
    ends = pl.Series(counts, dtype=pl.Int64).cum_sum()
    return ends.search_sorted(pl.int_range(0, total, eager=True), side="right").cast(pl.Int64)


def _times(flat_times: list[Any], scale: float) -> pl.Series:
    """Sample times (JSON numbers, seconds) times `scale`, rounded half to even like numpy.round,
    as integers; a time that is not a number is a malformed answer."""
    times = pl.Series(flat_times, dtype=pl.Float64, strict=False)
    if times.null_count():
        raise BadInputError("malformed sample in a Prometheus answer: a sample time is not a number")
    return (times * scale).round(0).cast(pl.Int64)


def to_frame(results: Sequence[dict[str, Any]] | Matrix, labels: Sequence[str],
             aliases: dict[str, str] | None = None) -> pl.DataFrame:
    """Range-query results as a long frame: the given labels (missing = ""), ts, value.
    `aliases` renames label columns (a label called "value" would clash with the sample value)."""
    if aliases:
        return to_frame(results, labels).rename(aliases) if "value" not in aliases else _aliased(results, labels, aliases)
    if "value" in labels:
        raise ValueError("a label named 'value' needs an alias")
    schema = pl.Schema({**{label: pl.Utf8() for label in labels}, "ts": TS, "value": pl.Float64()})
    if not len(results):
        return pl.DataFrame(schema=schema)
    answer = as_matrix(results)
    total = answer.points
    if total == 0:
        return pl.DataFrame(schema=schema)
    ts = (answer.times * 1e6).round(0).cast(pl.Int64)
    values = _numbers(answer.values)
    sid = _repeat_index(answer.counts)
    series = pl.DataFrame({label: [str(m.get(label, "")) for m in answer.metrics] for label in labels},
                          schema={label: pl.Utf8 for label in labels})
    ts_col = ts.alias("ts").cast(TS)
    frame = series[sid] if labels else pl.DataFrame(height=total)
    # NaN and +-Inf are not measurements (a broken scrape, a rate over a bad counter): drop them
    # rather than fail the cast to integer bytes on every later run.
    return frame.with_columns(ts_col, values).filter(
        ~(pl.col("value").is_nan() | pl.col("value").is_infinite()).fill_null(True))


def _numbers(texts: pl.Series) -> pl.Series:
    """Sample value texts ("0.25", "NaN", "+Inf") as floats (null where one is not a number)."""
    return texts.rename("value").str.replace(r"^\+", "").cast(pl.Float64, strict=False)


def _aliased(results: Sequence[dict[str, Any]] | Matrix, labels: Sequence[str], aliases: dict[str, str]) -> pl.DataFrame:
    return to_frame(as_matrix(results).renamed(aliases), [aliases.get(label, label) for label in labels])


def intervals(obs: pl.DataFrame, keys: Sequence[str], values: Sequence[str], step_seconds: int) -> pl.DataFrame:
    """Compress observations (keys, ts, values) into intervals (keys, valid_from, valid_to, values):
    a new interval starts when the key or any value changes, or after a gap of more than a step."""
    if obs.is_empty():
        return obs.select(*keys).with_columns(valid_from=pl.lit(None, TS), valid_to=pl.lit(None, TS),
                                                **{v: pl.lit(None) for v in values}).clear()
    cols = list(keys) + list(values)
    # Group rows by a hash of the key (3x faster than sorting on the key strings); the change test
    # below compares the real keys, so even a hash collision could only split an interval.
    obs = (obs.unique(subset=list(keys) + ["ts"], keep="first")
           .with_columns(_key_hash=pl.struct(list(keys)).hash(seed=0)).sort(["_key_hash", "ts"]).drop("_key_hash"))
    changed = pl.any_horizontal([pl.col(c).ne_missing(pl.col(c).shift(1)) for c in cols]) | (
        pl.col("ts").diff().dt.total_microseconds().fill_null(0) > step_seconds * 1_000_000
    )
    out = (
        obs.with_columns(_run=changed.cum_sum())
        .group_by("_run", maintain_order=True)
        .agg(*[pl.col(c).first() for c in cols], valid_from=pl.col("ts").min(), valid_to=pl.col("ts").max())
    )
    return out.select(*keys, "valid_from", "valid_to", *values)


def _blank_to_null(*names: str) -> list[pl.Expr]:
    return [pl.when(pl.col(n) == "").then(None).otherwise(pl.col(n)).alias(n) for n in names]


def usage_frame(cpu: pl.DataFrame, memory: pl.DataFrame) -> pl.DataFrame:
    """Join the CPU and memory answers (namespace, pod, container, node, ts, value) into usage rows."""
    keys = ["namespace", "pod", "container", "node", "ts"]
    c = cpu.rename({"value": "cpu_cores"}) if "value" in cpu.columns else cpu
    m = memory.rename({"value": "memory_bytes"}) if "value" in memory.columns else memory
    c = c.unique(subset=keys, keep="first")
    m = m.unique(subset=keys, keep="first")
    out = c.join(m, on=keys, how="full", coalesce=True)
    return out.select(
        *keys,
        pl.col("cpu_cores").cast(pl.Float32),
        # left as a float: the store's gate refuses what no int64 holds (1e19) before casting
        pl.col("memory_bytes").round(0),
    ).filter(pl.col("cpu_cores").is_not_null() | pl.col("memory_bytes").is_not_null())


def fill_usage_nodes(usage: pl.DataFrame, pod_nodes: pl.DataFrame) -> pl.DataFrame:
    """Usage series without a `node` label (scrape configs that keep only `instance`) take the
    pod's node from kube_pod_info (namespace, pod, node)."""
    if usage.is_empty() or pod_nodes.is_empty() or not (usage["node"] == "").any():
        return usage
    known = pod_nodes.filter(pl.col("node").is_not_null() & (pl.col("node") != "")).unique(
        subset=["namespace", "pod"], keep="last").select("namespace", "pod", pl.col("node").alias("_pod_node"))
    return usage.join(known, on=["namespace", "pod"], how="left").with_columns(
        node=pl.when(pl.col("node") == "").then(pl.col("_pod_node").fill_null("")).otherwise(pl.col("node"))
    ).drop("_pod_node")


def _pivot_resources(frame: pl.DataFrame, keys: list[str], names: dict[str, str]) -> pl.DataFrame:
    """(keys, resource, ts, value) -> (keys, ts, <names[resource]>...)."""
    out = None
    for resource, column in names.items():
        part = frame.filter(pl.col("resource") == resource).select(*keys, "ts", pl.col("value").alias(column))
        part = part.unique(subset=keys + ["ts"], keep="first")
        out = part if out is None else out.join(part, on=keys + ["ts"], how="full", coalesce=True)
    return out if out is not None else pl.DataFrame()


def nodes_frame(capacity: pl.DataFrame, allocatable: pl.DataFrame, labels: list[dict[str, Any]] | None,
                taints: pl.DataFrame | None, step_seconds: int) -> pl.DataFrame:
    """Node intervals from kube_node_status_capacity/_allocatable, kube_node_labels, kube_node_spec_taint.
    `labels`/`taints` None means the metric is absent (columns NULL); empty means none set."""
    cap = _pivot_resources(capacity, ["node"], {"cpu": "cpu_capacity_cores", "memory": "memory_capacity_bytes",
                                                "pods": "pods_capacity"})
    alloc = _pivot_resources(allocatable, ["node"], {"cpu": "cpu_allocatable_cores",
                                                     "memory": "memory_allocatable_bytes", "pods": "pods_allocatable"})
    obs = cap.join(alloc, on=["node", "ts"], how="full", coalesce=True)
    label_obs = _node_labels(labels)
    if obs.is_empty():
        return pl.DataFrame()
    if label_obs is not None:
        obs = obs.join(label_obs, on=["node", "ts"], how="left").with_columns(pl.col("labels").fill_null("{}"))
    else:
        obs = obs.with_columns(labels=pl.lit(None, pl.Utf8))
    if taints is not None:
        obs = obs.join(_taints(taints), on=["node", "ts"], how="left").with_columns(pl.col("taints").fill_null("[]"))
    else:
        obs = obs.with_columns(taints=pl.lit(None, pl.Utf8))
    obs = obs.with_columns(
        pl.col("memory_capacity_bytes", "memory_allocatable_bytes").round(0).cast(pl.Int64),
        pl.col("pods_capacity", "pods_allocatable").round(0).cast(pl.Int32),
    )
    return intervals(obs, ["node"], ["cpu_capacity_cores", "memory_capacity_bytes", "pods_capacity",
                                     "cpu_allocatable_cores", "memory_allocatable_bytes", "pods_allocatable",
                                     "labels", "taints"], step_seconds)


def _node_labels(results: list[dict[str, Any]] | None) -> pl.DataFrame | None:
    if results is None:
        return None
    rows_node: list[str] = []
    rows_json: list[str] = []
    rows_n: list[int] = []
    ts_all: list[float] = []
    for r in results:
        metric = r["metric"]
        found = {}
        for key, value in metric.items():
            if key.startswith("label_"):
                name = key[len("label_"):]
                found[_UNSANITIZE.get(name, name)] = value
        rows_node.append(metric.get("node", ""))
        rows_json.append(json.dumps(found, sort_keys=True))
        rows_n.append(len(r["values"]))
        ts_all.extend(p[0] for p in r["values"])
    if not ts_all:
        return pl.DataFrame(schema={"node": pl.Utf8, "ts": TS, "labels": pl.Utf8})
    idx = _repeat_index(rows_n)
    frame = pl.DataFrame({"node": rows_node, "labels": rows_json}, schema={"node": pl.Utf8, "labels": pl.Utf8})[idx]
    return frame.with_columns(_times(ts_all, 1e6).alias("ts").cast(TS)).unique(subset=["node", "ts"], keep="last")


def _taints(frame: pl.DataFrame) -> pl.DataFrame:
    if frame.is_empty():
        return pl.DataFrame(schema={"node": pl.Utf8, "ts": TS, "taints": pl.Utf8})
    parts = ["key", "taint_value", "effect"]
    grouped = frame.sort("node", "ts", *parts).group_by("node", "ts", maintain_order=True).agg(*parts)
    # one JSON text per distinct set of taints: a node's set repeats at every spec point (the
    # bench's M first run wrote ~130,000 texts of a few dozen sets)
    sets = grouped.select(parts).unique(maintain_order=True)
    texts = [json.dumps([{"key": k, "value": v, "effect": e} for k, v, e in zip(ks, vs, es, strict=True)])
             for ks, vs, es in zip(sets["key"].to_list(), sets["taint_value"].to_list(), sets["effect"].to_list(), strict=True)]
    return grouped.join(sets.with_columns(taints=pl.Series(texts, dtype=pl.Utf8)), on=parts, how="left",
                        maintain_order="left").select("node", "ts", "taints")


def pods_frame(info: pl.DataFrame, owner: pl.DataFrame | None, qos: pl.DataFrame | None, phase: pl.DataFrame | None,
               step_seconds: int) -> pl.DataFrame:
    """Pod intervals from kube_pod_info (+ kube_pod_owner, _status_qos_class, _status_phase)."""
    keys = ["namespace", "pod"]
    if info.is_empty():
        return pl.DataFrame()
    obs = info.select(*keys, "ts", "node", "priority_class").unique(subset=keys + ["ts"], keep="last")
    for part, cols in ((owner, ["owner_kind", "owner_name"]), (qos, ["qos_class"]), (phase, ["phase"])):
        if part is not None and not part.is_empty():
            obs = obs.join(part.select(*keys, "ts", *cols).unique(subset=keys + ["ts"], keep="first"),
                           on=keys + ["ts"], how="left")
        else:
            obs = obs.with_columns(*[pl.lit(None, pl.Utf8).alias(c) for c in cols])
    obs = obs.with_columns(*_blank_to_null("node", "priority_class"),
                           overhead_cpu_cores=pl.lit(None, pl.Float64), overhead_memory_bytes=pl.lit(None, pl.Int64))
    return intervals(obs, keys, ["node", "owner_kind", "owner_name", "priority_class", "qos_class", "phase",
                                 "overhead_cpu_cores", "overhead_memory_bytes"], step_seconds)


def containers_frame(requests: pl.DataFrame, limits: pl.DataFrame, init_requests: pl.DataFrame,
                     init_limits: pl.DataFrame, info: pl.DataFrame, init_info: pl.DataFrame,
                     step_seconds: int) -> pl.DataFrame:
    """Container intervals: requests and limits (NULL = not set), init/sidecar flags."""
    keys = ["namespace", "pod", "container"]
    value_cols = ["cpu_request_cores", "memory_request_bytes", "cpu_limit_cores", "memory_limit_bytes"]
    parts = []
    for req, lim, inf, init in ((requests, limits, info, False), (init_requests, init_limits, init_info, True)):
        # one long frame (keys, ts, column, value) and one group_by instead of a join per column
        longs = []
        for frame, kind in ((req, "request"), (lim, "limit")):
            if not frame.is_empty():
                longs.append(frame.filter(pl.col("resource").is_in(["cpu", "memory"])).select(
                    *keys, "ts",
                    column=pl.when(pl.col("resource") == "cpu").then(pl.lit(f"cpu_{kind}_cores"))
                    .otherwise(pl.lit(f"memory_{kind}_bytes")),
                    value=pl.col("value")))
        if not inf.is_empty():
            longs.append(inf.select(*keys, "ts", column=pl.lit(None, pl.Utf8), value=pl.lit(None, pl.Float64)))
        if not longs:
            continue
        obs = pl.concat(longs).group_by(*keys, "ts").agg(
            *[pl.col("value").filter(pl.col("column") == c).first().alias(c) for c in value_cols])
        if init and not inf.is_empty() and "restart_policy" in inf.columns:
            flags = inf.select(*keys, "ts", restartable=pl.col("restart_policy") == "Always").unique(
                subset=keys + ["ts"], keep="first")
            obs = obs.join(flags, on=keys + ["ts"], how="left").with_columns(pl.col("restartable").fill_null(False))
        else:
            obs = obs.with_columns(restartable=pl.lit(False))
        parts.append(obs.with_columns(init_container=pl.lit(init), init_order=pl.lit(None, pl.Int32)))
    if not parts:
        return pl.DataFrame()
    obs = pl.concat(parts, how="diagonal_relaxed").with_columns(
        pl.col("memory_request_bytes", "memory_limit_bytes").round(0).cast(pl.Int64))
    return intervals(obs, keys, ["init_container", "restartable", "init_order", "cpu_request_cores", "cpu_limit_cores",
                                 "memory_request_bytes", "memory_limit_bytes"], step_seconds)


def owners_frame(replicasets: pl.DataFrame, jobs: pl.DataFrame, step_seconds: int) -> pl.DataFrame:
    """Owner intervals: ReplicaSet -> Deployment (kube_replicaset_owner), Job -> CronJob (kube_job_owner)."""
    parts = []
    if not replicasets.is_empty():
        parts.append(replicasets.select("namespace", kind=pl.lit("ReplicaSet"), name=pl.col("replicaset"),
                                        ts=pl.col("ts"), owner_kind=pl.col("owner_kind"), owner_name=pl.col("owner_name")))
    if not jobs.is_empty():
        parts.append(jobs.select("namespace", kind=pl.lit("Job"), name=pl.col("job_name"), ts=pl.col("ts"),
                                 owner_kind=pl.col("owner_kind"), owner_name=pl.col("owner_name")))
    if not parts:
        return pl.DataFrame()
    return intervals(pl.concat(parts), ["namespace", "kind", "name"], ["owner_kind", "owner_name"], step_seconds)


def workloads_frame(replicas: pl.DataFrame, max_surge: pl.DataFrame | None, step_seconds: int) -> pl.DataFrame:
    """Deployment intervals: replicas, strategy, absolute max surge.

    kube-state-metrics exposes no strategy type, but it only exposes
    kube_deployment_spec_strategy_rollingupdate_max_surge for RollingUpdate Deployments
    (internal/store/deployment.go), so a Deployment without it is Recreate. `max_surge` None
    means that metric is absent from the source (strategy unknown)."""
    if replicas.is_empty():
        return pl.DataFrame()
    keys = ["namespace", "deployment"]
    obs = replicas.select(*keys, "ts", replicas=pl.col("value").round(0).cast(pl.Int32)).unique(
        subset=keys + ["ts"], keep="first")
    if max_surge is None:
        obs = obs.with_columns(strategy=pl.lit(None, pl.Utf8), max_surge_pods=pl.lit(None, pl.Int32))
    else:
        surge = max_surge.select(*keys, "ts", max_surge_pods=pl.col("value").round(0).cast(pl.Int32)).unique(
            subset=keys + ["ts"], keep="first")
        obs = obs.join(surge, on=keys + ["ts"], how="left").with_columns(
            strategy=pl.when(pl.col("max_surge_pods").is_not_null()).then(pl.lit("RollingUpdate")).otherwise(pl.lit("Recreate")))
    obs = obs.with_columns(kind=pl.lit("Deployment"), name=pl.col("deployment"))
    return intervals(obs, ["namespace", "kind", "name"], ["replicas", "strategy", "max_surge_pods"], step_seconds)


def hpas_frame(targets: pl.DataFrame, info: pl.DataFrame | None, step_seconds: int) -> pl.DataFrame:
    """HPA metric intervals with their scale target (kube_horizontalpodautoscaler_info)."""
    if targets.is_empty():
        return pl.DataFrame()
    keys = ["namespace", "horizontalpodautoscaler"]
    obs = targets.select(*keys, "metric_name", "ts")
    if info is not None and not info.is_empty():
        obs = obs.join(info.select(*keys, "ts", target_kind=pl.col("scaletargetref_kind"),
                                   target_name=pl.col("scaletargetref_name")).unique(subset=keys + ["ts"], keep="first"),
                       on=keys + ["ts"], how="left")
    else:
        obs = obs.with_columns(target_kind=pl.lit(None, pl.Utf8), target_name=pl.lit(None, pl.Utf8))
    obs = obs.rename({"horizontalpodautoscaler": "hpa"})
    return intervals(obs, ["namespace", "hpa", "metric_name"], ["target_kind", "target_name"], step_seconds)


def quotas_frame(quotas: pl.DataFrame, step_seconds: int) -> pl.DataFrame:
    """ResourceQuota hard limits (cores for cpu, bytes for memory, counts otherwise)."""
    if quotas.is_empty():
        return pl.DataFrame()
    obs = quotas.select("namespace", quota=pl.col("resourcequota"), resource=pl.col("resource"), ts=pl.col("ts"),
                        hard=pl.col("value"))
    return intervals(obs, ["namespace", "quota", "resource"], ["hard"], step_seconds)


def restarts_frame(totals: pl.DataFrame, reasons: pl.DataFrame | None, after) -> pl.DataFrame:
    """One row per observed restart: where kube_pod_container_status_restarts_total rose between
    two consecutive observations, the later time (> `after`, which is the baseline point), the new
    total, and the last terminated reason seen at that time."""
    keys = ["namespace", "pod", "container"]
    if totals.is_empty():
        return pl.DataFrame()
    rows = totals.unique(subset=keys + ["ts"], keep="first").sort(keys + ["ts"]).with_columns(
        prev=pl.col("value").shift(1).over(keys))
    rises = rows.filter((pl.col("value") > pl.col("prev")) & (pl.col("ts") > after)).select(
        *keys, "ts", restarts_total=pl.col("value").round(0).cast(pl.Int64))
    if rises.is_empty():
        return pl.DataFrame()
    if reasons is not None and not reasons.is_empty():
        # At a restart the reason series of the new termination begins while the previous one is
        # still within its last window: of the reasons seen at that time, the one whose run of
        # observations began last is the latest.
        seen = reasons.select(*keys, "reason", "ts").unique().sort(*keys, "reason", "ts")
        gap = seen.select(pl.col("ts").diff().over([*keys, "reason"]).dt.total_seconds()).to_series()
        step = gap.filter(gap > 0).min() if gap.filter(gap > 0).len() else 0
        seen = seen.with_columns(run_start=pl.when(gap.is_null() | (gap > (step or 0))).then(pl.col("ts"))).with_columns(
            pl.col("run_start").forward_fill().over([*keys, "reason"]))
        latest = seen.sort("run_start", descending=True).unique(subset=[*keys, "ts"], keep="first")
        rises = rises.join(latest.select(*keys, "ts", "reason"), on=keys + ["ts"], how="left")
    else:
        rises = rises.with_columns(reason=pl.lit(None, pl.Utf8))
    return rises


# --- raw samples -> usage (the same per-step numbers from every backend) ------------------------


class Raw:
    """Raw samples of one metric: `series` (sid + the wanted labels, one row per raw series) and
    `samples` (sid, t in epoch seconds, value). Labels are kept once per series, not per sample."""

    def __init__(self, series: pl.DataFrame, samples: pl.DataFrame) -> None:
        self.series, self.samples = series, samples

    @staticmethod
    def concat(parts: Sequence[Raw]) -> Raw:
        return Raw(pl.concat([p.series for p in parts]).unique(subset=["sid"], keep="first"),
                   pl.concat([p.samples for p in parts]))

    def only(self, series: pl.DataFrame) -> Raw:
        """The samples of the given series (a filtered `series` frame)."""
        return Raw(series, self.samples.join(series.select("sid"), on="sid", how="semi"))


def raw_frame(results: Sequence[dict[str, Any]] | Matrix, labels: Sequence[str]) -> Raw:
    """Raw samples (an instant query of `metric[range]`). `sid` identifies a full label set within
    this process (a hash), so answers for different times or namespaces concatenate. NaN/+-Inf
    are dropped."""
    series_schema = {"sid": pl.Int64, **{label: pl.Utf8 for label in labels}}
    samples_schema = {"sid": pl.Int64, "t": pl.Float64, "value": pl.Float64}
    answer = as_matrix(results)
    if answer.points == 0:
        return Raw(pl.DataFrame(schema=series_schema), pl.DataFrame(schema=samples_schema))
    ids = pl.Series("sid", [hash(tuple(sorted(m.items()))) for m in answer.metrics], dtype=pl.Int64)
    series = pl.DataFrame({"sid": ids, **{label: [str(m.get(label, "")) for m in answer.metrics] for label in labels}},
                          schema=series_schema)
    samples = pl.DataFrame({"sid": ids.gather(_repeat_index(answer.counts)), "t": answer.times})
    samples = samples.with_columns(_numbers(answer.values))
    return Raw(series, samples.filter(~(pl.col("value").is_nan() | pl.col("value").is_infinite()).fill_null(False)))


def median_interval_seconds(raw: Raw) -> float | None:
    """The median time between consecutive samples of a series (the scrape interval where the data is)."""
    if raw.samples.height < 2:
        return None
    gaps = raw.samples.sort("sid", "t").select(gap=pl.col("t").diff().over("sid")).filter(pl.col("gap") > 0)["gap"]
    return float(gaps.median()) if gaps.len() else None  # type: ignore[arg-type]  # gaps > 0: no nulls


def _grid_ts(k: pl.Expr, step_seconds: int) -> pl.Expr:
    return (k * (step_seconds * 1_000_000)).cast(pl.Datetime("us"))


def cpu_from_counters(raw: Raw, keys: Sequence[str], lo: float, hi: float, step_seconds: int,
                      max_gap_seconds: float) -> pl.DataFrame:
    """Per-step CPU (cores) from raw counter samples, the way `rate` means it but computed here so
    every backend gives the same number: each increase between two consecutive samples of a
    series (a drop is a counter reset: the increase is the new value) is spread evenly over its
    interval (a, b]; the value at grid time T is the average over the covered part of the step
    (T - step, T]. Intervals longer than `max_gap_seconds` (the series was gone) count nowhere.
    Series of one container (a restart makes a new cgroup series) are summed. Returns keys, ts,
    cpu_cores for T in [lo, hi]."""
    out_schema = pl.Schema({**{k: pl.Utf8() for k in keys}, "ts": TS, "cpu_cores": pl.Float64()})
    per_series = _cpu_per_sid(raw, lo, hi, step_seconds, max_gap_seconds)
    if per_series is None:
        return pl.DataFrame(schema=out_schema)
    return per_series.join(raw.series.select("sid", *keys), on="sid").group_by(*keys, "k").agg(
        cpu_cores=pl.col("cpu").sum()).select(*keys, ts=_grid_ts(pl.col("k"), step_seconds), cpu_cores=pl.col("cpu_cores"))


def _cpu_per_sid(raw: Raw, lo: float, hi: float, step_seconds: int, max_gap_seconds: float) -> pl.DataFrame | None:
    """cpu_from_counters per raw series: sid, k (grid index), cpu; None when there is none."""
    if raw.samples.is_empty():
        return None
    s = float(step_seconds)
    # the previous sample of the same series: after the sort, the row before when its sid is the
    # same (what shift(1).over("sid") gives, without the per-group window work)
    same = pl.col("sid") == pl.col("sid").shift(1)
    pairs = raw.samples.sort("sid", "t").with_columns(
        a=pl.when(same).then(pl.col("t").shift(1)), prev=pl.when(same).then(pl.col("value").shift(1)),
    ).filter(pl.col("a").is_not_null() & (pl.col("t") > pl.col("a")) & (pl.col("t") - pl.col("a") <= max_gap_seconds))
    if pairs.is_empty():
        return None
    pairs = pairs.select(
        "sid", "a", "t",
        rate=pl.when(pl.col("value") >= pl.col("prev")).then(pl.col("value") - pl.col("prev"))
        .otherwise(pl.col("value")) / (pl.col("t") - pl.col("a")),
        k_lo=pl.max_horizontal((pl.col("a") / s).floor().cast(pl.Int64) + 1, pl.lit(int(math.ceil(lo / s)))),
        k_hi=pl.min_horizontal((pl.col("t") / s).ceil().cast(pl.Int64), pl.lit(int(math.floor(hi / s)))),
    ).filter(pl.col("k_hi") >= pl.col("k_lo"))
    if pairs.height and (pairs["k_hi"] - pairs["k_lo"]).max() == 0:  # each interval within one step
        spread = pairs.select("sid", "a", "t", "rate", k="k_lo")
    else:
        spread = pairs.select("sid", "a", "t", "rate", k=pl.int_ranges("k_lo", pl.col("k_hi") + 1)).explode(
            "k", empty_as_null=True)
    spread = spread.with_columns(
        cover=pl.min_horizontal(pl.col("t"), pl.col("k") * s) - pl.max_horizontal(pl.col("a"), pl.col("k") * s - s))
    return spread.group_by("sid", "k").agg(cpu=(pl.col("rate") * pl.col("cover")).sum() / pl.col("cover").sum())


def memory_peaks(raw: Raw, keys: Sequence[str], lo: float, hi: float, step_seconds: int,
                 window_seconds: float) -> pl.DataFrame:
    """Per-step peak working set: the largest sample in (T - window, T] (window = the step, or the
    scrape interval when that is longer, so every step holds a sample). Returns keys, ts, memory_bytes."""
    out_schema = pl.Schema({**{k: pl.Utf8() for k in keys}, "ts": TS, "memory_bytes": pl.Float64()})
    per = _memory_per_sid(raw, lo, hi, step_seconds, window_seconds)
    if per is None:
        return pl.DataFrame(schema=out_schema)
    return per.join(raw.series.select("sid", *keys), on="sid").group_by(*keys, "k").agg(
        memory_bytes=pl.col("value").max()).select(*keys, ts=_grid_ts(pl.col("k"), step_seconds),
                                                   memory_bytes=pl.col("memory_bytes"))


def _memory_per_sid(raw: Raw, lo: float, hi: float, step_seconds: int, window_seconds: float) -> pl.DataFrame | None:
    """memory_peaks per raw series: sid, k (grid index), value; None when there is none."""
    if raw.samples.is_empty():
        return None
    s = float(step_seconds)
    w = max(s, window_seconds)
    frame = raw.samples.select(
        "sid", "value",
        k_lo=pl.max_horizontal((pl.col("t") / s).ceil().cast(pl.Int64), pl.lit(int(math.ceil(lo / s)))),
        k_hi=pl.min_horizontal(((pl.col("t") + w) / s).ceil().cast(pl.Int64) - 1, pl.lit(int(math.floor(hi / s)))),
    ).filter(pl.col("k_hi") >= pl.col("k_lo"))
    if frame.height and (frame["k_hi"] - frame["k_lo"]).max() == 0:  # the usual case: one step per sample
        per = frame.select("sid", "value", k="k_lo")
    else:
        per = frame.select("sid", "value", k=pl.int_ranges("k_lo", pl.col("k_hi") + 1)).explode("k", empty_as_null=True)
    return per.group_by("sid", "k").agg(pl.col("value").max())


def usage_from_raw(cpu: Raw, memory: Raw, keys: Sequence[str], lo: float, hi: float, step_seconds: int,
                   max_gap_seconds: float, window_seconds: float) -> pl.DataFrame:
    """usage_frame(cpu_from_counters(cpu, ...), memory_peaks(memory, ...)), computed on integer
    container ids and given its key strings once at the end: joining and grouping ~100,000 rows a
    chunk on four string columns held ~150 MiB at once (bench/collect_bench.py's M first run)."""
    names = list(keys)
    ids = pl.concat([cpu.series.select(names), memory.series.select(names)]).unique().with_row_index("cid")

    def per_container(raw: Raw, per_sid: pl.DataFrame | None, agg: pl.Expr) -> pl.DataFrame:
        if per_sid is None:
            return pl.DataFrame(schema={"cid": pl.UInt32, "k": pl.Int64, "v": pl.Float64})
        sid_cid = raw.series.select("sid", *names).join(ids, on=names).select("sid", "cid")
        return per_sid.join(sid_cid, on="sid").group_by("cid", "k").agg(agg.alias("v"))

    c = per_container(cpu, _cpu_per_sid(cpu, lo, hi, step_seconds, max_gap_seconds), pl.col("cpu").sum())
    m = per_container(memory, _memory_per_sid(memory, lo, hi, step_seconds, window_seconds), pl.col("value").max())
    out = c.rename({"v": "cpu_cores"}).join(m.rename({"v": "memory_bytes"}), on=["cid", "k"], how="full", coalesce=True)
    # a container's rows together, in time order: the store then finds each series as one run
    # rather than sorting the rows by a hash of their four key strings (store.ingest_usage: ~1 s
    # of CPU over bench/collect_bench.py's M first run)
    out = out.sort("cid", "k").join(ids, on="cid", maintain_order="left").select(
        *names, ts=_grid_ts(pl.col("k"), step_seconds),
        cpu_cores=pl.col("cpu_cores").cast(pl.Float32),
        # left as a float: the store's gate refuses what no int64 holds (1e19) before casting
        memory_bytes=pl.col("memory_bytes").round(0))
    return out.filter(pl.col("cpu_cores").is_not_null() | pl.col("memory_bytes").is_not_null())


# --- declared state at a coarse step ----------------------------------------------------------


def coarse_values(results: Sequence[dict[str, Any]] | Matrix, labels: Sequence[str],
                  aliases: dict[str, str] | None = None, equals_one: bool = False) -> pl.DataFrame:
    """A coarse answer (the last value per window and series, queries.render_coarse) folded as
    `max by (labels)` (then ` == 1` when `equals_one`) would have folded it on the server, as
    labels, T (window end, epoch seconds), val. Like Prometheus' `max`, a NaN loses to any number
    (a group of NaN only is dropped); +-Inf results are dropped, as to_frame drops them."""
    keys = [(aliases or {}).get(label, label) for label in labels]
    answer = as_matrix(results)
    if answer.points == 0:
        return pl.DataFrame(schema={**{key: pl.Utf8 for key in keys}, "T": pl.Int64, "val": pl.Float64})
    points = pl.DataFrame({"sid": _repeat_index(answer.counts), "T": answer.times.round(0).cast(pl.Int64),
                           "val": _numbers(answer.values)}).filter(~pl.col("val").is_nan().fill_null(True))
    series = pl.DataFrame({key: [str(m.get(label, "")) for m in answer.metrics] for key, label in zip(keys, labels, strict=True)},
                          schema={key: pl.Utf8 for key in keys}).with_row_index("sid").with_columns(pl.col("sid").cast(pl.Int64))
    out = points.join(series, on="sid").group_by(*keys, "T").agg(pl.col("val").max())
    if equals_one:
        out = out.filter(pl.col("val") == 1.0)
    return out.filter(~pl.col("val").is_infinite()).select(*keys, "T", "val")


def expand_coarse(coarse: pl.DataFrame, keys: Sequence[str], coarse_seconds: int, spec_step_seconds: int
                  ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Coarse windows -> the observations a query at the spec step would have returned.

    A window (T - coarse, T] whose series had the same last value in the window before and is
    still there in the window after held that value throughout (unless it changed and changed
    back within the window, which declared state does not do between two readings): it gives its
    value at every spec point of the window. Every other window with the series in it (or in the
    window before: a 0/1 state series that dropped to 0) is returned as (keys, T) to read again at
    the spec step. Returns (keys, ts, value) and the windows to refine."""
    obs_schema = pl.Schema({**{k: pl.Utf8() for k in keys}, "ts": TS, "value": pl.Float64()})
    kept, refine = kept_windows(coarse, keys, coarse_seconds, spec_step_seconds)
    if coarse.is_empty():
        return pl.DataFrame(schema=obs_schema), refine
    return expand_kept(kept, keys, coarse_seconds, spec_step_seconds), refine


def kept_windows(coarse: pl.DataFrame, keys: Sequence[str], coarse_seconds: int, spec_step_seconds: int
                 ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """expand_coarse without the expansion: the windows that held one value (keys, T, val, in
    expand_coarse's order) and the windows to refine."""
    if coarse.is_empty():
        return (pl.DataFrame(schema={**{k: pl.Utf8 for k in keys}, "T": pl.Int64, "val": pl.Float64}),
                pl.DataFrame(schema={**{k: pl.Utf8 for k in keys}, "T": pl.Int64}))
    c = coarse.sort(*keys, "T").with_columns(
        prev_val=pl.when(pl.col("T").shift(1).over(keys) == pl.col("T") - coarse_seconds)
        .then(pl.col("val").shift(1).over(keys)),
        next_has=(pl.col("T").shift(-1).over(keys) == pl.col("T") + coarse_seconds).fill_null(False),
    )
    keep = pl.col("prev_val").is_not_null() & (pl.col("prev_val") == pl.col("val")) & pl.col("next_has")
    refine = c.filter(~keep).select(*keys, "T")
    after = c.filter(~pl.col("next_has")).select(*keys, T=pl.col("T") + coarse_seconds)
    return c.filter(keep).select(*keys, "T", "val"), pl.concat([refine, after]).unique()


def expand_kept(kept: pl.DataFrame, keys: Sequence[str], coarse_seconds: int, spec_step_seconds: int) -> pl.DataFrame:
    """Kept windows (keys, T, val) -> their value at every spec point of (T - coarse, T]."""
    points = coarse_seconds // spec_step_seconds
    return kept.select(*keys, "T", "val", p=pl.int_ranges(1, points + 1)).explode(
        "p", empty_as_null=True).select(
        *keys, ts=((pl.col("T") - coarse_seconds + pl.col("p") * spec_step_seconds) * 1_000_000).cast(TS),
        value=pl.col("val"))


class Declared:
    """Declared-state observations of one metric over a chunk, kept compact until asked for: the
    coarse windows that held one value throughout (expanded to spec points on demand, a slice at
    a time) and the spec-step re-reads of the others. frame(a, b) is what the expanded
    observations filtered to [a, b] were, row for row (expanded windows first, then re-reads, per
    namespace batch); expanded whole, a 10-hour chunk of the bench's M cluster held ~160 MiB."""

    def __init__(self, parts: list[tuple[pl.DataFrame, pl.DataFrame | None]], keys: Sequence[str],
                 coarse_seconds: int, spec_step_seconds: int, lo: datetime, hi: datetime) -> None:
        self.parts, self.keys = parts, list(keys)
        self.coarse_seconds, self.spec_step_seconds, self.lo, self.hi = coarse_seconds, spec_step_seconds, lo, hi

    @staticmethod
    def concat(items: Sequence[Declared]) -> Declared:
        first = items[0]
        return Declared([p for item in items for p in item.parts], first.keys, first.coarse_seconds,
                        first.spec_step_seconds, first.lo, first.hi)

    def reread_windows(self, objects: Sequence[str]) -> pl.DataFrame:
        """(objects, T): the coarse windows (T - coarse, T] in which some series of an object (the
        `objects` columns, a prefix of what identifies a series) was read again at the spec step."""
        schema = pl.Schema({**{o: pl.Utf8() for o in objects}, "T": pl.Int64()})
        coarse = self.coarse_seconds
        parts = [fine.select(*objects, T=(pl.col("ts").dt.epoch("s") + coarse - 1) // coarse * coarse)
                 for _, fine in self.parts if fine is not None and not fine.is_empty()]
        return pl.concat(parts).unique() if parts else pl.DataFrame(schema=schema)

    def frame(self, a: datetime | None = None, b: datetime | None = None,
              reread: pl.DataFrame | None = None) -> pl.DataFrame:
        """Observations with ts in [a, b] (None: open) within the chunk's spec points.

        With `reread` (objects, T: reread_windows of every metric joined with this one), a kept
        window of an object that holds no re-read gives only its first and last spec point in
        [a, b]: there every metric of the object has the same rows at every spec point, so the
        joined observations repeat and the stored intervals, which keep per key and value set the
        earliest and the latest time (store.write_spec), come out the same from the two ends
        (bench/collect_bench.py's M first run: 72 points of a 6-hour window, most of _frames'
        work). Rows at one object and time are the whole expansion's, in its order."""
        lo = self.lo if a is None else max(self.lo, a)
        hi = self.hi if b is None else min(self.hi, b)
        lo_s, hi_s = lo.replace(tzinfo=UTC).timestamp(), hi.replace(tzinfo=UTC).timestamp()
        out = []
        for kept, fine in self.parts:
            near = kept.filter((pl.col("T") >= lo_s) & (pl.col("T") - self.coarse_seconds < hi_s))
            if reread is None:
                obs = expand_kept(near, self.keys, self.coarse_seconds, self.spec_step_seconds)
            else:
                on = list(reread.columns)
                busy = near.join(reread, on=on, how="semi", maintain_order="left")
                calm = near.join(reread, on=on, how="anti", maintain_order="left")
                obs = pl.concat([expand_kept(busy, self.keys, self.coarse_seconds, self.spec_step_seconds),
                                 window_ends(calm, self.keys, self.coarse_seconds, self.spec_step_seconds, lo, hi)])
            if fine is not None:
                obs = pl.concat([obs, fine.select(obs.columns)])
            out.append(obs.filter(pl.col("ts").is_between(lo, hi)))
        return out[0] if len(out) == 1 else pl.concat(out)


def changing_windows(results: Sequence[dict[str, Any]], label: str, coarse_seconds: int, spec_step_seconds: int,
                     lo: datetime, hi: datetime) -> pl.DataFrame:
    """(label, T): the coarse windows (T - coarse, T] in which a series of spec-step results
    (kube_node_labels) is there at some of the window's spec points in [lo, hi] and not at
    others, named by the series' `label` (its node): where a node's labels may differ from one
    point to the next. Elsewhere each series is there at every point of the window or at none."""
    schema = pl.Schema({label: pl.Utf8(), "T": pl.Int64()})
    answer = as_matrix(results)
    if not answer.points:
        return pl.DataFrame(schema=schema)
    step, coarse = spec_step_seconds, coarse_seconds
    first_s = -(-int((lo - _EPOCH).total_seconds()) // step) * step  # the first and last spec points in [lo, hi]
    last_s = int((hi - _EPOCH).total_seconds()) // step * step
    points = pl.DataFrame({"i": _repeat_index(answer.counts), "s": answer.times.round(0).cast(pl.Int64)})
    seen = points.group_by("i", T=(pl.col("s") + coarse - 1) // coarse * coarse).agg(n=pl.len())
    window_points = (pl.min_horizontal(pl.col("T"), pl.lit(last_s))
                     - pl.max_horizontal(pl.col("T") - coarse + step, pl.lit(first_s))) // step + 1
    names = pl.DataFrame({label: [str(m.get(label, "")) for m in answer.metrics]}, schema={label: pl.Utf8})
    partial = seen.filter(pl.col("n") < window_points).select("i", "T")
    return names.with_row_index("i").with_columns(pl.col("i").cast(pl.Int64)).join(
        partial, on="i").select(label, "T").unique()


_EPOCH = datetime(1970, 1, 1)


def window_ends(kept: pl.DataFrame, keys: Sequence[str], coarse_seconds: int, spec_step_seconds: int,
                lo: datetime, hi: datetime) -> pl.DataFrame:
    """Kept windows (keys, T, val) -> their value at the first and at the last spec point of
    (T - coarse, T] within [lo, hi] (one point when they coincide; none outside): expand_kept's
    rows at those two times, the first points of all windows before the last ones."""
    step_us, points = spec_step_seconds * 1_000_000, coarse_seconds // spec_step_seconds
    lo_us, hi_us = (lo - _EPOCH) // timedelta(microseconds=1), (hi - _EPOCH) // timedelta(microseconds=1)
    start_us = (pl.col("T") - coarse_seconds) * 1_000_000  # the window's start, before its first point
    bounds = kept.select(
        *keys, "val", start=start_us,
        first=pl.max_horizontal(pl.lit(1), -((start_us - lo_us) // step_us)),  # ceil((lo - start) / step)
        last=pl.min_horizontal(pl.lit(points), (hi_us - start_us) // step_us))
    ends = [bounds.filter(pl.col("first") <= pl.col("last")).select(
                *keys, ts=(pl.col("start") + pl.col("first") * step_us).cast(TS), value=pl.col("val")),
            bounds.filter(pl.col("first") < pl.col("last")).select(
                *keys, ts=(pl.col("start") + pl.col("last") * step_us).cast(TS), value=pl.col("val"))]
    return pl.concat(ends)


def labels_from_provider_ids(info: pl.DataFrame) -> list[dict[str, Any]] | None:
    """Node labels when kube_node_labels is missing: the zone named in the cloud provider id of
    kube_node_info (aws:///<zone>/<instance>, gce://<project>/<zone>/<name>), as kube_node_labels
    answers would carry it. None when no provider id names a zone."""
    if info.is_empty() or "provider_id" not in info.columns:
        return None
    zone = info["provider_id"].str.extract(r"^aws:///([a-z0-9-]+)/", 1).fill_null(
        info["provider_id"].str.extract(r"^gce://[^/]+/([a-z0-9-]+)/", 1))
    found = info.with_columns(zone=zone).filter(pl.col("zone").is_not_null())
    if found.is_empty():
        return None
    out = []
    for (node, zone_name), part in found.group_by("node", "zone"):
        out.append({"metric": {"node": node, "label_topology_kubernetes_io_zone": zone_name},
                    "values": [[_epoch_s(t), "1"] for t in part["ts"]]})
    return out


def _epoch_s(t: Any) -> float:

    return t.replace(tzinfo=UTC).timestamp()


def pods_without_container_resources(pods: pl.DataFrame, containers: pl.DataFrame) -> list[str]:
    """`namespace/pod` of pods whose reported QoS class needs requests (Burstable, Guaranteed) but
    none of whose containers has a request or limit: pod-level resources, which kube-state-metrics
    does not export."""
    if pods.is_empty() or "qos_class" not in pods.columns:
        return []
    needs = pods.filter(pl.col("qos_class").is_in(["Burstable", "Guaranteed"])).select("namespace", "pod").unique()
    if needs.is_empty():
        return []
    if containers.is_empty():
        return []  # no container spec at all: that is a missing metric, warned about elsewhere
    declared = containers.filter(pl.any_horizontal(pl.col("cpu_request_cores", "cpu_limit_cores", "memory_request_bytes",
                                                          "memory_limit_bytes").is_not_null())).select("namespace", "pod").unique()
    known = containers.select("namespace", "pod").unique()
    lacking = needs.join(known, on=["namespace", "pod"], how="semi").join(declared, on=["namespace", "pod"], how="anti")
    return sorted(f"{ns}/{pod}" for ns, pod in lacking.iter_rows())


# --- declared state from raw samples (short runs on a coarse kube-state-metrics scrape) ----------


def _raw_points(results: Sequence[dict[str, Any]] | Matrix) -> tuple[pl.Series, pl.Series, pl.Series]:
    """(series index, time in ms, value) of every raw sample, NaN and +-Inf kept (they are what
    `last_over_time` would pick)."""
    answer = as_matrix(results)
    return _repeat_index(answer.counts), (answer.times * 1000).round(0).cast(pl.Int64), _numbers(answer.values)


def _last_per_step(results: Sequence[dict[str, Any]] | Matrix, first_s: int, last_s: int, step_s: int) -> pl.DataFrame:
    """Per raw series (`sid`, its index in `results`) and grid index k (grid time k * step in
    [first_s, last_s]): the value of its last sample in (k * step - step, k * step], which is what
    `last_over_time(m[step - 1ms])` evaluated at k * step gives (Prometheus' range selectors hold
    both ends; timestamps are whole milliseconds, so that window is exactly one step)."""
    sid, t_ms, values = _raw_points(results)
    step_ms = step_s * 1000
    k = (t_ms + step_ms - 1) // step_ms  # the one grid time whose window holds the sample
    samples = pl.DataFrame({"sid": sid, "k": k, "t": t_ms}).with_columns(values)
    samples = samples.filter(pl.col("k").is_between(first_s // step_s, last_s // step_s))
    # answers list a series' samples in time order; polars keeps that order within each group
    return samples.group_by("sid", "k").agg(pl.col("value").last())


def stepped_from_raw(results: Sequence[dict[str, Any]] | Matrix, labels: Sequence[str], aliases: dict[str, str] | None,
                     first_s: int, last_s: int, step_s: int, equals_one: bool = False) -> pl.DataFrame:
    """What `max by (labels) (last_over_time(m[step - 1ms]))` (with ` == 1` when `equals_one`)
    over the grid first_s..last_s would have answered, as to_frame gives it (labels, ts, value),
    computed from the raw samples of `m` in (first_s - step, last_s]. Like Prometheus' `max`, a NaN
    loses to any number (a group of NaN only is dropped, as to_frame drops NaN); +-Inf results are
    dropped as to_frame drops them."""
    keys = [(aliases or {}).get(label, label) for label in labels]
    schema = pl.Schema({**{key: pl.Utf8() for key in keys}, "ts": TS, "value": pl.Float64()})
    answer = as_matrix(results)
    if answer.points == 0:
        return pl.DataFrame(schema=schema)
    last = _last_per_step(answer, first_s, last_s, step_s).filter(~pl.col("value").is_nan().fill_null(True))
    series = pl.DataFrame({key: [str(m.get(label, "")) for m in answer.metrics] for key, label in zip(keys, labels, strict=True)},
                          schema={key: pl.Utf8 for key in keys}).with_row_index("sid").with_columns(pl.col("sid").cast(pl.Int64))
    out = last.join(series, on="sid").group_by(*keys, "k").agg(pl.col("value").max())
    if equals_one:
        out = out.filter(pl.col("value") == 1.0)
    return out.filter(~pl.col("value").is_infinite()).select(
        *keys, ts=(pl.col("k") * (step_s * 1_000_000)).cast(TS), value=pl.col("value"))


def stepped_series_from_raw(results: Sequence[dict[str, Any]] | Matrix, first_s: int, last_s: int,
                            step_s: int) -> list[dict[str, Any]]:
    """What `last_over_time(m[step - 1ms])` over the grid first_s..last_s would have answered (each
    series with its labels, the metric name too as Prometheus 2.x keeps it there, in the answer's order, and [[t, "value"], ...] at
    the grid times where it has a sample), from the raw samples of `m` in (first_s - step, last_s]."""
    answer = as_matrix(results)
    if answer.points == 0:
        return []
    last = _last_per_step(answer, first_s, last_s, step_s).sort("sid", "k")
    values: dict[int, list[list[Any]]] = {}
    for index, k, v in zip(last["sid"].to_list(), last["k"].to_list(), last["value"].to_list(), strict=True):
        values.setdefault(index, []).append([k * step_s, _prom_text(v)])
    return [{"metric": dict(answer.metrics[index]), "values": points} for index, points in values.items()]


def _prom_text(value: float | None) -> str:
    """A sample value as Prometheus writes it in JSON."""
    if value is None or math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value) if value != int(value) else str(int(value))
