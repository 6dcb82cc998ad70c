-- The stored daily usage figures (scope_usage_daily, schema 007) of the cluster and its namespaces
-- on the UTC days of [$start, $end]; the caller keeps the days the window holds whole and that are
-- not pending (capplan.analysis.forecast.series.load_usage_daily). In a store.scope: one cluster's.
-- Params: $start TIMESTAMP, $end TIMESTAMP.
SELECT scope_kind, scope_name, day, sample_times, first_ts, last_ts,
       cpu_cores_p95 AS cpu, memory_bytes_p95 AS memory
FROM scope_usage_daily
WHERE day BETWEEN CAST($start AS DATE) AND CAST($end AS DATE)
