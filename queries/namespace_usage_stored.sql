-- Per namespace (as its integer id: its rank among the stored namespaces) and sample time in
-- [$start, $end]: the namespace's summed container usage from the stored sums (namespace_usage,
-- schema 008), except on the UTC days in $stale (pending: capplan.analysis.namespaces sums those
-- from the samples, queries/namespace_usage_moments.sql). The same numbers the samples give: CPU the
-- view's REAL cores added in a DOUBLE, memory in whole bytes. One cluster's rows (a store.scope, or
-- a store of one cluster); namespace_usage_stored_clusters adds the clusters' sums up.
-- Params: $start TIMESTAMP, $end TIMESTAMP, $stale DATE[].
WITH ids AS (
    SELECT DISTINCT namespace, CAST(dense_rank() OVER (ORDER BY namespace) AS INTEGER) AS namespace_id
    FROM series
)
SELECT i.namespace_id, n.cpu_cores, n.memory_kib * 1024 AS memory_bytes
FROM namespace_usage AS n
JOIN ids AS i USING (namespace)
WHERE n.ts BETWEEN $start AND $end AND NOT list_contains(CAST($stale AS DATE[]), CAST(n.ts AS DATE))
