-- DuckDB's recommend_memory_peaks (the same values; other engines run that file over the lake):
-- one memory peak per container series and aggregation interval, as the VPA recommender keeps them
-- (kubernetes/autoscaler vertical-pod-autoscaler/pkg/recommender/model/container.go, addMemorySample):
-- intervals of $interval_s seconds aligned to the series' first sample in the window; from the stored
-- integer units as queries/recommend_series_stats_stored.sql explains.
-- Needs the registered relation _rec_first(series_id, first_s): the series' first sample in the
-- window as epoch seconds (whole: stored times are). The caller adds interval_end = first +
-- (interval_index + 1) intervals.
-- Params: $lo, $hi TIMESTAMP; $interval_s DOUBLE.
-- $lo, $hi: whole seconds (the stored times are; comparing TIMESTAMP_S with TIMESTAMP_S lets the zone
-- maps skip row groups), at most one interval apart: the caller runs one interval length of time at
-- a time and merges the slices (capplan.analysis.recommend._interval_stats). The samples the
-- usage_samples view shows, as stored (usage_stored_in); from usage_raw alone for a slice the caller
-- knows holds no rolled-up sample (capplan.store.query's raw; capplan.analysis.rollup_span says why).
-- A slice shorter than an interval holds at most two of a series' intervals: the one $lo is in
-- (bounds: its index, and the time the next begins) and the next. So the samples
-- are grouped by the series and one comparison of their stored time, not by an index computed from
-- every sample's epoch (bench L, 30 one-day slices, 2 threads: 3.75 -> 1.92 CPU-s).
WITH bounds AS NOT MATERIALIZED (
    -- per series, the index of the interval $lo is in (the view's formula) and the first time of the
    -- next one (whole seconds: a stored time is in it when at or after)
    SELECT series_id, CAST(floor((epoch($lo) - first_s) / $interval_s) AS INTEGER) AS interval_index,
           CAST(make_timestamp(CAST(ceil(first_s + (interval_index + 1) * $interval_s) AS BIGINT) * 1000000)
                AS TIMESTAMP_S) AS next_ts
    FROM _rec_first)
SELECT s.series_id, b.interval_index + CAST(s.later AS INTEGER) AS interval_index, s.peak_bytes
FROM (SELECT u.series_id, u.ts >= f.next_ts AS later, CAST(max(u.memory_kib) AS BIGINT) * 1024 AS peak_bytes
      FROM usage_stored_in($lo, $hi) AS u
      JOIN bounds AS f USING (series_id)
      GROUP BY u.series_id, later) AS s
JOIN bounds AS b USING (series_id)
