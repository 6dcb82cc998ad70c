"""What the HTML report's charts draw, gathered from the analyses: the working set of the nodes
nearest eviction, the usage distributions of the top recommendations, and the forecasts' daily
history with trend and interval. Data only; capplan.render.html draws it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import polars as pl

from capplan import store
from capplan.analysis.forecast import (
    DEFAULT_HORIZON,
    DEFAULT_MIN_DAYS,
    daily_series,
    forecast_series,
    load_forecast_inputs,
)
from capplan.analysis.node_series import load_node_memory_peaks, load_node_series
from capplan.analysis.nodes import nodes_report
from capplan.analysis.recommend import recommend
from capplan.analysis.usage_samples import workload_container_samples
from capplan.errors import CapplanError
from capplan.report.compose import build_report
from capplan.report.model import ReportOptions, Section
from capplan.reservation import HARD_EVICTION_BYTES

# A node is "at risk" when its working-set peak reaches this share of the eviction threshold.
AT_RISK_SHARE = 0.9
MAX_RISK_CHARTS = 4
MAX_RECOMMENDATION_CHARTS = 4
MAX_FORECAST_CHARTS = 6
SEVERITY_RANK = {"critical": 3, "warning": 2, "ok": 1, "good": 0}


@dataclass
class NodeMemoryChart:
    """One node's summed working set over the window against its eviction threshold."""

    node: str
    ts: list[datetime]
    memory_bytes: np.ndarray
    allocatable_bytes: float
    threshold_bytes: float
    peak_share: float  # peak / threshold


@dataclass
class UsageChart:
    """The usage samples of one recommended workload container, with its recommendation row."""

    recommendation: dict[str, Any]
    cpu_cores: np.ndarray
    memory_bytes: np.ndarray


@dataclass
class ChartGroup:
    """A group of charts; `error` says why the group is empty when its analysis failed."""

    items: list[Any] = field(default_factory=list)
    error: str = ""
    total: int = 0  # what the group was chosen from (nodes at risk, recommended containers)


@dataclass
class ReportPage:
    """Everything the HTML page shows: the window, the node table, the charts' data, the sections."""

    options: ReportOptions
    start: datetime
    end: datetime
    nodes: pl.DataFrame
    sections: list[Section]
    memory_risk: ChartGroup
    usage: ChartGroup
    forecasts: ChartGroup




def _guarded(gather: Callable[[], ChartGroup]) -> ChartGroup:
    """One group of charts; a failing analysis leaves a reason instead of taking the page down."""
    try:
        return gather()
    except CapplanError as err:
        return ChartGroup(error=str(err))
    except Exception as exc:  # a bug in one analysis: say so on the page, keep the rest
        first = str(exc).splitlines()[0] if str(exc) else ""
        return ChartGroup(error=f"internal error: {type(exc).__name__}: {first}")


def memory_risk(con: duckdb.DuckDBPyConnection, nodes: pl.DataFrame, start: datetime, end: datetime) -> ChartGroup:
    """The nodes whose working-set peak reaches AT_RISK_SHARE of the hard eviction threshold
    (the closest one when none does); `total` counts all that reach it."""
    info = {r["node"]: r for r in nodes.to_dicts()}
    ranked = []
    for row in load_node_memory_peaks(con, start, end).to_dicts():
        node = info.get(row["node"])
        if node is None or not node.get("memory_capacity_bytes"):
            continue
        threshold = node["memory_capacity_bytes"] - HARD_EVICTION_BYTES
        ranked.append((float(row["peak_bytes"]) / threshold, row["node"], threshold))
    ranked.sort(reverse=True)
    at_risk = [r for r in ranked if r[0] >= AT_RISK_SHARE]
    chosen = at_risk[:MAX_RISK_CHARTS] or ranked[:1]
    # the series of the charted nodes only (all of them: 11 M rows at 10,000 containers)
    series = load_node_series(con, start, end, [node for _, node, _ in chosen]).sort("node", "ts")
    items = []
    for share, node, threshold in chosen:
        part = series.filter(pl.col("node") == node)
        items.append(NodeMemoryChart(
            node=node, ts=part["ts"].to_list(), memory_bytes=part["memory_bytes"].cast(pl.Float64).to_numpy(),
            allocatable_bytes=float(info[node]["memory_allocatable_bytes"]), threshold_bytes=float(threshold),
            peak_share=share))
    return ChartGroup(items=items, total=len(at_risk))


def top_recommendations(frame: pl.DataFrame, limit: int) -> list[dict[str, Any]]:
    """The rows most worth a look: highest severity, then the largest change."""
    rows = frame.to_dicts()

    def size(row: dict[str, Any]) -> float:
        cpu = abs((row.get("cpu_request_recommended") or 0) - (row.get("cpu_request_current") or 0))
        mem = abs((row.get("memory_request_recommended") or 0) - (row.get("memory_request_current") or 0)) / 2**30
        return cpu + mem

    rows = [r for r in rows if r.get("cpu_request_recommended") is not None or r.get("memory_request_recommended") is not None]
    rows.sort(key=lambda r: (SEVERITY_RANK.get(str(r.get("severity")), 0), size(r)), reverse=True)
    return rows[:limit]


