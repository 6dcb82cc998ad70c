-- queries/pod_last_seen.sql for a window without rolled-up samples: usage_raw alone, its stored
-- TIMESTAMP_S compared as it is (the same rows, so the same answer; bench L, 30 days: 1.7-2.4 ->
-- 1.2 CPU-s; capplan.analysis.rollup_span).
-- Params: $lo, $hi TIMESTAMP (whole seconds).
WITH last AS (
    SELECT series_id, CAST(max(ts) AS TIMESTAMP) AS last_seen
    FROM usage_raw
    WHERE memory_kib IS NOT NULL AND ts BETWEEN CAST($lo AS TIMESTAMP_S) AND CAST($hi AS TIMESTAMP_S)
    GROUP BY series_id
)
SELECT s.node, s.namespace, s.pod, max(l.last_seen) AS last_seen
FROM last AS l
JOIN series AS s USING (series_id)
WHERE s.node <> ''
GROUP BY s.node, s.namespace, s.pod
ORDER BY s.node, s.namespace, s.pod
