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
from capplan.analysis.forecast import DEFAULT_HORIZON
from capplan.analysis.node_series import load_node_series
from capplan.analysis.usage_samples import workload_container_samples
from capplan.errors import CapplanError
from capplan.report.compose import build_report_results
from capplan.report.model import ReportOptions, Section
from capplan.report.results import ReportResults
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


def memory_peaks(daily: pl.DataFrame) -> pl.DataFrame:
    """node, peak_bytes: each node's largest summed working set, the largest of its daily maxima
    (the report's node inputs hold them: the window's sums are not read again)."""
    return daily.group_by("node").agg(pl.col("memory_max_bytes").max().alias("peak_bytes")).sort("node")


def memory_risk(con: duckdb.DuckDBPyConnection, nodes: pl.DataFrame, daily: pl.DataFrame, start: datetime,
                end: datetime) -> ChartGroup:
    """The nodes whose working-set peak reaches AT_RISK_SHARE of the hard eviction threshold
    (the closest one when none does); `total` counts all that reach it. `daily`: the nodes' daily
    memory maxima (capplan.analysis.node_series.DAILY_SCHEMA)."""
    info = {r["node"]: r for r in nodes.to_dicts()}
    ranked = []
    for row in memory_peaks(daily).to_dicts():
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


def recommendation_usage(con: duckdb.DuckDBPyConnection, frame: pl.DataFrame, start: datetime,
                         end: datetime) -> ChartGroup:
    """Usage samples of the top recommendations in `frame` (the report's recommendations;
    `total`: all recommended containers)."""
    items = []
    for row in top_recommendations(frame, MAX_RECOMMENDATION_CHARTS):
        mine = workload_container_samples(con, start, end, row["namespace"], row["owner_name"], row["container"])
        if mine.is_empty():
            continue
        items.append(UsageChart(row, mine["cpu_cores"].cast(pl.Float64).to_numpy(),
                                mine["memory_bytes"].cast(pl.Float64).to_numpy()))
    return ChartGroup(items=items, total=frame.height)


def forecast_curves(daily: pl.DataFrame, table: pl.DataFrame, options: ReportOptions,
                    limit: int = MAX_FORECAST_CHARTS) -> ChartGroup:
    """The forecasts worth drawing (exhausted or within the horizon first, then the fastest
    growing), each with its daily history, trend line and interval, from the forecast's own
    daily series and table (ReportResults.forecast_with_daily: default horizon, pool label and
    minimum history)."""
    horizon = DEFAULT_HORIZON / timedelta(days=1)
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


def build_page(con: duckdb.DuckDBPyConnection, options: ReportOptions | None = None) -> ReportPage:
    """The report's sections and the data of its charts, drawn from the same analyses' results
    (each computed once: the node table, the recommendations and the forecast's daily series)."""
    sections, results = build_report_results(con, options or ReportOptions())
    return page_from_results(sections, results)


def page_from_results(sections: list[Section], results: ReportResults) -> ReportPage:
    """The HTML page of a report already built (compose.build_report_results)."""
    con, options = results.con, results.options
    start, end = store.analysis_window(con, options.window)
    nodes = results.nodes
    return ReportPage(
        options=options, start=start, end=end, nodes=nodes, sections=sections,
        # the charts' few series and samples: DuckDB keeps no more of the blocks they read (its
        # buffer pool held 650 MiB after the usage samples at the bench's L)
        memory_risk=_guarded(lambda: store.bounded_memory(
            con, lambda: memory_risk(con, nodes, results.node_inputs.daily, start, end))),
        usage=_guarded(lambda: store.bounded_memory(
            con, lambda: recommendation_usage(con, results.recommendations, start, end))),
        forecasts=_guarded(lambda: forecast_curves(*results.forecast_with_daily, options)),
    )
