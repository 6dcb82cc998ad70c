-- The daily usage figures of the cluster and its namespaces computed from the samples of
-- [$start, $end] (queries/scope_usage_macros.sql: the definition of scope_usage_daily's rows): for
-- the days a forecast window holds only in part, and the days still pending.
-- Params: $start TIMESTAMP, $end TIMESTAMP.
SELECT scope_kind, scope_name, day, sample_times, first_ts, last_ts,
       cpu_cores_p95 AS cpu, memory_bytes_p95 AS memory
FROM scope_usage_figures($start, $end)
