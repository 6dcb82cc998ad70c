"""Exact per-series (or per-pod) percentiles in parts of the series: an exact percentile keeps every
value of a group in memory, so a query over the whole window peaks with the window's samples. The
parts are ranges of series ids cut at the stored blocks of series (store.CLUSTERED_ORDER), so each
part's scan reads its own row groups; recommend's percentiles and eviction's pod p95 use them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple

import duckdb
import polars as pl

from capplan import store
from capplan.analysis.rollup_span import stored_bounds

# Samples per part of a per-series percentile query (run_parts: recommend._in_parts,
# eviction.analysis.pod_memory_stats): DuckDB's quantile states hold every value of the part's
# series (4 bytes each, as vectors that grow by doubling, per thread), so the peak follows the
# part, not the window. 10 M was the value from 25 M (every 4th series), then the
# clustered order (schema 009) made a part read only its own row groups (L simple 8.1-8.4 -> 3.3-3.4
# CPU s). Smaller parts did not lower the peak while every part's frame kept DuckDB's Arrow export
# alive (owned); with the parts' frames copied, at the bench's L (in-process, load 6-8) auto peaks at
# 358-373 MiB with 10 M, 328-329 with 5 M, 324-328 with 2.5 M, 321-325 with 1.25 M, for 6.7-6.9, 7.1-7.5,
# 7.6-7.7 and 8.6 CPU s (each part also reads the row groups its range shares with the next). 5 M: the
# bench's M (8.55 M samples) in two parts, its L (86.5 M) in eighteen, a part's states the same size at
# both (bench/RESULTS.md, issue 14, AU).
PERCENTILE_SAMPLES_PER_PART = 5_000_000


def owned(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` in buffers of polars' own (store.owned_frame). polars takes a DuckDB result's Arrow
    buffers without copying, and DuckDB's export allocates them for a batch of a million rows: a
    frame kept holds ~30-60 MiB of that (one of the bench's L percentile parts, 1,700 rows: 61 MiB),
    so the parts and day slices kept until their concat pinned memory the next query's states could
    have reused, and recommend auto's peak grew with the number of parts (bench/RESULTS.md, issue 14,
    AU). store.frame_of now copies results below store.OWN_BELOW_ROWS itself; this copies any frame
    (a larger part, another engine's). ~1 ms per 30,000 rows."""
    return store.owned_frame(frame)


def samples_summary(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> tuple[int, int, int, int]:
    """The number of stored samples in [start, end], their largest CPU value in millicores, and
    their first and last series id (1 and 0 without samples)."""
    row = store.query(con, "recommend_samples_summary", stored_bounds(start, end)).row(0)
    return int(row[0]), int(row[1] or 0), int(1 if row[2] is None else row[2]), int(0 if row[3] is None else row[3])


def id_ranges(first_id: int, last_id: int, parts: int,
               block: int = store.CLUSTER_SERIES_BLOCK) -> list[tuple[int, int]]:
    """[first_id, last_id] cut into `parts` ranges of about as many ids, each cut at a multiple of
    `block` (the stored day's blocks of series, store.CLUSTERED_ORDER: a block's row groups are then
    read by one part only); fewer ranges when there are fewer blocks than parts. Together they cover
    every id once."""
    first_block, last_block = first_id // block, last_id // block
    blocks = last_block - first_block + 1
    cuts = sorted({first_block + blocks * part // parts for part in range(parts)})
    ends = [*cuts[1:], last_block + 1]
    return [(max(first_id, a * block), min(last_id, b * block - 1)) for a, b in zip(cuts, ends, strict=True)]


class Part(NamedTuple):
    """One part of run_parts: the `part`-th of `parts`, the series ids in [first_id, last_id]."""

    parts: int
    part: int
    first_id: int
    last_id: int


# Beyond every stored series id (BIGINT's ends): run_parts' open_ends.
ALL_IDS = (-(2**63), 2**63 - 1)


def run_parts(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime,
              run_part: Callable[[Part], pl.DataFrame], samples_per_part: int = PERCENTILE_SAMPLES_PER_PART,
              *, open_ends: bool = False) -> pl.DataFrame:
    """`run_part` of each part of the series with samples in [start, end], one after another, the
    frames concatenated in the parts' order: about `samples_per_part` stored samples a part (at
    least one part), the parts ranges of series ids (id_ranges). `open_ends`: the first part starts
    and the last ends beyond every id (ALL_IDS), for a query whose rows belong to an id the window's
    samples need not hold (eviction's pods, by their smallest series id). Each part's frame is
    copied out of DuckDB's Arrow buffers (owned) before the next runs, and what DuckDB's allocator
    kept of the parts' freed quantile states goes back to the OS after the last: the polars work
    that follows cannot use it (bench L, recommend auto: 96 MiB)."""
    samples, _, first_id, last_id = samples_summary(con, start, end)
    ranges = id_ranges(first_id, last_id, max(1, -(-samples // samples_per_part)))
    if open_ends:
        ranges[0] = (ALL_IDS[0], ranges[0][1])
        ranges[-1] = (ranges[-1][0], ALL_IDS[1])
    frames = [owned(run_part(Part(len(ranges), part, lo, hi))) for part, (lo, hi) in enumerate(ranges)]
    store.give_back_freed(con)
    return pl.concat(frames) if len(frames) > 1 else frames[0]
