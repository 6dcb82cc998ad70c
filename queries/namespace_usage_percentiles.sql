-- Per namespace: percentiles of the namespace's summed container usage over [$start, $end].
-- Params: $start TIMESTAMP, $end TIMESTAMP.
WITH per_ts AS (
    SELECT s.namespace, u.ts, sum(u.cpu_cores) AS cpu_cores, sum(u.memory_bytes) AS memory_bytes
    FROM usage_samples AS u
    JOIN series AS s USING (series_id)
    WHERE u.ts BETWEEN $start AND $end
    GROUP BY s.namespace, u.ts
)
SELECT namespace,
       count(*) AS usage_points,
       quantile_cont(cpu_cores, 0.95) AS cpu_usage_p95_cores,
       max(cpu_cores) AS cpu_usage_max_cores,
       quantile_cont(memory_bytes, 0.95) AS memory_usage_p95_bytes,
       max(memory_bytes) AS memory_usage_max_bytes
FROM per_ts
GROUP BY namespace
ORDER BY namespace
