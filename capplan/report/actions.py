""""Act on these": the few findings across all analyses worth acting on first, ranked by impact
(memory pressure and OOM kills, then exhaustion inside the forecast horizon, then blocked
rollouts, then the largest savings), each with the number that matters and the command that
shows the detail."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import polars as pl

from capplan.analysis.eviction import share_text
from capplan.quantity import format_bytes
from capplan.report.model import Section
from capplan.report.results import ReportResults

MAX_ACTIONS = 10
# Savings in cores and GiB are ranked together at 4 GiB per core, the memory:cpu ratio of
# general-purpose cloud instances (AWS m5/m6i, GCP e2-standard, Azure D-series: 4 GiB per vCPU).
GIB_PER_CORE = 4.0
# A saving smaller than this (in core-equivalents) is not worth a line of its own.
MIN_SAVING_CORES = 0.25
IMPACT_ORDER = {"pressure": 0, "oom": 1, "exhaustion": 2, "rollout": 3, "savings": 4}


@dataclass(frozen=True)
class Action:
    """One finding: what, how much, and where to look."""

    kind: str          # pressure, oom, exhaustion, rollout, savings
    severity: str      # high, medium, low
    finding: str       # one short line, with the number that matters
    command: str       # the command that shows the detail
    section: str       # the report section (and HTML anchor) with the detail
    magnitude: float   # orders actions of one kind: larger first


# A Deployment's pod is <deployment>-<pod-template-hash>-<5 random>, a DaemonSet's or a Job's
# <name>-<5 random> (kubernetes/kubernetes pkg/controller: names.SimpleNameGenerator, 5
# alphanumerics; pod-template-hash: rand.SafeEncodeString of a 32-bit hash, up to 10).
_REPLICASET_POD = re.compile(r"-[a-z0-9]{6,10}-[a-z0-9]{5}$")
_GENERATED_POD = re.compile(r"-[a-z0-9]{5}$")


def workload_of(pod: str) -> str:
    """The pod's name without its generated suffixes (`trainer-752a59734-4caf5` -> `trainer`)."""
    stripped = _REPLICASET_POD.sub("", pod)
    return stripped if stripped != pod else _GENERATED_POD.sub("", pod)


def _cmd_namespace(command: str, namespace: str | None) -> str:
    return f"{command} -n {namespace}" if namespace else command


def pressure_actions(results: ReportResults) -> list[Action]:
    """Nodes whose memory.available fell under the hard eviction threshold, and pods OOM-killed."""
    result = results.eviction
    if result is None:
        return []
    out = []
    for n in result.nodes.filter(pl.col("under_pressure")).iter_rows(named=True):
        first = result.ranked_all.filter((pl.col("node") == n["node"]) & pl.col("evicted_to_relieve")).sort("rank")
        who = f": {first['namespace'][0]}/{workload_of(first['pod'][0])} goes first" if first.height else ""
        out.append(Action("pressure", "high", f"{n['node']} {share_text(n['peak_usage_ratio'])} memory{who}",
                          f"capplan eviction --node {n['node']}", "eviction_nodes", float(n["peak_usage_ratio"] or 0)))
    pods = result.pods.filter(pl.col("oom_kills").fill_null(0) > 0).sort("oom_kills", descending=True)
    for r in pods.iter_rows(named=True):
        out.append(Action("oom", "high", f"{r['namespace']}/{workload_of(r['pod'])} OOM-killed {r['oom_kills']} times",
                          f"capplan eviction -n {r['namespace']} --view advice", "eviction_advice",
                          float(r["oom_kills"])))
    return out


def _days(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f}"


def exhaustion_actions(results: ReportResults) -> list[Action]:
    """One line per scope that runs out within the horizon: its soonest resource and basis."""
    table = results.forecast.filter(pl.col("days_to_exhaustion").is_not_null())
    out = []
    for (scope,), rows in table.sort("days_to_exhaustion").group_by(["scope"], maintain_order=True):
        r = rows.row(0, named=True)
        namespace = r["scope_name"] if r["scope_kind"] == "namespace" else None
        what = f"{scope} {r['resource']} {r['basis']}"
        if r["outlook"] == "exhausted":
            finding = f"{what}: at its limit now"
        else:
            finding = (f"{what}: {_days(r['days_to_exhaustion'])} days left "
                       f"({_days(r['days_low'])}-{_days(r['days_high'])})")
        out.append(Action("exhaustion", "high" if (r["days_to_exhaustion"] or 0) <= 30 else "medium", finding,
                          _cmd_namespace("capplan forecast", namespace), "forecast",
                          -float(r["days_to_exhaustion"] or 0)))
    return out


