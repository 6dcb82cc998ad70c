-- Per node: percentiles of the node's summed container usage over [$start, $end], summed from the
-- samples: what `--engine spark` runs; DuckDB reads the stored sums (queries/node_sums_percentiles.sql).
-- CPU is summed in whole millicores, the stored unit (the view's REAL cores times 1000, rounded:
-- exact below 4,000 cores), so both engines and the stored sums (schema 006) give the same value.
-- Params: $start TIMESTAMP, $end TIMESTAMP.
WITH per_ts AS (
    SELECT s.node, u.ts, sum(CAST(round(CAST(u.cpu_cores AS DOUBLE) * 1000) AS BIGINT)) / 1000 AS cpu_cores,
       sum(u.memory_bytes) AS memory_bytes
    FROM usage_samples AS u
    JOIN series AS s USING (series_id)
    WHERE u.ts BETWEEN $start AND $end AND s.node <> ''
    GROUP BY s.node, u.ts
)
SELECT node,
       count(*) AS usage_points,
       quantile_cont(cpu_cores, 0.50) AS cpu_usage_p50_cores,
       quantile_cont(cpu_cores, 0.95) AS cpu_usage_p95_cores,
       quantile_cont(cpu_cores, 0.99) AS cpu_usage_p99_cores,
       max(cpu_cores) AS cpu_usage_max_cores,
       quantile_cont(memory_bytes, 0.50) AS memory_usage_p50_bytes,
       quantile_cont(memory_bytes, 0.95) AS memory_usage_p95_bytes,
       quantile_cont(memory_bytes, 0.99) AS memory_usage_p99_bytes,
       max(memory_bytes) AS memory_usage_max_bytes
FROM per_ts
GROUP BY node
ORDER BY node
