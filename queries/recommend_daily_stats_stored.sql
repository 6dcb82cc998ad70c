-- DuckDB's recommend_daily_stats (other engines run that file over the lake): per container series
-- and 24h interval (aligned to the series' first sample in the window, as
-- queries/recommend_memory_peaks_stored.sql), the memory peak and the sum and count of the CPU
-- values (the mean is their quotient: the auto strategy's daily statistics), from the stored
-- integer units as queries/recommend_series_stats_stored.sql explains.
-- Needs the registered relation _rec_first(series_id, first_s): the series' first sample in the
-- window as epoch seconds (whole: stored times are). The caller adds interval_end = first +
-- (interval_index + 1) intervals.
-- Params: $lo, $hi TIMESTAMP; $interval_s DOUBLE.
-- $lo, $hi: whole seconds, at most one interval apart, as in queries/recommend_memory_peaks_stored.sql,
-- which says why the samples are grouped by one comparison of their time (bench L, 30 one-day
-- slices, 2 threads: 4.83 -> 3.29 CPU-s); from usage_raw alone for a slice the caller knows holds no
-- rolled-up sample (capplan.store.query's raw: bench L, auto's daily statistics over 5 days 0.77 ->
-- 0.55 CPU-s).
WITH bounds AS NOT MATERIALIZED (
    -- per series, the index of the interval $lo is in (the view's formula) and the first time of the
    -- next one (whole seconds: a stored time is in it when at or after)
    SELECT series_id, CAST(floor((epoch($lo) - first_s) / $interval_s) AS INTEGER) AS interval_index,
           CAST(make_timestamp(CAST(ceil(first_s + (interval_index + 1) * $interval_s) AS BIGINT) * 1000000)
                AS TIMESTAMP_S) AS next_ts
    FROM _rec_first)
SELECT s.series_id, b.interval_index + CAST(s.later AS INTEGER) AS interval_index,
       s.peak_bytes, s.cpu_sum_cores, s.cpu_samples
FROM (SELECT u.series_id, u.ts >= f.next_ts AS later,
             CAST(max(u.memory_kib) AS BIGINT) * 1024 AS peak_bytes,
             sum(CAST(u.cpu_mcores / 1000 AS REAL)) AS cpu_sum_cores,
             count(u.cpu_mcores) AS cpu_samples
      FROM usage_stored_in($lo, $hi) AS u
      JOIN bounds AS f USING (series_id)
      GROUP BY u.series_id, later) AS s
JOIN bounds AS b USING (series_id)
