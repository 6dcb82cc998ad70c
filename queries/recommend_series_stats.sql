-- Per container series, over [$start, $end]: sample count and span, CPU percentiles, peak
-- memory, and the same over the recent part [$recent_start, $end]. Everything is aggregated
-- here, in DuckDB; raw samples never reach Python.
-- Params: $start, $end, $recent_start TIMESTAMP; $cpu_q DOUBLE (e.g. 0.95).
SELECT series_id,
       count(*) AS samples,
       min(ts) AS first_ts,
       max(ts) AS last_ts,
       quantile_cont(cpu_cores, [$cpu_q, 0.5, 0.9, 0.95, 0.99]) AS cpu_q,
       max(cpu_cores) AS cpu_max_cores,
       avg(cpu_cores) AS cpu_mean_cores,
       max(memory_bytes) AS memory_max_bytes,
       quantile_cont(cpu_cores, 0.95) FILTER (WHERE ts >= $recent_start) AS cpu_recent_p95_cores,
       max(cpu_cores) FILTER (WHERE ts >= $recent_start) AS cpu_recent_max_cores,
       max(memory_bytes) FILTER (WHERE ts >= $recent_start) AS memory_recent_max_bytes
FROM usage_samples
WHERE ts BETWEEN $start AND $end
GROUP BY series_id
