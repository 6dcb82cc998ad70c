-- DuckDB's recommend_memory_peaks (the same values; other engines run that file over the lake):
-- one memory peak per container series and aggregation interval, as the VPA recommender keeps them
-- (kubernetes/autoscaler vertical-pod-autoscaler/pkg/recommender/model/container.go, addMemorySample):
-- intervals of $interval_s seconds aligned to the series' first sample in the window; from the stored
-- integer units as queries/recommend_series_stats_stored.sql explains.
-- Needs the registered relation _rec_first(series_id, first_s): the series' first sample in the
-- window as epoch seconds. The caller adds interval_end = first + (interval_index + 1) intervals.
-- Params: $lo, $hi TIMESTAMP; $interval_s DOUBLE.
-- $lo, $hi: whole seconds (the stored times are; comparing TIMESTAMP_S with TIMESTAMP_S lets the zone
-- maps skip row groups). The caller runs one interval length of time at a time and merges the slices
-- (capplan.analysis.recommend._interval_stats). The samples the usage_samples view shows, as stored
-- (usage_stored_in); from usage_raw alone for a slice the caller knows holds no rolled-up sample
-- (capplan.store.query's raw; capplan.analysis.rollup_span says why).
SELECT u.series_id,
       CAST(floor((epoch(u.ts) - f.first_s) / $interval_s) AS INTEGER) AS interval_index,
       CAST(max(u.memory_kib) AS BIGINT) * 1024 AS peak_bytes
FROM usage_stored_in($lo, $hi) AS u
JOIN _rec_first AS f USING (series_id)
GROUP BY u.series_id, interval_index
