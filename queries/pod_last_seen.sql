-- Per node and pod: the last time in [$start, $end] the pod had a working-set sample there (which
-- node a pod ran on last, without the per-timestamp sums of queries/pod_memory_stats.sql).
-- Params: $start TIMESTAMP, $end TIMESTAMP.
WITH last AS (
    SELECT series_id, max(ts) AS last_seen
    FROM usage_in($start, $end)
    WHERE memory_kib IS NOT NULL
    GROUP BY series_id
)
SELECT s.node, s.namespace, s.pod, max(l.last_seen) AS last_seen
FROM last AS l
JOIN series AS s USING (series_id)
WHERE s.node <> ''
GROUP BY s.node, s.namespace, s.pod
ORDER BY s.node, s.namespace, s.pod
