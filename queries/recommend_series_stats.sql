-- Per container series, over [$start, $end]: sample count and span, CPU percentiles ($cpu_q,
-- p90, p95, p99), peak CPU and peak memory (the auto strategy). Everything is aggregated here, in
-- DuckDB; raw samples never reach Python.
-- Params: $start, $end TIMESTAMP; $cpu_q DOUBLE (e.g. 0.95); $parts, $part INTEGER: only series with
-- series_id % $parts = $part (the caller runs the parts one after another to bound memory).
SELECT series_id,
       count(*) AS samples,
       min(ts) AS first_ts,
       max(ts) AS last_ts,
       quantile_cont(cpu_cores, [$cpu_q, 0.90, 0.95, 0.99]) AS cpu_q,
       max(cpu_cores) AS cpu_max_cores,
       max(memory_bytes) AS memory_max_bytes
FROM usage_samples
WHERE ts BETWEEN $start AND $end AND series_id % $parts = $part
GROUP BY series_id
