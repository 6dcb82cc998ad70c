"""`capplan check`: the CI gate over manifests.

Static rules read only the manifests; usage rules (with a database) compare them with what the
containers used and with the recommendation. A finding names file, line, workload, container,
rule, severity, the manifest's value (`current`) and the measured one (`observed`): CPU in cores,
memory in bytes, as every capplan CSV. A container the store has never seen gets a
`no-usage-data` notice: its usage is unknown, never zero.
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass
from datetime import timedelta

from capplan.act.policy import LEVEL, Policy
from capplan.analysis.qos import qos_class
from capplan.manifests.load import Container, ManifestFile, Workload
from capplan.quantity import cpu_quantity, memory_quantity

COLUMNS = ["file", "line", "namespace", "kind", "name", "container", "rule", "severity", "current",
           "observed", "message", "resource"]
UNITS = {"cpu": "cores", "memory": "bytes"}


@dataclass
class Finding:
    file: str
    line: int
    namespace: str | None
    kind: str
    name: str
    container: str
    rule: str
    severity: str
    current: float | None
    observed: float | None
    message: str
    resource: str | None = None

    def record(self) -> dict:
        row = asdict(self)
        if self.resource == "memory":   # memory in whole bytes
            row["current"] = int(self.current) if self.current is not None else None
            row["observed"] = round(self.observed) if self.observed is not None else None
        return row


@dataclass
class Usage:
    """Measured usage of one workload container over the window."""

    memory_peak_bytes: float
    memory_p95_bytes: float
    cpu_p95_cores: float
    samples: int


def q(resource: str, value: float | None) -> str:
    if value is None:
        return "unset"
    return cpu_quantity(value) if resource == "cpu" else memory_quantity(value)


def _finding(w: Workload, c: Container, rule: str, policy: Policy, message: str, line: int | None = None,
             resource: str | None = None, current: float | None = None, observed: float | None = None) -> Finding:
    return Finding(file=str(w.file), line=line or c.line, namespace=w.namespace, kind=w.kind, name=w.name,
                   container=c.name, rule=rule, severity=policy.severity(rule), current=current,
                   observed=observed, message=message, resource=resource)


def _val(c: Container, kind: str, resource: str) -> float | None:
    return c.current[f"{resource}_{kind}_{UNITS[resource]}"]


def static_findings(w: Workload, policy: Policy) -> list[Finding]:
    out: list[Finding] = []
    for c in w.containers:
        for resource in ("cpu", "memory"):
            req, lim = _val(c, "request", resource), _val(c, "limit", resource)
            effective_req = req if req is not None else lim   # the apiserver defaults a request to the limit
            if policy.on("missing-requests") and effective_req is None:
                out.append(_finding(w, c, "missing-requests", policy,
                                    f"no {resource} request: the scheduler places it as if it needed nothing",
                                    resource=resource))
            if policy.on("limit-below-request") and req is not None and lim is not None and lim < req:
                out.append(_finding(w, c, "limit-below-request", policy,
                                    f"{resource} limit {q(resource, lim)} is below the request {q(resource, req)}: "
                                    "the apiserver rejects it", c.value_line("limits", resource), resource, lim, req))
            ratio = policy.get("limit-request-ratio", "max_ratio")
            if policy.on("limit-request-ratio") and ratio is not None and req and lim is not None and lim > req * ratio:
                out.append(_finding(w, c, "limit-request-ratio", policy,
                                    f"{resource} limit {q(resource, lim)} is more than {ratio:g}x the request "
                                    f"{q(resource, req)}", c.value_line("limits", resource), resource, lim, req * ratio))
        if policy.on("missing-memory-limit") and _val(c, "limit", "memory") is None:
            out.append(_finding(w, c, "missing-memory-limit", policy,
                                "no memory limit: one leak can take the node's memory", c.resources_line, "memory"))
        req, lim = _val(c, "request", "cpu"), _val(c, "limit", "cpu")
        ratio = policy.get("cpu-limit-ratio", "min_ratio") or 1.0
        if policy.on("cpu-limit-ratio") and ratio > 1.0 and req and lim is not None and req <= lim < req * ratio:
            out.append(_finding(w, c, "cpu-limit-ratio", policy,
                                f"cpu limit {q('cpu', lim)} is below {ratio:g}x the request {q('cpu', req)}: "
                                "bursts are throttled", c.value_line("limits", "cpu"), "cpu", lim, req * ratio))
    if policy.on("best-effort-protected") and w.namespace is not None:
        patterns = policy.get("best-effort-protected", "namespaces") or []
        if any(fnmatch.fnmatchcase(w.namespace, p) for p in patterns) and qos_class([c.current for c in w.containers]) == "BestEffort":
            first = next(c for c in w.containers if not c.init)
            out.append(_finding(w, first, "best-effort-protected", policy,
                                f"BestEffort pods in protected namespace {w.namespace}: evicted first under "
                                "node pressure", w.line))
    return out


def usage_findings(w: Workload, policy: Policy, usage: dict[tuple, Usage], recs: dict[tuple, dict],
                   known: dict[tuple, set[str]], window: timedelta) -> list[Finding]:
    out: list[Finding] = []
    days = window.total_seconds() / 86400
    for c in w.containers:
        key = (w.namespace, w.kind, w.name, c.name)
        u = usage.get(key)
        if u is None:
            if policy.on("no-usage-data"):
                why = "the workload is not in the store" if (w.namespace, w.kind, w.name) not in known \
                    else "the store has no usage samples for it"
                out.append(_finding(w, c, "no-usage-data", policy,
                                    f"usage unknown over the last {days:g}d ({why}): usage rules not applied"))
            continue
        lim = _val(c, "limit", "memory")
        margin = policy.get("memory-limit-below-peak", "margin") or 0.0
        if policy.on("memory-limit-below-peak") and lim is not None and lim < u.memory_peak_bytes * (1 + margin):
            out.append(_finding(w, c, "memory-limit-below-peak", policy,
                                f"memory limit {q('memory', lim)} is below the peak working set "
                                f"{q('memory', u.memory_peak_bytes)} + {margin:.0%} of the last {days:g}d: "
                                "an OOM kill waiting to happen", c.value_line("limits", "memory"), "memory",
                                lim, u.memory_peak_bytes))
        for resource, p95 in (("cpu", u.cpu_p95_cores), ("memory", u.memory_p95_bytes)):
            req = _val(c, "request", resource)
            if req is None:
                req = _val(c, "limit", resource)
            margin = policy.get("request-below-p95", "margin") or 0.0
            if policy.on("request-below-p95") and req is not None and req < p95 * (1 - margin):
                out.append(_finding(w, c, "request-below-p95", policy,
                                    f"{resource} request {q(resource, req)} is more than {margin:.0%} below the p95 "
                                    f"of usage {q(resource, p95)}", c.value_line("requests", resource), resource,
                                    req, p95))
        row = recs.get(key)
        factor = policy.get("request-waste", "factor")
        if policy.on("request-waste") and factor and row is not None and row["severity"] != "unknown":
            for resource, col in (("cpu", "cpu_request_recommended"), ("memory", "memory_request_recommended")):
                req, rec = _val(c, "request", resource), row[col]
                if req is not None and rec is not None and rec > 0 and req > factor * rec:
                    out.append(_finding(w, c, "request-waste", policy,
                                        f"{resource} request {q(resource, req)} is {req / rec:.1f}x the recommended "
                                        f"{q(resource, rec)} (policy: at most {factor:g}x)",
                                        c.value_line("requests", resource), resource, req, float(rec)))
    return out


def run_check(files: list[ManifestFile], policy: Policy, usage: dict[tuple, Usage] | None = None,
              recs: dict[tuple, dict] | None = None, known: dict[tuple, set[str]] | None = None,
              window: timedelta = timedelta(days=14)) -> list[Finding]:
    findings: list[Finding] = []
    for mf in files:
        for w in mf.workloads:
            findings.extend(static_findings(w, policy))
            if usage is not None:
                findings.extend(usage_findings(w, policy, usage, recs or {}, known or {}, window))
    findings.sort(key=lambda f: (f.file, f.line, f.container, -LEVEL[f.severity], f.rule))
    return findings
