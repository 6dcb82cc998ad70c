"""The report's forecast section, and the forecast's views for a terminal and for CSV."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import polars as pl

from capplan.quantity import format_bytes
from capplan.report.model import Section
from capplan.report.results import ReportResults


def _amount(resource: str, value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.2f} cores" if resource == "cpu" else format_bytes(value)


def forecast_note(table: pl.DataFrame) -> str:
    """One line per scope that runs out within the horizon (soonest first), or that it is none."""
    soon = table.filter(pl.col("days_to_exhaustion").is_not_null()).sort("days_to_exhaustion")
    if soon.is_empty():
        short = table.filter(pl.col("outlook") == "too_short").height
        return "nothing runs out within the horizon" + (f" ({short} series too short to project)" if short else "")
    lines = []
    for r in soon.iter_rows(named=True):
        what = f"{r['scope']} {r['resource']} {r['basis']}"
        if r["outlook"] == "exhausted":
            lines.append(f"{what}: already at its limit ({_amount(r['resource'], r['current'])} of "
                         f"{_amount(r['resource'], r['allocatable'])}, {r['limit_source']})")
        else:
            lines.append(f"{what}: runs out in {r['days_to_exhaustion']:.0f} days "
                         f"(interval {r['days_low']:.0f}-{'never' if r['days_high'] is None else format(r['days_high'], '.0f')}), "
                         f"growing {_amount(r['resource'], r['slope_per_day'])}/day toward "
                         f"{_amount(r['resource'], r['allocatable'])} ({r['limit_source']})")
    return "\n".join(lines)


REPORT_COLUMNS = ["scope", "resource", "basis", "unit", "current", "allocatable", "slope_per_day", "days_to_exhaustion",
                  "days_low", "days_high", "outlook", "exhaustion_date"]


def forecast_sections(results: ReportResults) -> list[Section]:
    """The forecast section: every series that runs out within the horizon, then the growing
    ones, at most `options.top` rows besides the cluster's own."""
    table, options = results.forecast, results.options
    growing = table.filter(pl.col("slope_per_day") > 0)
    shown = pl.concat([
        table.filter(pl.col("scope_kind") == "cluster"),
        growing.filter(pl.col("scope_kind") != "cluster").sort(
            pl.col("days_to_exhaustion").fill_null(float("inf")), pl.col("slope_per_day"),
            descending=[False, True]).head(options.top),
    ]).unique(subset=["scope", "resource", "basis"], maintain_order=True)
    return [Section("forecast", "Forecast: days until exhaustion", shown.select(REPORT_COLUMNS), forecast_note(table))]


def runs_out_text(row: dict) -> str:
    """When the series runs out, in words that agree with the CSV: the days within the horizon
    with their interval; beyond the horizon, the days it would take (and the fastest plausible)."""
    days, low, high = row["days_to_exhaustion"], row["days_low"], row["days_high"]
    outlook = row["outlook"]
    if outlook == "exhausted":
        return "now (at its limit)"
    if days is not None:
        return f"in {days:.0f} d ({_d(low)}-{_d(high)})"
    if outlook == "too_short":
        return "history too short"
    if outlook == "no_limit":
        return "no limit to reach"
    slope, level, limit = row["slope_per_day"], row["trend_current"], row["allocatable"]
    if slope is None or slope <= 0 or level is None or limit is None:
        return "never (flat)" if slope == 0 else "never (falling)"
    after = (limit - level) / slope
    # past the horizon (so no date), but maybe within it at the fastest plausible growth
    return f"~{after:.0f} d (from {low:.0f} d)" if low is not None else f"~{after:.0f} d, past horizon"


def _d(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f}"


def table_view(table: pl.DataFrame) -> pl.DataFrame:
    """The forecast for reading on a terminal: amounts with units, when it runs out in words."""
    def amount(resource: str, value: float | None, per_day: bool = False) -> str:
        text = "" if value is None else (f"{value:.2f}" if resource == "cpu" else format_bytes(value))
        return f"{text}/day" if text and per_day else text

    runs_out = [runs_out_text(r) for r in table.iter_rows(named=True)]
    # most telling first: a narrow terminal leaves out columns from the right
    return table.select(
        "scope", "resource", "basis", pl.Series("runs_out", runs_out, dtype=pl.Utf8),
        pl.struct("resource", "current").map_elements(lambda r: amount(r["resource"], r["current"]),
                                                      return_dtype=pl.Utf8).alias("current"),
        pl.struct("resource", "allocatable").map_elements(lambda r: amount(r["resource"], r["allocatable"]),
                                                          return_dtype=pl.Utf8).alias("limit"),
        pl.struct("resource", "slope_per_day").map_elements(
            lambda r: amount(r["resource"], r["slope_per_day"], True), return_dtype=pl.Utf8).alias("growth"),
        "exhaustion_date",
    )


AMOUNT_COLUMNS = ("current", "allocatable", "slope_per_day", "trend_current", "slope_low_per_day",
                  "slope_high_per_day")


def _amount_text(column: str) -> Callable[[dict[str, Any]], str | None]:
    """The CSV text of `column` in a row struct {resource, column}."""
    def text(row: dict[str, Any]) -> str | None:
        value = row[column]
        if value is None or not math.isfinite(value):
            return None
        return str(int(round(value))) if row["resource"] == "memory" else repr(float(value))
    return text


def csv_view(table: pl.DataFrame) -> pl.DataFrame:
    """The forecast for CSV: amount columns hold cores on cpu rows and bytes on memory rows, so
    they are written as text, memory as whole bytes (CONTRACT: memory in bytes, integer)."""
    return table.with_columns(
        pl.struct("resource", c).map_elements(_amount_text(c), return_dtype=pl.Utf8).alias(c) for c in AMOUNT_COLUMNS
    )
