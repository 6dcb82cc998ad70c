"""A real Prometheus for tests and benchmarks, fed with synthetic kube-state-metrics v2 and
cAdvisor series.

Typical use::

    from tests.promharness import build_cluster_tsdb, PrometheusServer
    from capplan.sample import generate_cluster

    cluster = generate_cluster(seed=7)
    info = build_cluster_tsdb(cluster, tsdb_dir, start=cluster.start, end=cluster.start + timedelta(days=1),
                              namespaces=["web"])
    with PrometheusServer(tsdb_dir) as prom:     # private copy of the TSDB, free port, polled /-/ready
        ... prom.url ...                           # e.g. http://127.0.0.1:41234

API (all times are naive UTC datetimes, as in capplan.sample, or epoch seconds):

- `Series(name, labels, ts, values, kind="gauge")`: one hand-written series; `ts` in epoch seconds.
- `write_openmetrics(series, out)`: OpenMetrics text (`# TYPE` per family, families contiguous,
  `# EOF` at the end); returns the number of samples written.
- `cluster_series(cluster, start, end, namespaces=None, ...)`: the series kube-state-metrics v2 and
  the kubelet's cAdvisor endpoint would expose for a `capplan.sample.SampleCluster` (or a time
  range / namespace subset of it), with the real label sets. CPU is a counter whose rate over each
  step equals the sample's `cpu_cores`; the working set is written at the sample's timestamps so
  `max_over_time` over a step equals the sample's `memory_bytes`.
- `build_tsdb(series, data_dir)` / `build_cluster_tsdb(cluster, data_dir, ...)`: backfill with
  `promtool tsdb create-blocks-from openmetrics` (`--max-block-duration` so big windows stay fast;
  the cluster writer goes window by window, running promtool on one window while the next is
  generated). Return a `TsdbInfo` (series, samples, seconds).
- `cached_tsdb(cache_root, key, build)`: build a TSDB once under `cache_root/key` and reuse it.
- `PrometheusServer(data_dir, copy=True)`: start `prometheus` on a free 127.0.0.1 port
  on its own copy of the TSDB (Prometheus writes into its data dir), wait for `/-/ready`, stop
  it on exit. `.url`, `.query(promql, time)`, `.query_range(promql, start, end, step)`.
- `missing_binaries()`: why prometheus/promtool cannot run (None when they can); the programs are
  found by tests/tools.py, and building a TSDB or starting the server without them is a skip that
  tests/conftest.py turns into a failure.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

import numpy as np
import polars as pl

from tests import tools

PROMETHEUS = tools.path("prometheus") or "prometheus"
PROMTOOL = tools.path("promtool") or "promtool"

# Scrape-time labels, as kube-prometheus-stack's ServiceMonitors add them.
KSM_TARGET = {"job": "kube-state-metrics", "instance": "10.96.0.20:8080", "endpoint": "http",
              "service": "kube-state-metrics"}


def missing_binaries() -> str | None:
    """Why a real Prometheus cannot run here (None when it can)."""
    return tools.missing("prometheus", "promtool")


# --- series and OpenMetrics text --------------------------------------------------------------


@dataclass
class Series:
    """One time series: metric name, labels, sample times (epoch seconds) and values.

    `kind` is "gauge" or "counter"; a counter's family is declared without `_total` and its
    samples carry the `_total` name, as OpenMetrics requires.
    """

    name: str
    labels: dict[str, str]
    ts: Sequence[float]
    values: Sequence[float]
    kind: str = "gauge"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def series_head(name: str, labels: dict[str, str]) -> str:
    """`name{a="x",b="y"}` with labels sorted and values escaped."""
    inner = ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def _family(name: str, kind: str) -> str:
    return name[: -len("_total")] if kind == "counter" and name.endswith("_total") else name


def write_openmetrics(series: Iterable[Series], out: TextIO, eof: bool = True) -> int:
    """Write series as OpenMetrics text, grouped by family; returns the sample count.

    Lines are formatted by polars (shortest round-trip float text) in slices, so millions of
    samples take seconds rather than minutes."""
    by_family: dict[tuple[str, str], list[Series]] = {}
    for s in series:
        by_family.setdefault((_family(s.name, s.kind), s.kind), []).append(s)
    samples = 0
    for (family, kind), members in by_family.items():
        out.write(f"# TYPE {family} {kind}\n")
        heads, counts, ts_parts, value_parts = [], [], [], []
        for s in members:
            ts = np.asarray(s.ts, dtype=np.int64)
            head = series_head(s.name, s.labels)
            if len(ts) > 1 and np.any(np.diff(ts) <= 0):
                raise ValueError(f"{head}: timestamps must strictly increase (promtool drops the rest silently)")
            heads.append(head)
            counts.append(len(ts))
            ts_parts.append(ts)
            value_parts.append(np.asarray(s.values, dtype=np.float64))
        total = int(sum(counts))
        if total == 0:
            continue
        idx = np.repeat(np.arange(len(heads), dtype=np.int64), counts)
        all_ts = np.concatenate(ts_parts)
        all_values = np.concatenate(value_parts)
        head_series = pl.Series("h", heads, dtype=pl.Utf8)
        for lo in range(0, total, 500_000):
            hi = min(total, lo + 500_000)
            text = pl.DataFrame({"h": head_series.gather(idx[lo:hi]), "v": all_values[lo:hi], "t": all_ts[lo:hi]}).select(
                pl.concat_str([pl.col("h"), pl.lit(" "), _value_text(pl.col("v")), pl.lit(" "), pl.col("t").cast(pl.Utf8)])
                .alias("line")
            ).write_csv(include_header=False, quote_style="never")
            out.write(text)
        samples += total
    if eof:
        out.write("# EOF\n")
    return samples


def _value_text(col: pl.Expr) -> pl.Expr:
    """Integral values as integers (as exporters print them), others in shortest round-trip form."""
    integral = (col == col.round(0)) & (col.abs() < 2.0**53)
    return pl.when(integral).then(col.cast(pl.Int64).cast(pl.Utf8)).otherwise(col.cast(pl.Utf8))


# --- the sample cluster as kube-state-metrics and cAdvisor series ------------------------------


def _epoch(dt: datetime | np.datetime64) -> int:
    if isinstance(dt, np.datetime64):
        return int(dt.astype("datetime64[s]").astype(np.int64))
    return int(dt.replace(tzinfo=UTC).timestamp())


def _uid(*parts: str) -> str:
    from capplan.sample import hash_stable

    h = f"{hash_stable('/'.join(parts)):016x}{hash_stable('uid:' + '/'.join(parts)):016x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _grid(cluster, lo: datetime, hi: datetime, every: timedelta) -> np.ndarray:
    """Times on the cluster's grid (multiples of `every` from cluster.start) within [lo, hi]."""
    first = cluster.start + math.ceil((lo - cluster.start) / every) * every
    if first > hi:
        return np.array([], dtype=np.int64)
    n = int((hi - first) / every) + 1
    return _epoch(first) + np.arange(n, dtype=np.int64) * int(every.total_seconds())