def rollout_actions(results: ReportResults) -> list[Action]:
    """Deployments whose rolling update cannot be placed now."""
    stuck = results.rollout.filter(pl.col("can_roll").eq(False))  # (null = unknown)
    return [Action("rollout", "medium",
                   f"{r['namespace']}/{r['deployment']} cannot roll out: "
                   f"{r['rolling_placeable_pods']}/{r['rolling_extra_pods']} surge pods fit",
                   f"capplan rollout -n {r['namespace']}", "rollout", float(r["rolling_extra_pods"] or 0))
            for r in stuck.iter_rows(named=True)]


def savings_actions(results: ReportResults) -> list[Action]:
    """Workloads whose requests are furthest above what they use, largest first."""
    frame = results.recommendations
    if frame.is_empty():
        return []
    per_workload = frame.group_by("namespace", "owner_name").agg(
        pl.col("cpu_savings_cores").fill_null(0).sum().alias("cpu"),
        pl.col("memory_savings_gib").fill_null(0).sum().alias("memory_gib"),
    ).with_columns((pl.col("cpu") + pl.col("memory_gib") / GIB_PER_CORE).alias("size")).filter(
        pl.col("size") >= MIN_SAVING_CORES).sort("size", "namespace", "owner_name", descending=[True, False, False])
    out = []
    for r in per_workload.iter_rows(named=True):
        parts = []
        if r["cpu"] > 0:
            parts.append(f"{r['cpu']:.2f}".rstrip("0").rstrip(".") + " cores")
        if r["memory_gib"] > 0:
            parts.append(format_bytes(r["memory_gib"] * 2**30))
        if not parts:
            continue
        out.append(Action("savings", "low", f"{r['namespace']}/{r['owner_name']}: {', '.join(parts)} unused",
                          f"capplan recommend -n {r['namespace']}", "recommendations",
                          float(r["size"])))
    return out


def consolidation_actions(results: ReportResults) -> list[Action]:
    """Nodes that could be drained after right-sizing, when the nodes that stay would neither
    break N-1 (where it holds today) nor exceed allocatable memory at the pods' common peak.
    Ranked with the savings by the drained allocatable, in the same core-equivalents."""
    pools = results.whatif.pools
    nodes = results.whatif.nodes.filter(pl.col("action") == "drain")
    total = pools.filter(pl.col("pool") == "TOTAL").row(0, named=True)
    if not total["nodes_removable"] or total["pressure_ok"] is False:
        return []
    if total["n_minus_1_holds"] is False and total["n_minus_1_holds_now"] is not False:
        return []  # draining would break N-1: not a finding to act on first
    cores = float(nodes["cpu_allocatable_cores"].sum())
    size = cores + float(nodes["memory_allocatable_bytes"].sum()) / 2**30 / GIB_PER_CORE
    names = " ".join(nodes["node"].to_list())
    return [Action("savings", "low", f"{total['nodes_removable']} of {total['nodes_now']} nodes could go ({names})", "capplan whatif --view nodes", "whatif", size)]


def act_on_these(results: ReportResults, limit: int = MAX_ACTIONS) -> list[Action]:
    """At most `limit` actions, by impact: pressure and OOM, exhaustion, rollouts, savings."""
    found = (pressure_actions(results) + exhaustion_actions(results) + rollout_actions(results)
             + consolidation_actions(results) + savings_actions(results))
    found.sort(key=lambda a: (IMPACT_ORDER[a.kind], -a.magnitude if math.isfinite(a.magnitude) else 0.0))
    return found[:limit]


ACTION_SCHEMA = {"rank": pl.Int64, "kind": pl.Utf8, "severity": pl.Utf8, "finding": pl.Utf8, "command": pl.Utf8,
                 "section": pl.Utf8}


def actions_section(results: ReportResults) -> list[Section]:
    """The list as the report's first section."""
    actions = act_on_these(results)
    frame = pl.DataFrame([{"rank": i + 1, "kind": a.kind, "severity": a.severity, "finding": a.finding,
                           "command": a.command, "section": a.section} for i, a in enumerate(actions)],
                         schema=ACTION_SCHEMA)
    note = "" if actions else "nothing to act on: no memory pressure, exhaustion, blocked rollout or large saving"
    return [Section("actions", "Act on these", frame, note)]
