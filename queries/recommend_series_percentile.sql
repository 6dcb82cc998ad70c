-- Per container series, over [$start, $end]: sample count and span, the CPU percentile $cpu_q
-- (linear interpolation, as numpy's default), peak CPU and peak memory (the simple strategy).
-- Params: $start, $end TIMESTAMP; $cpu_q DOUBLE; $parts, $part INTEGER: only series with
-- series_id % $parts = $part (the caller runs the parts one after another to bound memory).
SELECT series_id,
       count(*) AS samples,
       min(ts) AS first_ts,
       max(ts) AS last_ts,
       quantile_cont(cpu_cores, $cpu_q) AS cpu_pq_cores,
       max(cpu_cores) AS cpu_max_cores,
       max(memory_bytes) AS memory_max_bytes
FROM usage_samples
WHERE ts BETWEEN $start AND $end AND series_id % $parts = $part
GROUP BY series_id
