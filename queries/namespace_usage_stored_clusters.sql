-- queries/namespace_usage_stored.sql over a store of several clusters read without a store.scope:
-- a namespace's sum per sample time adds its clusters' (as queries/namespace_usage_moments.sql sums
-- every series of the namespace). Exact: the parts are exact sums far below 2^53.
-- Params: $start TIMESTAMP, $end TIMESTAMP, $stale DATE[].
WITH ids AS (
    SELECT DISTINCT namespace, CAST(dense_rank() OVER (ORDER BY namespace) AS INTEGER) AS namespace_id
    FROM series
)
SELECT i.namespace_id, sum(n.cpu_cores) AS cpu_cores, CAST(sum(n.memory_kib) * 1024 AS BIGINT) AS memory_bytes
FROM namespace_usage AS n
JOIN ids AS i USING (namespace)
WHERE n.ts BETWEEN $start AND $end AND NOT list_contains(CAST($stale AS DATE[]), CAST(n.ts AS DATE))
GROUP BY i.namespace_id, n.ts
