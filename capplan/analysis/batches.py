"""Whole groups in batches of a bounded number of rows: exact percentiles in DuckDB keep every
value of a group (quantile_cont's state, per thread), so analyses take them of a batch of groups
at a time, and the memory is that of a batch, not of the window."""

from __future__ import annotations


def batches(counts: list[int], max_rows: int) -> list[tuple[int, int]]:
    """Ranges [lo, hi) of consecutive groups (their row `counts`, in order) holding at most
    `max_rows` rows each (a group with more rows is a batch of its own); no ranges for no groups."""
    ranges: list[tuple[int, int]] = []
    lo, held = 0, 0
    for i, n in enumerate(counts):
        if i > lo and held + n > max_rows:
            ranges.append((lo, i))
            lo, held = i, 0
        held += n
    if lo < len(counts):
        ranges.append((lo, len(counts)))
    return ranges
