-- queries/pod_memory_at_moments.sql for moments without rolled-up samples between them: usage_raw
-- alone, its stored TIMESTAMP_S compared as it is (the same rows, so the same answer;
-- capplan.analysis.rollup_span).
-- Params: $nodes VARCHAR[], $ts TIMESTAMP[] as that query's; $lo, $hi TIMESTAMP: the bounds of the
-- moments rounded inward to whole seconds.
WITH moments AS (
    SELECT unnest($nodes) AS node, unnest($ts) AS ts
),
at_times AS (
    SELECT u.series_id, u.ts, u.memory_kib
    FROM (SELECT series_id, CAST(ts AS TIMESTAMP) AS ts, memory_kib FROM usage_raw
          WHERE ts BETWEEN CAST($lo AS TIMESTAMP_S) AND CAST($hi AS TIMESTAMP_S)) AS u
    SEMI JOIN (SELECT DISTINCT ts FROM moments) AS m ON m.ts = u.ts
    WHERE u.memory_kib IS NOT NULL
),
on_nodes AS (
    SELECT series_id, node, namespace, pod
    FROM series
    WHERE node IN (SELECT node FROM moments)
)
SELECT s.node, u.ts, s.namespace, s.pod, CAST(sum(u.memory_kib) AS BIGINT) * 1024 AS working_set_bytes
FROM at_times AS u
JOIN on_nodes AS s USING (series_id)
JOIN moments AS m ON m.node = s.node AND m.ts = u.ts
GROUP BY s.node, u.ts, s.namespace, s.pod
ORDER BY s.node, u.ts, s.namespace, s.pod
