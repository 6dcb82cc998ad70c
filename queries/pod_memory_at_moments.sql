-- Each pod's working set (sum over its containers) at given (node, ts) moments.
-- Params: $nodes VARCHAR[], $ts TIMESTAMP[] (same length: moment i is ($nodes[i], $ts[i])),
--         $start TIMESTAMP, $end TIMESTAMP (bounds of the moments, to prune the scan).
WITH moments AS (
    SELECT unnest($nodes) AS node, unnest($ts) AS ts
)
SELECT s.node, u.ts, s.namespace, s.pod, CAST(sum(u.memory_kib) AS BIGINT) * 1024 AS working_set_bytes
FROM usage_in($start, $end) AS u
JOIN series AS s USING (series_id)
JOIN moments AS m ON m.node = s.node AND m.ts = u.ts
WHERE u.memory_kib IS NOT NULL
GROUP BY s.node, u.ts, s.namespace, s.pod
ORDER BY s.node, u.ts, s.namespace, s.pod
