-- Per container series, over [$start, $end]: sample count and span, peak CPU and peak memory
-- (all that the vpa and max-target strategies need from raw samples; one cheap pass).
-- Params: $start, $end TIMESTAMP.
SELECT series_id,
       count(*) AS samples,
       min(ts) AS first_ts,
       max(ts) AS last_ts,
       max(cpu_cores) AS cpu_max_cores,
       max(memory_bytes) AS memory_max_bytes
FROM usage_samples
WHERE ts BETWEEN $start AND $end
GROUP BY series_id
