-- Per namespace: its stored sums (namespace_usage, schema 008) in [$start, $end], in namespace
-- order: to cut the namespaces into batches for queries/namespace_usage_percentiles_stored.sql.
-- One cluster's rows (a store.scope, or a store of one cluster).
-- Params: $start TIMESTAMP, $end TIMESTAMP.
SELECT namespace, count(*) AS sums
FROM namespace_usage
WHERE ts BETWEEN $start AND $end
GROUP BY namespace
ORDER BY namespace
