"""Where in a window the rolled-up samples are, so that the slices outside read usage_raw alone.

The per-slice queries read the samples the usage_samples view shows through the table macro
usage_stored_in(lo, hi), a UNION ALL of usage_raw, usage_hourly and usage_daily. Even where the two
rollup branches are empty, DuckDB runs the union slower than the raw table alone (it loses the
table's statistics on series_id through the union, and with them its perfect-hash join): bench L,
auto's daily statistics over 5 days of raw samples 0.77 -> 0.55 CPU-s, whatif's peaks 1.2 -> 0.8.
A slice outside the span of the rollups has no rolled-up row, so the same query run on usage_raw
alone (`store.query(..., raw=raw_only(span, lo, hi))`: usage_raw_in) gives exactly what the union
gives.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb

from capplan import store

Span = tuple[datetime, datetime] | None


def rollup_span(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> Span:
    """The first and last time of the rolled-up samples in [start, end] (widened by a second each
    way: a larger span only sends more slices to the union), None when there are none."""
    first, last = store.fetch_row(con, store.load_sql("rollup_span"), {"lo": start, "hi": end})
    return None if first is None else (first - timedelta(seconds=1), last + timedelta(seconds=1))


def raw_only(span: Span, lo: datetime, hi: datetime) -> bool:
    """Whether [lo, hi] holds no rolled-up sample (outside `span`, rollup_span's answer for a
    window holding [lo, hi])."""
    return span is None or hi < span[0] or lo > span[1]


def stored_bounds(lo: datetime, hi: datetime) -> dict[str, datetime]:
    """[lo, hi] rounded inward to whole seconds, as usage_stored_in's and usage_raw_in's bounds
    ($lo, $hi): the same stored samples (their times are whole seconds), compared with the stored
    TIMESTAMP_S as it is."""
    start = lo.replace(microsecond=0)
    return {"lo": start if start == lo else start + timedelta(seconds=1), "hi": hi.replace(microsecond=0)}