def _intervals(frame: pl.DataFrame, start: datetime, end: datetime, namespaces: set[str] | None) -> pl.DataFrame:
    if "namespace" in frame.columns and namespaces is not None:
        frame = frame.filter(pl.col("namespace").is_in(sorted(namespaces)))
    return frame.filter((pl.col("valid_to") >= start) & (pl.col("valid_from") <= end))


def ksm_label_name(key: str) -> str:
    """How kube-state-metrics names a Kubernetes label: `label_` + the key with every byte outside
    [a-zA-Z0-9_] turned to `_`, then camelCase to snake_case, lower case (internal/store/utils.go:
    SanitizeLabelName and toSnakeCase): eks.amazonaws.com/capacityType ->
    label_eks_amazonaws_com_capacity_type."""
    import re

    sanitized = "".join(ch if ch.isascii() and (ch.isalnum() or ch == "_") else "_" for ch in key)
    return "label_" + re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", sanitized).lower()


def _labels_from_json(text: str | None) -> dict[str, str]:
    """kube_node_labels' label_* labels for a node's labels."""
    return {ksm_label_name(key): str(value) for key, value in (json.loads(text) if text else {}).items()}


def _node_ip(node: str) -> str:
    """A stable 10.0.x.y address for a node (real scrape configs name targets by IP:port)."""
    from capplan.sample import hash_stable

    h = hash_stable("ip:" + node)
    return f"10.0.{(h >> 8) % 250 + 1}.{h % 250 + 1}"


def _provider_id(node: str, labels_json: str | None) -> str:
    """kube_node_info's provider_id: aws:///<zone>/<instance id> (the zone from the node's labels)."""
    zone = (json.loads(labels_json) if labels_json else {}).get("topology.kubernetes.io/zone", "zone-a")
    return f"aws:///{zone}/i-{_uid(node)[:17].replace('-', '')}"


