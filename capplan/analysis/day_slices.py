"""A window cut into slices of whole UTC days holding a bounded number of usage samples.

Analyses that sum usage per sample time (per node, namespace or hypothetical placement, then a
peak or a percentile over the window) compute the sums a slice at a time: DuckDB's hash table of
(key, sample time) groups is then that of a slice, not of the window. At the bench's L cluster
(bench/RESULTS.md, issue 14) the whole-window tables were 1.1-1.3 GiB of the report's peak RSS.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import duckdb

from capplan import store

# Samples per slice: about a day and a half of the bench's L cluster (15,066 series at 5 minutes),
# two weeks of M; the same budget as forecast's slices (capplan.analysis.forecast.series).
SLICE_SAMPLES = 4_000_000


def day_slices(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime,
               max_samples: int = SLICE_SAMPLES) -> list[tuple[datetime, datetime]]:
    """[start, end] cut into runs of whole UTC days holding at most `max_samples` samples each (a
    single day above it is a slice of its own), as inclusive bounds that never overlap; days
    without samples are left out (queries/usage_in_per_day.sql, raw and rolled-up samples)."""
    counts = con.execute(store.load_sql("usage_in_per_day"), {"start": start, "end": end}).fetchall()
    slices: list[tuple[datetime, datetime]] = []
    first: date | None = None
    last: date | None = None
    held = 0
    for day, samples in counts:
        if first is not None and held + samples > max_samples:
            slices.append(_clip(first, last or first, start, end))
            first, held = None, 0
        if first is None:
            first = day
        last, held = day, held + samples
    if first is not None:
        slices.append(_clip(first, last or first, start, end))
    return slices


def _clip(first: date, last: date, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The instants of days first..last inside [start, end] (midnight belongs to the next day)."""
    return max(datetime.combine(first, time.min), start), min(datetime.combine(last, time.max), end)


def day_runs(days: list[date]) -> list[tuple[date, date]]:
    """Sorted days as runs of consecutive days (first, last)."""
    runs: list[tuple[date, date]] = []
    for day in days:
        if runs and day == runs[-1][1] + timedelta(days=1):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs
