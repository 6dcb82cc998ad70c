-- Table macros of the daily usage figures per scope (schema 007) and of the namespace sums (schema
-- 008), created on every connection
-- capplan opens (capplan.store._connect); names resolve when a query calls them.
--
-- namespace_usage_compute, the definition of namespace_usage's rows (schema 008), is now
-- queries/namespace_usage_refresh.sql, the refresh's own query (capplan.store.refresh_scope_usage).

-- scope_usage_from_sums(lo, hi): per cluster, UTC day and scope (the cluster, each namespace) of the
-- stored namespace sums in [lo, hi] (namespace_usage, schema 008): the number of sample times, the
-- first and last, and the 95th percentile (linear interpolation) of the scope's summed usage per
-- sample time, in cores and bytes (the cluster's sums add its namespaces'). What scope_usage_daily
-- (schema 007) holds for whole days (capplan.store.refresh_scope_usage, right after it stored the
-- day's namespace sums; on the real tables, never in a store.scope): the same figures schema 007
-- computed from the samples, since the sums are the same.
-- The namespaces' figures are made per namespace id from namespace_sums (schema 010), and their
-- names joined to the 810 figures of a day of L, not to its 191 k sums through the namespace_usage
-- view: a day's figures 0.037-0.049 -> 0.028-0.030 CPU-s on one thread, the same rows.
CREATE OR REPLACE TEMP MACRO scope_usage_from_sums(lo, hi) AS TABLE
WITH per_namespace AS (
    SELECT namespace_id, ts, cpu_cores, memory_kib
    FROM namespace_sums
    WHERE ts BETWEEN lo AND hi
),
namespace_figures AS (
    SELECT namespace_id, CAST(ts AS DATE) AS day, count(*) AS sample_times, min(ts) AS first_ts, max(ts) AS last_ts,
           quantile_cont(cpu_cores, 0.95) AS cpu_cores_p95,
           quantile_cont(CAST(memory_kib AS DOUBLE) * 1024, 0.95) AS memory_bytes_p95
    FROM per_namespace
    GROUP BY namespace_id, day
),
cluster_sums AS (
    SELECT n.cluster, p.ts, sum(p.cpu_cores) AS cpu_cores, CAST(sum(p.memory_kib) AS BIGINT) AS memory_kib
    FROM per_namespace AS p
    JOIN namespace_names AS n USING (namespace_id)
    GROUP BY n.cluster, p.ts
)
SELECT n.cluster, f.day, 'namespace' AS scope_kind, n.namespace AS scope_name, f.sample_times, f.first_ts,
       f.last_ts, f.cpu_cores_p95, f.memory_bytes_p95
FROM namespace_figures AS f
JOIN namespace_names AS n USING (namespace_id)
UNION ALL
SELECT cluster, CAST(ts AS DATE) AS day, 'cluster', 'cluster', count(*), min(ts), max(ts),
       quantile_cont(cpu_cores, 0.95), quantile_cont(CAST(memory_kib AS DOUBLE) * 1024, 0.95)
FROM cluster_sums
GROUP BY cluster, day;

-- scope_usage_figures(lo, hi): the same for readers (in a store.scope: one cluster's), without the
-- cluster column: the days a reader cannot take from scope_usage_daily (partial in its window, or
-- pending).
CREATE OR REPLACE TEMP MACRO scope_usage_figures(lo, hi) AS TABLE
WITH per_namespace AS (
    SELECT s.namespace, u.ts,
           sum(CAST(u.cpu_mcores * 0.001 AS REAL))::DOUBLE AS cpu_cores, CAST(sum(u.memory_kib) AS BIGINT) AS memory_kib
    FROM usage_in(lo, hi) AS u
    JOIN series AS s USING (series_id)
    GROUP BY s.namespace, u.ts
),
sums AS (
    SELECT 'namespace' AS scope_kind, namespace AS scope_name, ts, cpu_cores, memory_kib FROM per_namespace
    UNION ALL
    SELECT 'cluster', 'cluster', ts, sum(cpu_cores), CAST(sum(memory_kib) AS BIGINT)
    FROM per_namespace GROUP BY ts
)
SELECT CAST(ts AS DATE) AS day, scope_kind, scope_name, count(*) AS sample_times,
       min(ts) AS first_ts, max(ts) AS last_ts,
       quantile_cont(cpu_cores, 0.95) AS cpu_cores_p95,
       quantile_cont(CAST(memory_kib AS DOUBLE) * 1024, 0.95) AS memory_bytes_p95
FROM sums
GROUP BY day, scope_kind, scope_name;

-- node_usage_units(lo, hi, dirty_lo, dirty_hi): node_usage_window in the stored units (node, ts,
-- cpu_mcores, memory_kib), so that sums over many nodes (a node pool's) stay exact.
CREATE OR REPLACE TEMP MACRO node_usage_units(lo, hi, dirty_lo, dirty_hi) AS TABLE
SELECT node, ts, cpu_mcores, memory_kib
FROM node_usage
WHERE ts BETWEEN lo AND hi AND NOT (ts BETWEEN dirty_lo AND dirty_hi)
UNION ALL
SELECT node, ts, cpu_mcores, memory_kib
FROM node_usage_sum(greatest(lo, dirty_lo), least(hi, dirty_hi));