def spec_series(cluster, start: datetime, end: datetime, namespaces: Iterable[str] | None = None,
                every: timedelta | None = None, zero_series: bool = True, node_labels: bool = False,
                init_restart_policy: bool = True) -> Iterator[Series]:
    """kube-state-metrics v2 series for the cluster's spec frames within [start, end], as a default
    install of a recent version (2.11+) exports them: kube_node_labels only with `node_labels`
    (its --metric-labels-allowlist; no series by default since 2.10), owner labels "" for pods
    without an owner (since 2.8), restart_policy on kube_pod_init_container_info (since 2.11;
    `init_restart_policy=False` models older ones), the last terminated reason of the latest
    restart (the series changes with it)."""
    f = cluster.frames
    every = every or cluster.step
    ns = set(namespaces) if namespaces is not None else None

    def gauge(name: str, labels: dict[str, str], lo: datetime, hi: datetime, value: float) -> Series | None:
        ts = _grid(cluster, max(lo, start), min(hi, end), every)
        if len(ts) == 0:
            return None
        return Series(name, {**KSM_TARGET, **labels}, ts, np.full(len(ts), value))

    out: list[Series | None] = []
    for n in _intervals(f["nodes"], start, end, None).iter_rows(named=True):
        lo, hi = n["valid_from"], n["valid_to"]
        for kind, prefix in (("capacity", "capacity"), ("allocatable", "allocatable")):
            out.append(gauge(f"kube_node_status_{kind}", {"node": n["node"], "resource": "cpu", "unit": "core"}, lo, hi, n[f"cpu_{prefix}_cores"]))
            out.append(gauge(f"kube_node_status_{kind}", {"node": n["node"], "resource": "memory", "unit": "byte"}, lo, hi, n[f"memory_{prefix}_bytes"]))
            out.append(gauge(f"kube_node_status_{kind}", {"node": n["node"], "resource": "pods", "unit": "integer"}, lo, hi, n[f"pods_{prefix}"]))
        if node_labels:
            out.append(gauge("kube_node_labels", {"node": n["node"], **_labels_from_json(n["labels"])}, lo, hi, 1))
        out.append(gauge("kube_node_info", {"node": n["node"], "internal_ip": _node_ip(n["node"]),
                                            "provider_id": _provider_id(n["node"], n["labels"]),
                                            "kubelet_version": "v1.33.2", "container_runtime_version": "containerd://2.0.5",
                                            "os_image": "Ubuntu 24.04.2 LTS"}, lo, hi, 1))
        for taint in json.loads(n["taints"] or "[]"):
            out.append(gauge("kube_node_spec_taint", {"node": n["node"], "key": taint["key"], "value": taint.get("value", ""),
                                                      "effect": taint["effect"]}, lo, hi, 1))
    pods = _intervals(f["pods"], start, end, ns)
    for p in pods.iter_rows(named=True):
        lo, hi = p["valid_from"], p["valid_to"]
        base = {"namespace": p["namespace"], "pod": p["pod"], "uid": _uid(p["namespace"], p["pod"])}
        host_ip = _node_ip(p["node"]) if p["node"] else ""
        out.append(gauge("kube_pod_info", {**base, "node": p["node"] or "", "host_ip": host_ip, "pod_ip": "10.244.1.1",
                                           "created_by_kind": p["owner_kind"] or "",
                                           "created_by_name": p["owner_name"] or "",
                                           "priority_class": p["priority_class"] or "", "host_network": "false"}, lo, hi, 1))
        owned = p["owner_kind"] is not None
        # since kube-state-metrics 2.8 a pod without an owner has "" owner labels (was <none>)
        out.append(gauge("kube_pod_owner", {**base, "owner_kind": p["owner_kind"] if owned else "",
                                            "owner_name": p["owner_name"] if owned else "",
                                            "owner_is_controller": "true" if owned else ""}, lo, hi, 1))
        for qos in ("BestEffort", "Burstable", "Guaranteed"):
            if zero_series or qos == p["qos_class"]:
                out.append(gauge("kube_pod_status_qos_class", {**base, "qos_class": qos}, lo, hi, 1 if qos == p["qos_class"] else 0))
        for phase in ("Pending", "Running", "Succeeded", "Failed", "Unknown"):
            if zero_series or phase == p["phase"]:
                out.append(gauge("kube_pod_status_phase", {**base, "phase": phase}, lo, hi, 1 if phase == p["phase"] else 0))
    ctrs = _intervals(f["containers"], start, end, ns).join(
        pods.select("namespace", "pod", pl.col("node").alias("pod_node"), pl.col("valid_from").alias("pf"),
                    pl.col("valid_to").alias("pt")), on=["namespace", "pod"], how="left")
    restarts = f.get("restarts")
    for c in ctrs.iter_rows(named=True):
        lo, hi = max(c["valid_from"], c["pf"] or c["valid_from"]), min(c["valid_to"], c["pt"] or c["valid_to"])
        if lo > hi:
            continue
        base = {"namespace": c["namespace"], "pod": c["pod"], "uid": _uid(c["namespace"], c["pod"]), "container": c["container"]}
        init = "init_" if c["init_container"] else ""
        info = {**base, "image": f"registry.example/{c['container']}:1.0", "image_id": "", "container_id": "containerd://" + _uid(*base.values())}
        if c["init_container"] and init_restart_policy:
            info["restart_policy"] = "Always" if c["restartable"] else ""
        out.append(gauge(f"kube_pod_{init}container_info", info, lo, hi, 1))
        for kind, field in (("requests", "request"), ("limits", "limit")):
            res = {**base, "node": c["pod_node"] or ""}
            if c[f"cpu_{field}_cores"] is not None:
                out.append(gauge(f"kube_pod_{init}container_resource_{kind}", {**res, "resource": "cpu", "unit": "core"}, lo, hi, c[f"cpu_{field}_cores"]))
            if c[f"memory_{field}_bytes"] is not None:
                out.append(gauge(f"kube_pod_{init}container_resource_{kind}", {**res, "resource": "memory", "unit": "byte"}, lo, hi, c[f"memory_{field}_bytes"]))
        if c["init_container"]:
            continue
        # restarts_total steps up at each recorded restart; the last terminated reason appears after the first
        ts = _grid(cluster, max(lo, start), min(hi, end), every)
        if len(ts) == 0:
            continue
        mine = restarts.filter((pl.col("namespace") == c["namespace"]) & (pl.col("pod") == c["pod"])
                               & (pl.col("container") == c["container"])).sort("ts") if restarts is not None else None
        counts = np.zeros(len(ts))
        if mine is not None and mine.height:
            at = np.array([_epoch(t) for t in mine["ts"].to_list()])
            counts = np.searchsorted(at, ts, side="right").astype(float)
            reasons = mine["reason"].to_list()
            # the reason of the latest restart: the series for one reason ends when another begins
            latest = np.array([reasons[int(n) - 1] if n > 0 else "" for n in counts], dtype=object)
            for reason in dict.fromkeys(r for r in latest if r):
                seen = latest == reason
                out.append(Series("kube_pod_container_status_last_terminated_reason",
                                  {**KSM_TARGET, **base, "reason": reason}, ts[seen], np.ones(int(seen.sum()))))
        out.append(Series("kube_pod_container_status_restarts_total", {**KSM_TARGET, **base}, ts, counts, kind="counter"))
    for o in _intervals(f["owners"], start, end, ns).iter_rows(named=True):
        if o["kind"] == "ReplicaSet":
            labels = {"namespace": o["namespace"], "replicaset": o["name"]}
            name = "kube_replicaset_owner"
        elif o["kind"] == "Job":
            labels = {"namespace": o["namespace"], "job_name": o["name"]}
            name = "kube_job_owner"
        else:
            continue
        out.append(gauge(name, {**labels, "owner_kind": o["owner_kind"] or "", "owner_name": o["owner_name"] or "",
                                "owner_is_controller": "true" if o["owner_kind"] else ""}, o["valid_from"], o["valid_to"], 1))
    for w in _intervals(f["workloads"], start, end, ns).iter_rows(named=True):
        if w["kind"] != "Deployment":
            continue
        labels = {"namespace": w["namespace"], "deployment": w["name"]}
        out.append(gauge("kube_deployment_spec_replicas", labels, w["valid_from"], w["valid_to"], w["replicas"]))
        # kube-state-metrics only exposes max_surge for the RollingUpdate strategy
        if w["strategy"] == "RollingUpdate" and w["max_surge_pods"] is not None:
            out.append(gauge("kube_deployment_spec_strategy_rollingupdate_max_surge", labels, w["valid_from"], w["valid_to"], w["max_surge_pods"]))
    for h in _intervals(f["hpas"], start, end, ns).iter_rows(named=True):
        labels = {"namespace": h["namespace"], "horizontalpodautoscaler": h["hpa"]}
        out.append(gauge("kube_horizontalpodautoscaler_info", {**labels, "scaletargetref_api_version": "apps/v1",
                                                               "scaletargetref_kind": h["target_kind"] or "",
                                                               "scaletargetref_name": h["target_name"] or ""}, h["valid_from"], h["valid_to"], 1))
        out.append(gauge("kube_horizontalpodautoscaler_spec_target_metric", {**labels, "metric_name": h["metric_name"],
                                                                             "metric_target_type": "utilization"}, h["valid_from"], h["valid_to"], 80))
    for q in _intervals(f["resource_quotas"], start, end, ns).iter_rows(named=True):
        labels = {"namespace": q["namespace"], "resourcequota": q["quota"], "resource": q["resource"]}
        out.append(gauge("kube_resourcequota", {**labels, "type": "hard"}, q["valid_from"], q["valid_to"], q["hard"]))
        if zero_series:
            out.append(gauge("kube_resourcequota", {**labels, "type": "used"}, q["valid_from"], q["valid_to"], q["hard"] / 2))
    yield from (s for s in out if s is not None)


