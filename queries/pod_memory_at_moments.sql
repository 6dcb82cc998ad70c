-- Each pod's working set (sum over its containers) at given (node, ts) moments.
-- Params: $nodes VARCHAR[], $ts TIMESTAMP[] (same length: moment i is ($nodes[i], $ts[i])),
--         $lo, $hi TIMESTAMP: the bounds of the moments rounded inward to whole seconds
--         (capplan.analysis.rollup_span.stored_bounds), to prune the scan.
-- The samples the usage_samples view shows, as stored (usage_stored_in; from usage_raw alone when
-- the caller knows no rolled-up sample lies between the moments: capplan.store.query's raw).
-- They are first cut to the moments' times (a few hundred of the window's thousands) and the
-- series to the moments' nodes, before the per-pod sums: joining every sample of the window to its
-- series first cost 2 s of CPU at the bench's L.
WITH moments AS (
    SELECT unnest($nodes) AS node, unnest($ts) AS ts
),
at_times AS (
    SELECT u.series_id, u.ts, u.memory_kib
    FROM (SELECT series_id, CAST(ts AS TIMESTAMP) AS ts, memory_kib FROM usage_stored_in($lo, $hi)) AS u
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
