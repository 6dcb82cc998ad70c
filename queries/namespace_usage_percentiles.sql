-- Per namespace: percentiles of the namespace's summed container usage over the window, from
-- its sums per sample time (registered as _namespace_moments: namespace_id, cpu_cores,
-- memory_bytes; queries/namespace_usage_moments.sql, a slice at a time) and the ids' names
-- (_namespace_ids: namespace_id, namespace); the namespaces with ids in [$lo, $hi] only (a batch:
-- DuckDB's quantile states hold every value).
-- Params: $lo, $hi INTEGER.
-- The max is a HUGEINT, the type a sum of the view's BIGINT bytes has (as before slicing); the p95 of
-- BIGINT sums is the same DOUBLE (the sums are far below 2^53).
SELECT n.namespace,
       count(*) AS usage_points,
       quantile_cont(m.cpu_cores, 0.95) AS cpu_usage_p95_cores,
       max(m.cpu_cores) AS cpu_usage_max_cores,
       quantile_cont(m.memory_bytes, 0.95) AS memory_usage_p95_bytes,
       CAST(max(m.memory_bytes) AS HUGEINT) AS memory_usage_max_bytes
FROM _namespace_moments AS m
JOIN _namespace_ids AS n USING (namespace_id)
WHERE m.namespace_id BETWEEN $lo AND $hi
GROUP BY n.namespace
ORDER BY n.namespace
