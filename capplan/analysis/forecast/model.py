"""The forecast's defaults, column names and frame schemas."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from capplan.analysis.stats.trend import (
                DEFAULT_CONFIDENCE as DEFAULT_CONFIDENCE,  # the slope interval of the forecast
)

DEFAULT_POOL_LABEL = "node.kubernetes.io/instance-type"
DEFAULT_HORIZON = timedelta(days=90)
DEFAULT_MIN_DAYS = 7


FULL_DAY_SHARE = 0.5  # a day with fewer sample times than half the fullest day is a partial day
NO_POOL = "(no label)"
RESOURCES = ("cpu", "memory")
BASES = ("requests", "usage")
UNITS = {"cpu": "cores", "memory": "bytes"}
REQUEST_COLUMN = {"cpu": "cpu_request_cores", "memory": "memory_request_bytes"}
ALLOCATABLE_COLUMN = {"cpu": "cpu_allocatable_cores", "memory": "memory_allocatable_bytes"}
# ResourceQuota names that cap a namespace's requests (`cpu` and `memory` mean requests.*:
# kubernetes/kubernetes pkg/quota/v1/evaluator/core/pods.go, podComputeUsageHelper).
QUOTA_RESOURCES = {"cpu": ("requests.cpu", "cpu"), "memory": ("requests.memory", "memory")}
# What bounds each basis: requests only by a requests quota; usage never by one (a pod may use far
# more than it requests) but by a limits quota, as every container's usage is capped by its limit
# and limits.* caps their sum (issue 13: usage projected against requests.memory ran out "in 16 days").
QUOTA_BY_BASIS = {("cpu", "requests"): QUOTA_RESOURCES["cpu"], ("memory", "requests"): QUOTA_RESOURCES["memory"],
                  ("cpu", "usage"): ("limits.cpu",), ("memory", "usage"): ("limits.memory",)}

DAILY_SCHEMA = {"scope_kind": pl.Utf8, "scope_name": pl.Utf8, "resource": pl.Utf8, "basis": pl.Utf8,
                "day": pl.Date, "value": pl.Float64}
LIMIT_SCHEMA = {"scope_kind": pl.Utf8, "scope_name": pl.Utf8, "resource": pl.Utf8, "basis": pl.Utf8,
                "allocatable": pl.Float64, "limit_source": pl.Utf8}
FORECAST_SCHEMA = {
    "scope": pl.Utf8, "resource": pl.Utf8, "basis": pl.Utf8, "current": pl.Float64, "allocatable": pl.Float64,
    "slope_per_day": pl.Float64, "days_to_exhaustion": pl.Float64, "days_low": pl.Float64,
    "days_high": pl.Float64, "outlook": pl.Utf8, "exhaustion_date": pl.Date, "reason": pl.Utf8,
    "scope_kind": pl.Utf8, "scope_name": pl.Utf8, "unit": pl.Utf8, "trend_current": pl.Float64,
    "slope_low_per_day": pl.Float64, "slope_high_per_day": pl.Float64, "days_of_history": pl.Int64,
    "weekly_cycle_removed": pl.Boolean, "limit_source": pl.Utf8,
}
