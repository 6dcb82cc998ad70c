"""The report's forecast section, and the forecast's views for a terminal and for CSV."""

from __future__ import annotations

import math

import duckdb
import polars as pl

from capplan.analysis.forecast import forecast_report
from capplan.quantity import format_bytes
from capplan.report.model import ReportOptions, Section


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


def forecast_sections(con: duckdb.DuckDBPyConnection, options: ReportOptions) -> list[Section]:
    """The forecast section: every series that runs out within the horizon, then the growing
    ones, at most `options.top` rows besides the cluster's own."""
    table = forecast_report(con, options.window, namespaces=options.namespaces or None)
    growing = table.filter(pl.col("slope_per_day") > 0)
    shown = pl.concat([
        table.filter(pl.col("scope_kind") == "cluster"),
        growing.filter(pl.col("scope_kind") != "cluster").sort(
            pl.col("days_to_exhaustion").fill_null(float("inf")), pl.col("slope_per_day"),
            descending=[False, True]).head(options.top),
    ]).unique(subset=["scope", "resource", "basis"], maintain_order=True)
    return [Section("forecast", "Forecast: days until exhaustion", shown.select(REPORT_COLUMNS), forecast_note(table))]


def table_view(table: pl.DataFrame) -> pl.DataFrame:
    """The forecast for reading on a terminal: amounts with units, days rounded."""
    def amount(resource: str, value: float | None, per_day: bool = False) -> str:
        text = "" if value is None else (f"{value:.2f}" if resource == "cpu" else format_bytes(value))
        return f"{text}/day" if text and per_day else text

    days = lambda c: pl.col(c).round(0).cast(pl.Int64)  # noqa: E731
    return table.select(
        "scope", "resource", "basis",
        pl.struct("resource", "current").map_elements(lambda r: amount(r["resource"], r["current"]),
                                                      return_dtype=pl.Utf8).alias("current"),
        pl.struct("resource", "allocatable").map_elements(lambda r: amount(r["resource"], r["allocatable"]),
                                                          return_dtype=pl.Utf8).alias("allocatable"),
        pl.struct("resource", "slope_per_day").map_elements(
            lambda r: amount(r["resource"], r["slope_per_day"], True), return_dtype=pl.Utf8).alias("slope_per_day"),
        days("days_to_exhaustion"), days("days_low"), days("days_high"), "outlook", "exhaustion_date",
    )


AMOUNT_COLUMNS = ("current", "allocatable", "slope_per_day", "trend_current", "slope_low_per_day",
                  "slope_high_per_day")


def csv_view(table: pl.DataFrame) -> pl.DataFrame:
    """The forecast for CSV: amount columns hold cores on cpu rows and bytes on memory rows, so
    they are written as text, memory as whole bytes (CONTRACT: memory in bytes, integer)."""
    def text(resource: str, value: float | None) -> str | None:
        if value is None or not math.isfinite(value):
            return None
        return str(int(round(value))) if resource == "memory" else repr(float(value))

    return table.with_columns(
        pl.struct("resource", c).map_elements(lambda r, c=c: text(r["resource"], r[c]), return_dtype=pl.Utf8).alias(c)
        for c in AMOUNT_COLUMNS
    )
