"""`capplan resize-plan`: per running pod, the `kubectl patch --subresource resize` command that
moves it to the recommendation without a restart, and what cannot be done in place and why.

The rules are those of Kubernetes in-place pod resize (KEP-1287; beta and on by default since
1.33, GA in 1.35; kubernetes.io "Resize CPU and Memory Resources assigned to Containers"):
- the pod's QoS class cannot change (that needs a new pod: a rollout);
- a request or limit cannot be removed, only changed (auto drops CPU limits: a rollout does it);
- a memory-limit decrease is refused before 1.35 (allowed since, with a best-effort check that
  the container's usage is below the new limit); capplan refuses any memory limit below the
  container's recent working set at every version, since the kubelet would OOM-kill it;
- init containers that are not sidecars have finished and are not resized;
- a pod of a workload whose manifest still says otherwise gets the manifest's values at its next
  rollout (`capplan patch` first), so it is listed as blocked when the manifests are given.
The patch is a strategic merge patch (kubectl's default), which merges containers by name; a
JSON merge patch (`--type merge`) would replace the whole containers list.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from datetime import timedelta

import duckdb
import polars as pl

from capplan import store
from capplan.act.plan import (
    LABEL,
    VALUE_KEYS,
    Recommendations,
    acts_on,
    quantity,
    recommended_values,
    target,
)
from capplan.analysis.qos import qos_class
from capplan.errors import UsageError
from capplan.manifests.load import ManifestFile

ALIVE_TOLERANCE = timedelta(minutes=15)   # as capplan.analysis.recommend: seen this close to the end = running
RESIZE_BETA = (1, 33)        # InPlacePodVerticalScaling on by default
RESIZE_ALPHA = (1, 27)       # behind the feature gate
MEMORY_DECREASE = (1, 35)    # memory-limit decreases allowed in place
COLUMNS = ["namespace", "pod", "owner_kind", "owner_name", "node", "status", "qos_class", "changes",
           "blocked", "command"]


def parse_version(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.\d+)?", text.strip())
    if match is None:
        raise UsageError(f"--kubernetes-version must look like 1.35, not {text!r}")
    return int(match[1]), int(match[2])


@dataclass
class PodPlan:
    namespace: str
    pod: str
    owner_kind: str
    owner_name: str
    node: str | None
    status: str                       # resize | partial | blocked | none
    qos_class: str
    changes: list[str] = field(default_factory=list)     # "app: cpu request 200m -> 280m"
    blocked: list[str] = field(default_factory=list)     # why something is not in the command
    patch: dict | None = None
    command: str | None = None

    def record(self) -> dict:
        return {"namespace": self.namespace, "pod": self.pod, "owner_kind": self.owner_kind,
                "owner_name": self.owner_name, "node": self.node, "status": self.status,
                "qos_class": self.qos_class, "changes": "; ".join(self.changes),
                "blocked": "; ".join(self.blocked), "command": self.command or ""}


def _manifest_values(files: list[ManifestFile]) -> dict[tuple, dict]:
    out = {}
    for mf in files:
        for w in mf.workloads:
            for c in w.containers:
                out[(w.namespace, w.kind, w.name, c.name)] = c.current
    return out


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= 1e-9 * max(1.0, abs(a))


def plan_resize(con: duckdb.DuckDBPyConnection, recs: Recommendations, window: timedelta, recent: timedelta,
                version: tuple[int, int], min_change: float, min_severity: int,
                manifests: list[ManifestFile] | None = None, namespaces: list[str] | None = None) -> list[PodPlan]:
    start, end = store.analysis_window(con, window)
    series = store.query(con, "recommend_series", {"start": start, "end": end})
    last = store.query(con, "act_recent_memory", {"start": max(start, end - recent), "end": end})
    frame = series.join(last, on="series_id", how="left").filter(
        (pl.col("pod_seen_to") >= end - ALIVE_TOLERANCE) & (pl.col("last_ts") >= end - ALIVE_TOLERANCE))
    if namespaces:
        frame = frame.filter(pl.col("namespace").is_in(namespaces))
    # every container of each running pod (init containers too: they count in the QoS class)
    pods: dict[tuple[str, str], list[dict]] = {}
    for r in frame.sort("namespace", "pod", "container").iter_rows(named=True):
        pods.setdefault((r["namespace"], r["pod"]), []).append(r)
    declared = _manifest_values(manifests) if manifests is not None else None
    plans = []
    for (namespace, pod), rows in pods.items():
        plans.append(_plan_pod(namespace, pod, rows, recs, version, min_change, min_severity, declared))
    return plans


def _plan_pod(namespace: str, pod: str, rows: list[dict], recs: Recommendations, version: tuple[int, int],
              min_change: float, min_severity: int, declared: dict[tuple, dict] | None) -> PodPlan:
    first = rows[0]
    before = [{k: r[k] for k in VALUE_KEYS} for r in rows]
    plan = PodPlan(namespace, pod, first["owner_kind"], first["owner_name"], first["node"] or None,
                   "none", qos_class(before))
    if version < RESIZE_ALPHA:
        plan.status = "blocked"
        plan.blocked.append(f"in-place resize does not exist before 1.27 (--kubernetes-version {version[0]}.{version[1]})")
        return plan
    after = []
    containers_patch = []
    for r, cur in zip(rows, before, strict=True):
        key = (namespace, r["owner_kind"], r["owner_name"], r["container"])
        row = recs.rows.get(key)
        if r["init_container"] and not r["restartable"]:
            after.append(cur)
            continue
        if not acts_on(row, min_severity):
            after.append(cur)
            continue
        t = target(cur, recommended_values(row), min_change)  # type: ignore[arg-type]
        final = dict(t.final)
        for vc in t.changes:
            if vc.new is None:
                final[vc.key] = vc.old
                plan.blocked.append(f"{r['container']}: removing the {LABEL[vc.key]} cannot be done in place "
                                    "(a rollout can)")
        new_limit, old_limit = final["memory_limit_bytes"], cur["memory_limit_bytes"]
        working_set = r["memory_recent_max_bytes"]
        if new_limit is not None and old_limit is not None and new_limit < old_limit and version < MEMORY_DECREASE:
            final["memory_limit_bytes"] = old_limit
            plan.blocked.append(f"{r['container']}: memory limit {quantity('memory_limit_bytes', old_limit)} -> "
                                f"{quantity('memory_limit_bytes', new_limit)} is a decrease, refused in place "
                                f"before 1.35")
        elif new_limit is not None and working_set is not None and new_limit < working_set and \
                not _same(new_limit, old_limit):
            final["memory_limit_bytes"] = old_limit
            plan.blocked.append(f"{r['container']}: memory limit {quantity('memory_limit_bytes', new_limit)} is below "
                                f"the recent working set {quantity('memory_limit_bytes', working_set)}: it would "
                                "be OOM-killed")
        for resource, unit in (("cpu", "cores"), ("memory", "bytes")):
            req, lim = final[f"{resource}_request_{unit}"], final[f"{resource}_limit_{unit}"]
            if req is not None and lim is not None and lim < req:   # a kept limit under a raised request
                final[f"{resource}_request_{unit}"] = cur[f"{resource}_request_{unit}"]
                plan.blocked.append(f"{r['container']}: {resource} request kept: the limit it would exceed "
                                    "cannot change in place")
        changed = [k for k in VALUE_KEYS if not _same(final[k], cur[k])]
        if declared is not None and changed:
            manifest = declared.get(key)
            if manifest is None:
                plan.blocked.append(f"{r['container']}: no manifest for {r['owner_kind']}/{r['owner_name']} "
                                    "among --manifests")
            elif any(not _same(manifest[k], final[k]) for k in changed):
                plan.blocked.append(f"{r['container']}: the manifest still says otherwise: the next rollout "
                                    "reverts it; run `capplan patch` first")
        after.append(final)
        if changed:
            resources: dict = {}
            for k in changed:
                section = "limits" if "limit" in k else "requests"
                resources.setdefault(section, {})[k.split("_")[0]] = quantity(k, final[k])  # type: ignore[arg-type]
                plan.changes.append(f"{r['container']}: {LABEL[k]} "
                                    f"{quantity(k, cur[k]) if cur[k] is not None else 'unset'} -> "
                                    f"{quantity(k, final[k])}")  # type: ignore[arg-type]
            containers_patch.append((r["init_container"], {"name": r["container"], "resources": resources}))
    qos_after = qos_class(after)
    if qos_after != plan.qos_class:
        plan.status = "blocked"
        plan.blocked.insert(0, f"QoS class would change {plan.qos_class} -> {qos_after}: in-place resize cannot "
                               "change it (needs a rollout: `capplan patch`)")
        return plan
    if any("manifest" in b for b in plan.blocked):
        plan.status = "blocked"
        return plan
    if not containers_patch:
        plan.status = "blocked" if plan.blocked else "none"
        return plan
    spec: dict = {}
    for init, entry in containers_patch:
        spec.setdefault("initContainers" if init else "containers", []).append(entry)
    plan.patch = {"spec": spec}
    plan.status = "partial" if plan.blocked else "resize"
    body = json.dumps(plan.patch, separators=(",", ":"))
    plan.command = (f"kubectl patch pod {shlex.quote(pod)} -n {shlex.quote(namespace)} --subresource resize "
                    f"--type strategic -p {shlex.quote(body)}")
    if version < RESIZE_BETA:
        plan.blocked.append("needs the InPlacePodVerticalScaling feature gate before 1.33")
    return plan
