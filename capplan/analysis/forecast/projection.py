"""From a daily series to a forecast row: the robust trend, and the days until it reaches the limit."""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl

from capplan.analysis.forecast.model import (
    DEFAULT_HORIZON,
    DEFAULT_MIN_DAYS,
    FORECAST_SCHEMA,
    UNITS,
)
from capplan.analysis.stats.trend import DEFAULT_CONFIDENCE, Trend, robust_trend


def days_until(level: float, limit: float, slope: float, horizon_days: float) -> float | None:
    """Days from the last day until `level` growing by `slope` per day reaches `limit`: 0 when
    already there, None ("never") when flat/falling or beyond `horizon_days`."""
    if level >= limit:
        return 0.0
    if slope <= 0:
        return None
    days = (limit - level) / slope
    return days if days <= horizon_days else None


def project(trend: Trend, limit: float, horizon_days: float) -> dict[str, Any]:
    """Days to exhaustion (and its interval) of a trend against `limit`, with an outlook
    (exhausted, within_horizon, never) and a one-line reason."""
    days = days_until(trend.level, limit, trend.slope, horizon_days)
    low = days_until(trend.level, limit, trend.slope_high, horizon_days)
    high = days_until(trend.level, limit, trend.slope_low, horizon_days)
    if days == 0.0:
        outlook, reason = "exhausted", "the trend is already at or above the limit"
    elif days is not None:
        outlook, reason = "within_horizon", f"reaches the limit in {days:.0f} days at the trend's growth"
    elif trend.slope <= 0:
        outlook = "never"
        reason = f"{'flat' if trend.slope == 0 else 'falling'} trend: never within the {horizon_days:g}-day horizon"
    else:
        outlook = "never"
        reason = (f"growing, but reaches the limit after {(limit - trend.level) / trend.slope:.0f} days, "
                  f"beyond the {horizon_days:g}-day horizon")
    return {"days_to_exhaustion": days, "days_low": low, "days_high": high, "outlook": outlook, "reason": reason}


def forecast_series(daily: pl.DataFrame, limits: pl.DataFrame, horizon_days: float = DEFAULT_HORIZON.days,
                    min_days: int = DEFAULT_MIN_DAYS, confidence: float = DEFAULT_CONFIDENCE) -> pl.DataFrame:
    """One forecast row per scope, resource and basis (FORECAST_SCHEMA, CONTRACT `forecast`).

    `daily`: scope_kind, scope_name, resource, basis, day (date), value (DAILY_SCHEMA).
    `limits`: scope_kind, scope_name, resource, basis, allocatable, limit_source (LIMIT_SCHEMA);
    a series without a limit gets no days to exhaustion.
    """
    keys = ["scope_kind", "scope_name", "resource", "basis"]
    if daily.is_empty():
        return pl.DataFrame(schema=FORECAST_SCHEMA)
    limit_map = {tuple(r[k] for k in keys): (r["allocatable"], r["limit_source"])
                 for r in limits.iter_rows(named=True)}
    rows = []
    # one row of lists per series (a group_by iteration cost 2 s at the bench's L, 2,928 series)
    valid = pl.col("value").is_not_null() & pl.col("value").is_finite()
    series = daily.sort("day").group_by(keys, maintain_order=True).agg(
        pl.col("day").filter(valid), pl.col("value").filter(valid))
    for scope_kind, scope_name, resource, basis, days, value_list in series.iter_rows():
        key = (scope_kind, scope_name, resource, basis)
        values = np.array(value_list, dtype=float)
        limit, source = limit_map.get(key, (None, None))
        last_day: date | None = days[-1] if days else None
        row: dict[str, Any] = {
            "scope": scope_label(scope_kind, scope_name), "resource": resource, "basis": basis,
            "current": float(values[-1]) if len(values) else None, "allocatable": limit,
            "slope_per_day": None, "days_to_exhaustion": None, "days_low": None, "days_high": None,
            "exhaustion_date": None, "scope_kind": scope_kind, "scope_name": scope_name, "unit": UNITS[resource],
            "trend_current": None, "slope_low_per_day": None, "slope_high_per_day": None,
            "days_of_history": len(days), "weekly_cycle_removed": None, "limit_source": source,
        }
        if len(days) < max(min_days, 2):
            row.update(outlook="too_short",
                       reason=f"history too short: {len(days)} days of data, at least {max(min_days, 2)} needed (--min-days)")
            rows.append(row)
            continue
        x = np.array([(d - days[0]).days for d in days], dtype=float)
        trend = robust_trend(x, values, np.array([d.weekday() for d in days]), confidence)
        row.update(slope_per_day=trend.slope, slope_low_per_day=trend.slope_low, slope_high_per_day=trend.slope_high,
                   trend_current=trend.level, weekly_cycle_removed=trend.seasonal)
        if limit is None or not math.isfinite(limit) or limit <= 0:
            row.update(outlook="no_limit", reason="no capacity to compare with (no nodes or quota for this scope)")
        else:
            row.update(project(trend, limit, horizon_days))
            if row["days_to_exhaustion"] is not None and last_day is not None:
                row["exhaustion_date"] = last_day + timedelta(days=math.ceil(row["days_to_exhaustion"]))
        rows.append(row)
    return pl.DataFrame(rows, schema=FORECAST_SCHEMA)


def scope_label(kind: str, name: str) -> str:
    """The `scope` column: `cluster`, `pool:NAME` or `namespace:NAME`."""
    return "cluster" if kind == "cluster" else f"{kind}:{name}"