class _UsageState:
    """Running CPU counters across time windows, so consecutive windows continue each counter."""

    def __init__(self, rows: int) -> None:
        # Counters start above zero: Prometheus does not extrapolate a rate window back past a
        # counter's zero, which would shave (1 ms / step) off a fresh container's first rate.
        self.counter = np.full(rows, 10.0)
        self.started = np.zeros(rows, dtype=bool)


def _cadvisor_labels(ns: str, pod: str, container: str, node: str, qos: str) -> dict[str, str]:
    uid = _uid(ns, pod)
    cgroup = f"/kubepods/{qos.lower()}/pod{uid}" if qos != "Guaranteed" else f"/kubepods/pod{uid}"
    labels = {"namespace": ns, "pod": pod, "container": container, "node": node, "job": "kubelet",
              "metrics_path": "/metrics/cadvisor", "endpoint": "https-metrics", "service": "kubelet",
              "instance": f"{_node_ip(node)}:10250"}
    if container == PAUSE:
        # containerd's sandbox (pause) container: no container name, the pause image
        cid = _uid(ns, pod, "sandbox")
        labels.update(container="", id=f"{cgroup}/{cid}", image="registry.k8s.io/pause:3.10", name=cid)
    elif container:
        cid = _uid(ns, pod, container)
        labels.update(id=f"{cgroup}/{cid}", image=f"registry.example/{container}:1.0", name=cid)
    else:
        labels.update(id=cgroup, image="", name="")
    return labels


