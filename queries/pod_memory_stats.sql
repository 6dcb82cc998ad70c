-- Per node and pod over [$start, $end]: the pod's working set (sum over its containers per
-- sample time) at its p95, peak and latest sample.
-- Params: $start TIMESTAMP, $end TIMESTAMP.
WITH per_ts AS (
    SELECT s.node, s.namespace, s.pod, u.ts, CAST(sum(u.memory_bytes) AS BIGINT) AS working_set_bytes
    FROM usage_samples AS u
    JOIN series AS s USING (series_id)
    WHERE u.ts BETWEEN $start AND $end AND s.node <> '' AND u.memory_bytes IS NOT NULL
    GROUP BY s.node, s.namespace, s.pod, u.ts
)
SELECT node, namespace, pod,
       quantile_cont(working_set_bytes, 0.95) AS working_set_p95_bytes,
       CAST(max(working_set_bytes) AS BIGINT) AS working_set_peak_bytes,
       CAST(arg_max(working_set_bytes, ts) AS BIGINT) AS working_set_latest_bytes,
       max(ts) AS last_seen
FROM per_ts
GROUP BY node, namespace, pod
ORDER BY node, namespace, pod
