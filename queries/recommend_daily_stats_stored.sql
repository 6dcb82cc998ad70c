-- DuckDB's recommend_daily_stats (other engines run that file over the lake): per container series
-- and 24h interval (aligned to the series' first sample in the window, as
-- queries/recommend_memory_peaks_stored.sql), the memory peak and the sum and count of the CPU
-- values (the mean is their quotient: the auto strategy's daily statistics), from the stored
-- integer units as queries/recommend_series_stats_stored.sql explains.
-- Needs the registered relation _rec_first(series_id, first_s): the series' first sample in the
-- window as epoch seconds. The caller adds interval_end = first + (interval_index + 1) intervals.
-- Params: $lo, $hi TIMESTAMP; $interval_s DOUBLE.
-- $lo, $hi: whole seconds (the stored times are; comparing TIMESTAMP_S with TIMESTAMP_S lets the zone
-- maps skip row groups). The caller runs one interval length of time at a time and merges the slices
-- (capplan.analysis.recommend._interval_stats). The samples the usage_samples view shows, as stored
-- (usage_stored_in); from usage_raw alone for a slice the caller knows holds no rolled-up sample
-- (capplan.store.query's raw: bench L, auto's daily statistics over 5 days 0.77 -> 0.55 CPU-s).
SELECT u.series_id,
       CAST(floor((epoch(u.ts) - f.first_s) / $interval_s) AS INTEGER) AS interval_index,
       CAST(max(u.memory_kib) AS BIGINT) * 1024 AS peak_bytes,
       sum(CAST(u.cpu_mcores / 1000 AS REAL)) AS cpu_sum_cores,
       count(u.cpu_mcores) AS cpu_samples
FROM usage_stored_in($lo, $hi) AS u
JOIN _rec_first AS f USING (series_id)
GROUP BY u.series_id, interval_index