PAUSE = "\0pause"  # _cadvisor_labels' marker for the sandbox container


def usage_series(cluster, start: datetime, end: datetime, namespaces: Iterable[str] | None = None,
                 extras: bool = True, state: _UsageState | None = None) -> Iterator[Series]:
    """cAdvisor series for the cluster's modelled containers within [start, end] (sample grid).

    `container_cpu_usage_seconds_total{cpu="total"}` is a counter, one sample per step; a
    container's counter starts one step before its first sample (at 0) so the rate at every
    sample time is defined and equals the sample's cpu_cores. `container_memory_working_set_bytes`
    has the sample's memory_bytes at the sample's times. With `extras`, also the pod-level cgroup
    series (container="", the sum of the pod's containers, as a real kubelet exposes them) and the
    pause (sandbox) container as containerd exports it (container="", image=pause), which a
    collector must not count.
    Pass the same `state` to consecutive windows to continue the counters.
    """
    from capplan.sample import usage_matrix

    m = cluster.models
    step_s = int(cluster.step.total_seconds())
    ts = _grid(cluster, start, end, cluster.step)
    if len(ts) == 0:
        return
    state = state or _UsageState(m.height)
    cpu, mem, alive = usage_matrix(cluster, ts.astype("datetime64[s]").astype("datetime64[us]"))
    mem = mem.astype(np.int64)  # the sample format truncates the same way
    rows = np.arange(m.height)
    if namespaces is not None:
        rows = rows[m["namespace"].is_in(sorted(set(namespaces))).to_numpy()]
    pods = cluster.frames["pods"].select("namespace", "pod", "qos_class").unique(["namespace", "pod"])
    qos_of = {(r[0], r[1]): r[2] for r in pods.iter_rows()}
    nsv, podv, ctrv, nodev = (m[c].to_list() for c in ("namespace", "pod", "container", "node"))
    pod_cpu: dict[tuple[str, str, str], list] = {}
    for r in rows.tolist():
        live = np.nonzero(alive[r])[0]
        if len(live) == 0:
            continue
        labels = _cadvisor_labels(nsv[r], podv[r], ctrv[r], nodev[r], qos_of.get((nsv[r], podv[r]), "Burstable"))
        t = ts[live]
        increments = cpu[r, live] * step_s
        counter = state.counter[r] + np.cumsum(increments)
        if not state.started[r]:
            t_cpu = np.concatenate([[t[0] - step_s], t])
            v_cpu = np.concatenate([[state.counter[r]], counter])
            state.started[r] = True
        else:
            t_cpu, v_cpu = t, counter
        state.counter[r] = counter[-1]
        yield Series("container_cpu_usage_seconds_total", {**labels, "cpu": "total"}, t_cpu, v_cpu, kind="counter")
        yield Series("container_memory_working_set_bytes", labels, t, mem[r, live])
        if extras:
            key = (nsv[r], podv[r], nodev[r])
            acc = pod_cpu.setdefault(key, [np.zeros(len(ts)), np.zeros(len(ts), dtype=np.int64), np.zeros(len(ts), dtype=bool), 0.0])
            acc[0][live] += increments
            acc[1][live] += mem[r, live]
            acc[2][live] = True
    if extras:
        # pod-level cgroups (their counters restart with each window: a reset, which rate() handles)
        for (ns, pod, node), (inc, pmem, palive, _) in pod_cpu.items():
            live = np.nonzero(palive)[0]
            qos = qos_of.get((ns, pod), "Burstable")
            labels = _cadvisor_labels(ns, pod, "", node, qos)
            t = ts[live]
            yield Series("container_cpu_usage_seconds_total", {**labels, "cpu": "total"}, t,
                         np.cumsum(inc[live]) + 1000.0, kind="counter")
            yield Series("container_memory_working_set_bytes", labels, t, pmem[live])
            pause = _cadvisor_labels(ns, pod, PAUSE, node, qos)
            yield Series("container_cpu_usage_seconds_total", {**pause, "cpu": "total"}, t,
                         0.0001 * step_s * np.arange(1, len(t) + 1), kind="counter")
            yield Series("container_memory_working_set_bytes", pause, t, np.full(len(t), 1 << 20, dtype=np.int64))


