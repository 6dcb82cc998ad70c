-- queries/namespace_usage_percentiles.sql straight from the stored sums (namespace_usage, schema
-- 008) when none of the window's days is pending and the rows are one cluster's (a store.scope, or
-- a store of one cluster): per namespace in [$lo, $hi] (a batch: DuckDB's quantile states hold
-- every value), the same sums, so the same numbers and types.
-- Params: $start TIMESTAMP, $end TIMESTAMP, $lo VARCHAR, $hi VARCHAR.
SELECT namespace,
       count(*) AS usage_points,
       quantile_cont(cpu_cores, 0.95) AS cpu_usage_p95_cores,
       max(cpu_cores) AS cpu_usage_max_cores,
       quantile_cont(memory_kib * 1024, 0.95) AS memory_usage_p95_bytes,
       CAST(max(memory_kib * 1024) AS HUGEINT) AS memory_usage_max_bytes
FROM namespace_usage
WHERE ts BETWEEN $start AND $end AND namespace BETWEEN $lo AND $hi
GROUP BY namespace
ORDER BY namespace