def recommendation_usage(con: duckdb.DuckDBPyConnection, options: ReportOptions, start: datetime,
                         end: datetime) -> ChartGroup:
    """Usage samples of the top recommendations (`total`: all recommended containers)."""
    frame = recommend(con, window=options.window, namespaces=options.namespaces or None)
    items = []
    for row in top_recommendations(frame, MAX_RECOMMENDATION_CHARTS):
        mine = workload_container_samples(con, start, end, row["namespace"], row["owner_name"], row["container"])
        if mine.is_empty():
            continue
        items.append(UsageChart(row, mine["cpu_cores"].cast(pl.Float64).to_numpy(),
                                mine["memory_bytes"].cast(pl.Float64).to_numpy()))
    return ChartGroup(items=items, total=frame.height)


def forecast_curves(con: duckdb.DuckDBPyConnection, options: ReportOptions,
                    limit: int = MAX_FORECAST_CHARTS) -> ChartGroup:
    """The forecasts worth drawing (exhausted or within the horizon first, then the fastest
    growing), each with its daily history, trend line and interval, from the forecast's own
    daily series (default horizon, pool label and minimum history)."""
    inputs = load_forecast_inputs(con, options.window)
    daily, limits = daily_series(inputs)
    horizon = DEFAULT_HORIZON / timedelta(days=1)
    table = forecast_series(daily, limits, horizon, DEFAULT_MIN_DAYS)
    if options.namespaces:
        table = table.filter((pl.col("scope_kind") != "namespace") | pl.col("scope_name").is_in(options.namespaces))
    drawable = table.filter(pl.col("slope_per_day").is_not_null() & pl.col("allocatable").is_not_null()
                            & (pl.col("allocatable") > 0))
    urgent = drawable.filter(pl.col("days_to_exhaustion").is_not_null()).sort("days_to_exhaustion")
    growing = drawable.filter(pl.col("days_to_exhaustion").is_null() & (pl.col("slope_per_day") > 0)).with_columns(
        (pl.col("slope_per_day") / pl.col("allocatable")).alias("_growth")).sort("_growth", descending=True).drop("_growth")
    chosen = pl.concat([urgent, growing]).head(limit).to_dicts()
    keys = ["scope_kind", "scope_name", "resource", "basis"]
    curves = []
    for row in chosen:
        hist = daily.filter(*[pl.col(k) == row[k] for k in keys]).filter(
            pl.col("value").is_not_null() & pl.col("value").is_finite()).sort("day")
        if hist.is_empty():
            continue
        hist_days = hist["day"].to_list()
        last = hist_days[-1]

        def to_dt(d: Any, extra: float = 0.0) -> datetime:
            return datetime(d.year, d.month, d.day) + timedelta(days=extra)

        ahead = row["days_to_exhaustion"] if row["days_to_exhaustion"] is not None else horizon
        ahead = float(min(horizon, max(7.0, ahead * 1.15)))
        level, slope = row["trend_current"], row["slope_per_day"]
        back = (last - hist_days[0]).days
        steps = np.linspace(0, ahead, 25)
        curves.append({
            **{k: row[k] for k in ("scope", "resource", "basis", "allocatable", "days_to_exhaustion", "days_low",
                                    "days_high", "reason")},
            "history_t": [to_dt(d) for d in hist_days], "history_y": hist["value"].to_list(),
            "trend_t": [to_dt(last, -back)] + [to_dt(last, float(x)) for x in steps],
            "trend_y": [level - slope * back] + [level + slope * float(x) for x in steps],
            "band_t": [to_dt(last, float(x)) for x in steps],
            "band_lo": [level + row["slope_low_per_day"] * float(x) for x in steps],
            "band_hi": [level + row["slope_high_per_day"] * float(x) for x in steps],
        })
    return ChartGroup(items=curves, total=table.height)


def build_page(con: duckdb.DuckDBPyConnection, options: ReportOptions | None = None,
               sections: list[Section] | None = None) -> ReportPage:
    """The report's sections and the data of its charts."""
    options = options or ReportOptions()
    sections = sections if sections is not None else build_report(con, options)
    start, end = store.analysis_window(con, options.window)
    nodes = nodes_report(con, options.window, options.nodes or None)
    return ReportPage(
        options=options, start=start, end=end, nodes=nodes, sections=sections,
        memory_risk=_guarded(lambda: memory_risk(con, nodes, start, end)),
        usage=_guarded(lambda: recommendation_usage(con, options, start, end)),
        forecasts=_guarded(lambda: forecast_curves(con, options)),
    )