def cluster_series(cluster, start: datetime | None = None, end: datetime | None = None,
                   namespaces: Iterable[str] | None = None, extras: bool = True, zero_series: bool = True,
                   spec_every: timedelta | None = None, node_labels: bool = False) -> Iterator[Series]:
    """Every kube-state-metrics and cAdvisor series of the cluster within [start, end]."""
    start = start or cluster.start
    end = end or cluster.end
    yield from spec_series(cluster, start, end, namespaces, every=spec_every, zero_series=zero_series,
                           node_labels=node_labels)
    yield from usage_series(cluster, start, end, namespaces, extras=extras)


# --- promtool backfill ------------------------------------------------------------------------


@dataclass
class TsdbInfo:
    """What a backfill wrote."""

    path: Path
    series: int
    samples: int
    seconds: float


def _promtool(text_file: Path, data_dir: Path, max_block: str) -> subprocess.Popen:
    tools.require("promtool")
    return subprocess.Popen(
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", "-q", f"--max-block-duration={max_block}",
         str(text_file), str(data_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )


def _wait(proc: subprocess.Popen, text_file: Path) -> None:
    _, err = proc.communicate()
    text_file.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise RuntimeError(f"promtool failed ({proc.returncode}): {err.strip()[-500:]}")


def build_tsdb(series: Iterable[Series], data_dir: str | Path, max_block: str = "162h") -> TsdbInfo:
    """Backfill hand-written series into `data_dir` (created) with promtool."""
    t0 = time.monotonic()
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    items = list(series)
    with tempfile.NamedTemporaryFile("w", suffix=".om", dir=data_dir.parent, delete=False) as fh:
        samples = write_openmetrics(items, fh)
    _wait(_promtool(Path(fh.name), data_dir, max_block), Path(fh.name))
    return TsdbInfo(data_dir, len(items), samples, time.monotonic() - t0)


def build_cluster_tsdb(cluster, data_dir: str | Path, start: datetime | None = None, end: datetime | None = None,
                       namespaces: Iterable[str] | None = None, *, extras: bool = True, zero_series: bool = True,
                       spec_every: timedelta | None = None, window: timedelta = timedelta(days=1),
                       parallel: int = 2, node_labels: bool = False) -> TsdbInfo:
    """Backfill the cluster (or a time range / namespace subset) window by window.

    Each window (aligned to `window` from the Unix epoch) goes to its own text file and promtool
    run; up to `parallel` promtool runs overlap with generating the next window, and each text
    file is deleted once its blocks are written.
    """
    t0 = time.monotonic()
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    start = start or cluster.start
    end = min(end or cluster.end, cluster.end)
    state = _UsageState(cluster.models.height)
    win_s = int(window.total_seconds())
    max_block = f"{max(2, int(window.total_seconds() // 3600))}h"
    running: list[tuple[subprocess.Popen, Path]] = []
    n_series = n_samples = 0
    lo = start
    index = 0
    try:
        while lo <= end:
            boundary = datetime.fromtimestamp((_epoch(lo) // win_s + 1) * win_s, tz=UTC).replace(tzinfo=None)
            hi = min(end, boundary - timedelta(microseconds=1))
            text = data_dir.parent / f".{data_dir.name}.{index}.om"
            with open(text, "w", buffering=1 << 20) as fh:
                items = list(spec_series(cluster, lo, hi, namespaces, every=spec_every, zero_series=zero_series,
                                         node_labels=node_labels))
                items += list(usage_series(cluster, lo, hi, namespaces, extras=extras, state=state))
                n_samples += write_openmetrics(items, fh)
                n_series += len(items)
                del items
            while len(running) >= parallel:
                _wait(*running.pop(0))
            running.append((_promtool(text, data_dir, max_block), text))
            lo, index = boundary, index + 1
        while running:
            _wait(*running.pop(0))
    finally:
        for proc, text in running:
            proc.kill()
            text.unlink(missing_ok=True)
    return TsdbInfo(data_dir, n_series, n_samples, time.monotonic() - t0)


def cached_tsdb(cache_root: str | Path, key: str, build: Callable[[Path], object]) -> Path:
    """`cache_root/key`, built once by `build(path)`; a half-built one (no DONE marker) is rebuilt.
    Concurrent callers (two benchmark processes) wait on a lock file instead of clobbering."""
    import fcntl

    root = Path(cache_root)
    root.mkdir(parents=True, exist_ok=True)
    target = root / key
    with open(root / f".{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "DONE").exists():
            return target
        partial = root / f".{key}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        build(partial)
        (partial / "DONE").write_text("ok\n")
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    return target


# --- the server -------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http_ok(proc: subprocess.Popen | None, url: str, timeout: float) -> bool:
    """Poll `url` until it answers 200 (True), the server process exits or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is None or proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


class PrometheusServer:
    """`prometheus` on 127.0.0.1 and a free port, serving a private copy of a TSDB.

    `extra_args` go to the command line (e.g. `--query.max-samples=1000`). Use as a context
    manager, or call start()/stop().
    """

    def __init__(self, data_dir: str | Path, *, copy: bool = True, extra_args: Sequence[str] = (),
                 workdir: str | Path | None = None, route_prefix: str = "") -> None:
        self.source = Path(data_dir)
        self.route_prefix = route_prefix.rstrip("/")  # e.g. "/prom": the API under http://host:port/prom/api/v1
        self.copy = copy
        self.extra_args = list(extra_args)
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.workdir = Path(workdir) if workdir else None
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.data_dir = self.source
        self.log_path: Path | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:41234 (with the route prefix, if any)."""
        return f"http://127.0.0.1:{self.port}{self.route_prefix}"

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        """Copy the TSDB, start Prometheus, and wait until /-/ready answers 200."""
        tools.require("prometheus")
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="capplan-prom-")
            self.workdir = Path(self._tmp.name)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.copy:
            self.data_dir = self.workdir / "data"
            shutil.rmtree(self.data_dir, ignore_errors=True)
            shutil.copytree(self.source, self.data_dir, ignore=shutil.ignore_patterns("DONE", "lock"))
        config = self.workdir / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 1m\n")
        self.log_path = self.workdir / "prometheus.log"
        for _attempt in range(5):
            self.port = free_port()
            log = open(self.log_path, "w")
            self.proc = subprocess.Popen(
                [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={self.data_dir}",
                 "--storage.tsdb.retention.time=100y", f"--web.listen-address=127.0.0.1:{self.port}",
                 *([f"--web.route-prefix={self.route_prefix}",
                    f"--web.external-url=http://127.0.0.1:{self.port}{self.route_prefix}"] if self.route_prefix else []),
                 *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
            log.close()
            if self._wait_ready(timeout):
                return self
            self.stop(cleanup=False)
            if "address already in use" not in self.log_path.read_text():
                break
        raise RuntimeError(f"prometheus did not become ready: {self.log_path.read_text()[-800:]}")

    def _wait_ready(self, timeout: float) -> bool:
        return wait_http_ok(self.proc, f"{self.url}/-/ready", timeout)

    def stop(self, cleanup: bool = True) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its private copy."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if cleanup and self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self.workdir = None

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _get(self, path: str, params: dict[str, object]) -> list[dict]:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=60) as resp:
            body = json.load(resp)
        return body["data"]["result"]

    def query(self, promql: str, at: datetime | float) -> list[dict]:
        """An instant query at `at` (naive UTC datetime or epoch seconds); the raw result list."""
        t = at if isinstance(at, (int, float)) else _epoch(at)
        return self._get("/api/v1/query", {"query": promql, "time": t})

    def query_range(self, promql: str, start: datetime | float, end: datetime | float, step: float) -> list[dict]:
        """A range query; the raw result list."""
        s = start if isinstance(start, (int, float)) else _epoch(start)
        e = end if isinstance(end, (int, float)) else _epoch(end)
        return self._get("/api/v1/query_range", {"query": promql, "start": s, "end": e, "step": step})


def openmetrics_text(series: Iterable[Series]) -> str:
    """The OpenMetrics text of `series` (for small hand-written cases and debugging)."""
    buf = io.StringIO()
    write_openmetrics(series, buf)
    return buf.getvalue()


# --- VictoriaMetrics -----------------------------------------------------------------------------

VICTORIA_METRICS = tools.path("victoria-metrics") or "victoria-metrics"


def missing_victoria_metrics() -> str | None:
    """Why a real VictoriaMetrics cannot run here (None when it can)."""
    return tools.missing("victoria-metrics")
    return None


class VictoriaMetricsServer:
    """Single-node VictoriaMetrics on 127.0.0.1 and a free port, with a temporary -storageDataPath.

    `import_series(series)` loads Series through its JSON-lines import API (/api/v1/import) and
    flushes them so queries see them at once. Use as a context manager."""

    def __init__(self, extra_args: Sequence[str] = ()) -> None:
        self.extra_args = list(extra_args)
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> VictoriaMetricsServer:
        tools.require("victoria-metrics")
        self._tmp = tempfile.TemporaryDirectory(prefix="capplan-vm-")
        work = Path(self._tmp.name)
        self.log_path = work / "vm.log"
        for _attempt in range(5):
            self.port = free_port()
            log = open(self.log_path, "w")
            self.proc = subprocess.Popen(
                [VICTORIA_METRICS, f"-storageDataPath={work / 'data'}", f"-httpListenAddr=127.0.0.1:{self.port}",
                 "-retentionPeriod=100y", "-loggerLevel=ERROR", *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            log.close()
            if self._wait_ready(timeout):
                return self
            self.stop(cleanup=False)
            if "address already in use" not in self.log_path.read_text():
                break
        raise RuntimeError(f"victoria-metrics did not become ready: {self.log_path.read_text()[-800:]}")

    def _wait_ready(self, timeout: float) -> bool:
        return wait_http_ok(self.proc, f"{self.url}/health", timeout)

    def import_series(self, series: Iterable[Series], batch: int = 2000) -> int:
        """POST the series as JSON lines ({"metric": {...}, "values": [...], "timestamps": [ms]}) to
        /api/v1/import, then /internal/force_flush; returns the number of samples."""
        samples = 0
        lines: list[bytes] = []

        def send() -> None:
            body = b"\n".join(lines) + b"\n"
            req = urllib.request.Request(f"{self.url}/api/v1/import", data=body, method="POST")
            with urllib.request.urlopen(req, timeout=120) as resp:
                resp.read()
            lines.clear()

        for s in series:
            ts = np.asarray(s.ts, dtype=np.float64)
            values = np.asarray(s.values, dtype=np.float64)
            doc = {"metric": {"__name__": s.name, **{k: str(v) for k, v in s.labels.items()}},
                   "values": values.tolist(), "timestamps": np.round(ts * 1000).astype(np.int64).tolist()}
            lines.append(json.dumps(doc).encode())
            samples += len(ts)
            if len(lines) >= batch:
                send()
        if lines:
            send()
        with urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=60) as resp:
            resp.read()
        return samples

    def stop(self, cleanup: bool = True) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if cleanup and self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> VictoriaMetricsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
