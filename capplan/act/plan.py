"""From a recommendation to the values worth writing: the `--min-change` and `--severity`
filters, Kubernetes quantity rounding, limits never below requests, and the QoS class before and
after. Shared by `patch` (values against a manifest) and `resize-plan` (values against a running
pod)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import duckdb
import polars as pl

from capplan import store
from capplan.analysis.qos import qos_class
from capplan.analysis.recommend import SEVERITY_ORDER, recommend
from capplan.analysis.strategies import StrategyParams
from capplan.errors import UsageError
from capplan.manifests.load import FLAT
from capplan.quantity import (
    cpu_quantity,
    memory_quantity,
    parse_cpu_cores,
    parse_memory_bytes,
)

VALUE_KEYS = ("cpu_request_cores", "cpu_limit_cores", "memory_request_bytes", "memory_limit_bytes")
SECTION_OF = {flat: key for key, flat in FLAT.items()}   # cpu_limit_cores -> ("limits", "cpu")
REC_COLUMN = {"cpu_request_cores": "cpu_request_recommended", "cpu_limit_cores": "cpu_limit_recommended",
              "memory_request_bytes": "memory_request_recommended", "memory_limit_bytes": "memory_limit_recommended"}
LABEL = {"cpu_request_cores": "cpu request", "cpu_limit_cores": "cpu limit",
         "memory_request_bytes": "memory request", "memory_limit_bytes": "memory limit"}
RecKey = tuple[str, str, str, str]   # namespace, owner_kind, owner_name, container


@dataclass
class ValueChange:
    key: str                   # one of VALUE_KEYS
    old: float | None
    new: float | None          # None: the value is removed
    new_text: str | None       # the quantity written ("250m"), None when removed

    @property
    def section(self) -> tuple[str, str]:
        return SECTION_OF[self.key]

    def describe(self) -> str:
        old = quantity(self.key, self.old) if self.old is not None else "unset"
        new = self.new_text if self.new_text is not None else "unset"
        return f"{LABEL[self.key]} {old} -> {new}"


@dataclass
class Target:
    """The values one container should have, and what was done to the recommendation on the way."""

    final: dict[str, float | None]
    changes: list[ValueChange]
    notes: list[str] = field(default_factory=list)


def quantity(key: str, value: float) -> str:
    return cpu_quantity(value) if key.startswith("cpu") else memory_quantity(value)


def parse_min_change(text: str) -> float:
    """`--min-change 10%` (or 0.1) as a fraction; wrong usage is exit 2."""
    raw = text.strip()
    try:
        number = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
    except ValueError:
        raise UsageError(f"--min-change must be a percentage such as 10%, not {text!r}") from None
    if not 0 <= number < 100:
        raise UsageError(f"--min-change must be between 0% and 10000%, not {text!r}")
    return number


def parse_severity(text: str) -> int:
    """`--severity warning`: the lowest severity acted on."""
    if text not in SEVERITY_ORDER or text == "unknown":
        raise UsageError(f"--severity must be one of critical, warning, ok, good, not {text!r}")
    return SEVERITY_ORDER[text]


def target(current: dict[str, float | None], recommended: dict[str, float | None],
           min_change: float) -> Target:
    """The values to write for one container: the recommendation rounded to Kubernetes
    quantities (up: CPU to the millicore, memory to the MiB), a value kept when it would move
    by less than `min_change` of itself, then every limit raised to at least its request."""
    final: dict[str, float | None] = dict(current)
    notes: list[str] = []
    for key in VALUE_KEYS:
        old, new = current.get(key), recommended.get(key)
        if new is not None:
            text = quantity(key, new)
            new = parse_cpu_cores(text) if key.startswith("cpu") else float(parse_memory_bytes(text))
        if old is not None and new is not None:
            if abs(new - old) <= 1e-9 * max(1.0, old):
                continue
            if old > 0 and abs(new - old) / old < min_change:
                continue
        final[key] = new
    for resource, unit in (("cpu", "cores"), ("memory", "bytes")):
        req, lim = final[f"{resource}_request_{unit}"], final[f"{resource}_limit_{unit}"]
        if req is not None and lim is not None and lim < req:
            final[f"{resource}_limit_{unit}"] = req
            notes.append(f"{resource} limit raised to the request {quantity(f'{resource}_request_{unit}', req)} "
                         "(a limit below the request is rejected)")
    changes = []
    for key in VALUE_KEYS:
        old, new = current.get(key), final[key]
        if old == new:
            continue
        changes.append(ValueChange(key, old, new, quantity(key, new) if new is not None else None))
    return Target(final=final, changes=changes, notes=notes)


def qos_change(before: list[dict[str, float | None]], after: list[dict[str, float | None]]) -> tuple[str, str]:
    return qos_class(before), qos_class(after)


@dataclass
class Recommendations:
    """Recommendation rows by (namespace, owner_kind, owner_name, container), the workloads the
    store knows, and which containers it knows for each."""

    rows: dict[RecKey, dict]
    store_containers: dict[tuple[str, str, str], set[str]]
    strategy: str


def load_recommendations(con: duckdb.DuckDBPyConnection, strategy: str, window: timedelta,
                         params: StrategyParams | None = None, namespaces: list[str] | None = None) -> Recommendations:
    """Read recommendations through the recommend analysis, and the store's containers per workload."""
    frame = recommend(con, strategy, window, namespaces, params)
    rows = {(r["namespace"], r["owner_kind"], r["owner_name"], r["container"]): r for r in frame.iter_rows(named=True)}
    start, end = store.analysis_window(con, window)
    known = store.query(con, "act_workload_containers", {"start": start, "end": end})
    if namespaces:
        known = known.filter(pl.col("namespace").is_in(namespaces))
    containers: dict[tuple[str, str, str], set[str]] = {}
    for r in known.iter_rows(named=True):
        containers.setdefault((r["namespace"], r["owner_kind"], r["owner_name"]), set()).add(r["container"])
    for key in rows:
        containers.setdefault(key[:3], set()).add(key[3])
    return Recommendations(rows=rows, store_containers=containers, strategy=strategy)


def recommended_values(row: dict) -> dict[str, float | None]:
    return {key: (float(row[col]) if row[col] is not None else None) for key, col in REC_COLUMN.items()}


def acts_on(row: dict | None, min_severity: int) -> bool:
    """Whether a recommendation row is one to act on: it has values and is severe enough."""
    return row is not None and row["severity"] != "unknown" and SEVERITY_ORDER[row["severity"]] >= min_severity


def load_usage(con: duckdb.DuckDBPyConnection, window: timedelta) -> dict[RecKey, dict]:
    """Peak and p95 usage per workload container over the window (one DuckDB pass)."""
    start, end = store.analysis_window(con, window)
    series = store.query(con, "recommend_series", {"start": start, "end": end}).select(
        "series_id", "namespace", "owner_kind", "owner_name", "container")
    con.register("_act_series", series.to_arrow())
    try:
        stats = store.query(con, "act_usage_stats", {"start": start, "end": end})
    finally:
        con.unregister("_act_series")
    return {(r["namespace"], r["owner_kind"], r["owner_name"], r["container"]): r for r in stats.iter_rows(named=True)}
