"""Rollups: a year of history in little space (issue 14).

Raw samples are kept for the raw retention (default 35 days before the newest sample); older ones
are summarised per container series and UTC hour into `usage_hourly`, and hours older than 400
days per UTC day into `usage_daily` (queries/schema/003_compact_storage.sql describes the rows).
`compact` runs inside the caller's transaction: the raw samples it summarises are deleted in the
same transaction, so a killed run leaves either the raw samples or their summaries, never both
and never neither.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb

from capplan.store import CPU_UNITS_PER_CORE, fetch_row, load_sql, mark_node_usage_beyond

DEFAULT_RAW_RETENTION = timedelta(days=35)  # issue 14: a month of raw samples, plus a few days of slack
DAILY_AFTER = timedelta(days=400)           # issue 14: hourly summaries for a year and a bit, then daily

# The VPA recommender's CPU histogram (kubernetes/autoscaler vertical-pod-autoscaler/pkg/recommender/
# model/aggregations_config.go: first bucket 0.01 cores, each bucket 5% wider, up to 1000 cores),
# the same buckets as capplan.analysis.strategies.vpa.CPU_HISTOGRAM, so the vpa strategy can read
# rolled-up histograms without re-bucketing.
CPU_FIRST_BUCKET_CORES = 0.01
CPU_BUCKET_RATIO = 1.05
CPU_MAX_CORES = 1000.0
CPU_NUM_BUCKETS = int(math.ceil(math.log(CPU_MAX_CORES * (CPU_BUCKET_RATIO - 1) / CPU_FIRST_BUCKET_CORES + 1)
                                / math.log(CPU_BUCKET_RATIO))) + 1  # histogram_options.go NewExponentialHistogramOptions

ROLLUP_COLUMNS = ("samples", "cpu_mcores_max", "cpu_mcores_mean", "cpu_mcores_p95", "memory_kib_max",
                  "memory_kib_mean", "memory_kib_p95", "cpu_buckets", "cpu_counts")


@dataclass
class CompactSummary:
    """What one `compact` did."""

    raw_cutoff: datetime | None = None     # raw samples before this were rolled up
    daily_cutoff: datetime | None = None   # hourly rows before this were rolled into days
    raw_samples_rolled: int = 0
    hourly_rows_written: int = 0
    hourly_rows_rolled: int = 0
    daily_rows_written: int = 0


def _floor(ts: datetime, grain: timedelta) -> datetime:
    seconds = int((ts - datetime(1970, 1, 1)).total_seconds())
    step = int(grain.total_seconds())
    return datetime(1970, 1, 1) + timedelta(seconds=seconds - seconds % step)


def _merge_into(con: duckdb.DuckDBPyConnection, table: str, time_column: str, grain: str, staged: str) -> int:
    """Add the rows of temp table `staged` (time column `t`) to `table`, merging any row of the same
    series and time already there. Returns the rows written."""
    columns = ", ".join(ROLLUP_COLUMNS)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _rollup_in AS "
        f"SELECT series_id, t, {columns} FROM {staged} "
        f"UNION ALL SELECT x.series_id, x.{time_column} AS t, {', '.join('x.' + c for c in ROLLUP_COLUMNS)} "
        f"FROM {table} AS x SEMI JOIN {staged} AS s ON x.series_id = s.series_id AND x.{time_column} = s.t"
    )
    try:
        con.execute(
            f"DELETE FROM {table} AS x USING {staged} AS s WHERE x.series_id = s.series_id AND x.{time_column} = s.t"
        )
        written = con.execute(
            f"INSERT INTO {table} (series_id, {time_column}, {columns}) {load_sql('rollup_merge')}",
            {"grain": grain},
        ).fetchone()
    finally:
        con.execute("DROP TABLE IF EXISTS _rollup_in")
    return int(written[0]) if written else 0


def compact(
    con: duckdb.DuckDBPyConnection,
    raw_retention: timedelta = DEFAULT_RAW_RETENTION,
    daily_after: timedelta = DAILY_AFTER,
) -> CompactSummary:
    """Roll raw samples older than `raw_retention` (before the newest sample, floored to the hour)
    into hourly summaries, and hourly summaries older than `daily_after` into daily ones.
    Call inside a transaction (store.transaction)."""
    summary = CompactSummary()
    newest = fetch_row(con, "SELECT CAST(max(ts) AS TIMESTAMP) FROM usage_raw")[0]
    if newest is None:
        newest = fetch_row(con, "SELECT CAST(max(hour) AS TIMESTAMP) FROM usage_hourly")[0]
    if newest is None:
        return summary
    summary.raw_cutoff = _floor(newest - raw_retention, timedelta(hours=1))
    params = {"cutoff": summary.raw_cutoff, "first_bucket_mcores": CPU_FIRST_BUCKET_CORES * CPU_UNITS_PER_CORE,
              "ratio": CPU_BUCKET_RATIO, "num_buckets": CPU_NUM_BUCKETS}
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _hourly_new AS SELECT * RENAME (hour AS t) FROM ("
        + load_sql("rollup_hourly") + ")",
        params,
    )
    try:
        summary.raw_samples_rolled = int(fetch_row(con, "SELECT coalesce(sum(samples), 0) FROM _hourly_new")[0])
        if summary.raw_samples_rolled:
            mark_node_usage_beyond(con, summary.raw_cutoff, "<")  # raw samples become hourly rows
            summary.hourly_rows_written = _merge_into(con, "usage_hourly", "hour", "hour", "_hourly_new")
            con.execute("DELETE FROM usage_raw WHERE ts < CAST(CAST($cutoff AS TIMESTAMP) AS TIMESTAMP_S)",
                        {"cutoff": summary.raw_cutoff})
    finally:
        con.execute("DROP TABLE IF EXISTS _hourly_new")
    summary.daily_cutoff = _floor(newest - daily_after, timedelta(days=1))
    old_hours = "FROM usage_hourly WHERE hour < CAST(CAST($cutoff AS TIMESTAMP) AS TIMESTAMP_S)"
    summary.hourly_rows_rolled = int(fetch_row(con, f"SELECT count(*) {old_hours}", {"cutoff": summary.daily_cutoff})[0])
    if summary.hourly_rows_rolled:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _rollup_in AS SELECT * RENAME (hour AS t) {old_hours}",
                    {"cutoff": summary.daily_cutoff})
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE _daily_new AS {load_sql('rollup_merge')}", {"grain": "day"})
        finally:
            con.execute("DROP TABLE IF EXISTS _rollup_in")
        try:
            mark_node_usage_beyond(con, summary.daily_cutoff, "<")  # hourly rows become daily rows
            summary.daily_rows_written = _merge_into(con, "usage_daily", "day", "day", "_daily_new")
            con.execute(f"DELETE {old_hours}", {"cutoff": summary.daily_cutoff})
        finally:
            con.execute("DROP TABLE IF EXISTS _daily_new")
    return summary


def raw_start(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """The oldest raw sample: before it, analyses read the rollups (and say so)."""
    return fetch_row(con, "SELECT CAST(min(ts) AS TIMESTAMP) FROM usage_raw")[0]


def rollup_note(con: duckdb.DuckDBPyConnection, window: timedelta) -> str | None:
    """A sentence for output whose window `[newest - window, newest]` reaches past the raw samples
    into the rollups; None when the window holds raw samples only."""
    row = con.execute(
        "SELECT CAST(min(ts) AS TIMESTAMP), CAST(max(ts) AS TIMESTAMP) FROM usage_raw"
    ).fetchone()
    oldest_raw, newest = row if row else (None, None)
    rolled = con.execute(
        "SELECT CAST(greatest((SELECT max(hour) FROM usage_hourly), (SELECT max(day) FROM usage_daily)) AS TIMESTAMP), "
        "CAST(least((SELECT min(hour) FROM usage_hourly), (SELECT min(day) FROM usage_daily)) AS TIMESTAMP)"
    ).fetchone()
    if rolled is None or rolled[1] is None:
        return None
    newest = newest or rolled[0]
    start = newest - window
    if oldest_raw is not None and start >= oldest_raw:
        return None
    since = f"before {oldest_raw:%Y-%m-%d %H:%M} UTC " if oldest_raw is not None else ""
    return (f"note: the window reaches past the raw samples: {since}it reads hourly/daily summaries "
            "(each hour's CPU p95 and memory peak as one sample; see docs/storage.md)")
