"""The report's recommendations section (the top rows by severity and savings), and the terminal
view of `capplan recommend`."""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from capplan.analysis.recommend import CONTRACT_COLUMNS, SEVERITY_ORDER
from capplan.analysis.strategies import DEFAULT_STRATEGY
from capplan.quantity import format_bytes, format_cpu
from capplan.report.model import Section
from capplan.report.results import ReportResults


def recommendation_sections(results: ReportResults) -> list[Section]:
    """The report's recommendations: the top rows by severity and savings (default strategy)."""
    frame, options = results.recommendations, results.options
    ranked = frame.with_columns(
        pl.col("severity").replace_strict(SEVERITY_ORDER, return_dtype=pl.Int32).alias("_rank"),
        (pl.col("cpu_savings_cores").abs().fill_null(0) + pl.col("memory_savings_gib").abs().fill_null(0)).alias("_size"),
    ).sort(["_rank", "_size"], descending=True).drop("_rank", "_size")
    top = ranked.head(options.top).select(CONTRACT_COLUMNS + ["cpu_savings_cores", "memory_savings_gib"])
    saved_cpu = float(frame["cpu_savings_cores"].fill_null(0).sum())
    saved_mem = float(frame["memory_savings_gib"].fill_null(0).sum())
    def change(amount: float, unit: str) -> str:  # a negative saving adds requests: say so
        return f"{'free' if amount >= 0 else 'add'} {abs(amount):.2f} {unit}"

    note = (f"strategy {DEFAULT_STRATEGY}; {frame.height} workload containers, top {top.height} shown; "
            f"applying all would {change(saved_cpu, 'cores')} and {change(saved_mem, 'GiB')} of requests")
    return [Section("recommendations", "Recommendations", top, note)]


# --- the terminal view of `capplan recommend` ----------------------------------------------------

# Savings in cores and GiB are ranked together at 4 GiB per core (capplan.report.actions.GIB_PER_CORE).
_TAGS = (  # (words in the reason, tag): the reason's clauses as short tags; --explain shows it whole
    ("OOM", "oom"), ("HPA", "hpa"), ("rising", "mem-trend"), ("throttl", "throttled"), ("p99", "cpu-p99"),
    ("p95", "cpu-p95"), ("percentile", "cpu-pct"), ("daily peaks", "mem-peaks"), ("peak", "mem-peak"),
    ("short-lived", "pooled"), ("shrinks at most", "limit-step"), ("kept at the current", "limit-kept"),
    ("no cpu limit", "no-cpu-limit"), ("history", "short-history"), ("no usage", "no-usage"),
)


def reason_tags(reason: str | None) -> str:
    """The reason as short tags (`cpu-p99 mem-peaks limit-step`), in the order they occur."""
    if not reason:
        return ""
    found: list[tuple[int, str]] = []
    for words, tag in _TAGS:
        at = reason.find(words)
        if at >= 0 and tag not in (t for _, t in found):
            found.append((at, tag))
    return " ".join(t for _, t in sorted(found)) or reason.split(":")[0]


def _change(current: float | None, new: float | None, fmt: Callable[[float], str]) -> str:
    """KRR's form: `200m -> 300m (+100m)`; the value alone when it does not change."""
    if new is None:
        return fmt(current) if current is not None else "-"
    if current is None:
        return f"- -> {fmt(new)}"
    if fmt(current) == fmt(new):
        return fmt(current)
    delta = new - current
    return f"{fmt(current)} -> {fmt(new)} ({'+' if delta > 0 else '-'}{fmt(abs(delta))})"


def _cpu(value: float) -> str:
    return format_cpu(value) or "0"


def _mem(value: float) -> str:
    return format_bytes(value) or "0"


def _savings(cpu: float, memory_gib: float) -> str:
    parts = []
    if round(cpu, 3):
        parts.append(("+" if cpu > 0 else "-") + _cpu(abs(cpu)))
    if memory_gib:
        parts.append(("+" if memory_gib > 0 else "-") + _mem(abs(memory_gib) * 2**30))
    return " ".join(parts) or "0"


def table_view(frame: pl.DataFrame, explain: bool = False) -> pl.DataFrame:
    """Recommendations for a terminal, biggest impact first (severity, then the size of the
    saving at 4 GiB per core): request and limit changes as `current -> new (+delta)`, what
    applying each saves (negative: adds), a TOTAL row, and the reason as tags (whole with `explain`)."""
    gib_per_core = 4.0
    ranked = frame.with_columns(
        pl.col("severity").replace_strict(SEVERITY_ORDER, default=0, return_dtype=pl.Int32).alias("_rank"),
        (pl.col("cpu_savings_cores").fill_null(0).abs() + pl.col("memory_savings_gib").fill_null(0).abs() / gib_per_core)
        .alias("_size"),
    ).sort(["_rank", "_size", "namespace", "owner_name", "container"], descending=[True, True, False, False, False])
    rows = []
    for r in ranked.iter_rows(named=True):
        cpu, mem = r["cpu_savings_cores"] or 0.0, r["memory_savings_gib"] or 0.0
        rows.append({
            "workload": f"{r['namespace']}/{r['owner_name']}", "container": r["container"],
            "saves": _savings(cpu, mem),
            "cpu_request": _change(r["cpu_request_current"], r["cpu_request_recommended"], _cpu),
            "memory_request": _change(r["memory_request_current"], r["memory_request_recommended"], _mem),
            "severity": r["severity"],
            "why" if not explain else "reason": reason_tags(r["reason"]) if not explain else (r["reason"] or ""),
            "cpu_limit": _change(r["cpu_limit_current"], r["cpu_limit_recommended"], _cpu),
            "memory_limit": _change(r["memory_limit_current"], r["memory_limit_recommended"], _mem),
            "pods": r["pods"], "kind": r["owner_kind"],
        })
    cpu_total = float(frame["cpu_savings_cores"].fill_null(0).sum()) if frame.height else 0.0
    mem_total = float(frame["memory_savings_gib"].fill_null(0).sum()) if frame.height else 0.0
    rows.append({"workload": "TOTAL", "container": f"{frame.height} containers", "saves": _savings(cpu_total, mem_total),
                 "cpu_request": "", "memory_request": "", "severity": "",
                 "why" if not explain else "reason": "", "cpu_limit": "", "memory_limit": "",
                 "pods": int(frame["pods"].sum()) if frame.height else 0, "kind": ""})
    return pl.DataFrame(rows)
