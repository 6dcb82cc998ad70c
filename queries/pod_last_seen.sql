-- Per node and pod: the last time in [$lo, $hi] the pod had a working-set sample there (which
-- node a pod ran on last, without the per-timestamp sums of queries/pod_memory_stats.sql).
-- The samples the usage_samples view shows, as stored (usage_stored_in; from usage_raw alone when
-- the caller knows the window holds no rolled-up sample: capplan.store.query's raw, bench L, 30
-- days: 1.7-2.4 -> 1.2 CPU-s).
-- Params: $lo, $hi TIMESTAMP (whole seconds: capplan.analysis.rollup_span.stored_bounds).
WITH last AS (
    SELECT series_id, CAST(max(ts) AS TIMESTAMP) AS last_seen
    FROM usage_stored_in($lo, $hi)
    WHERE memory_kib IS NOT NULL
    GROUP BY series_id
)
SELECT s.node, s.namespace, s.pod, max(l.last_seen) AS last_seen
FROM last AS l
JOIN series AS s USING (series_id)
WHERE s.node <> ''
GROUP BY s.node, s.namespace, s.pod
ORDER BY s.node, s.namespace, s.pod
