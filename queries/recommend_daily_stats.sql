-- Per container series and 24h interval (aligned to the series' first sample in the window, as
-- queries/recommend_memory_peaks.sql): the memory peak and the mean CPU (the auto strategy's
-- daily statistics for trends and tail fits).
-- Needs the registered relation _rec_first(series_id, first_ts).
-- Params: $start, $end TIMESTAMP; $interval_s DOUBLE.
WITH tagged AS (
    SELECT u.series_id, f.first_ts, u.memory_bytes, u.cpu_cores,
           CAST(floor(epoch(u.ts - f.first_ts) / $interval_s) AS INTEGER) AS interval_index
    FROM usage_samples AS u
    JOIN _rec_first AS f USING (series_id)
    WHERE u.ts BETWEEN $start AND $end
)
SELECT series_id, interval_index,
       any_value(first_ts) + to_seconds(CAST((interval_index + 1) * $interval_s AS BIGINT)) AS interval_end,
       max(memory_bytes) AS peak_bytes,
       avg(cpu_cores) AS cpu_mean_cores
FROM tagged
GROUP BY series_id, interval_index
ORDER BY series_id, interval_index
