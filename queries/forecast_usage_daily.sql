-- Per scope and UTC day of [$start, $end]: the number of sample times and the 95th percentile
-- (linear interpolation) of the scope's summed usage per sample time. Scopes: the cluster, each
-- node pool (node -> pool given as the registered relation _forecast_pools(node, pool); series on
-- other nodes or on an unknown node count for no pool) and each namespace. The same as
-- queries/forecast_usage_scope_sums.sql reduced per day (capplan.analysis.forecast.series
-- usage_day_quantiles), so only (scopes x days) rows leave the store, never (scopes x sample times).
-- One pass sums the samples per (sample time, namespace) and per (sample time, pool) at once
-- (GROUPING SETS, on integer ids: grouping on the names cost a third more at the bench's L);
-- the cluster is the sum of its pools (the series on no pool form a pool of their own here).
-- The caller runs it on slices of the window (capplan.analysis.forecast.series.load_usage_daily),
-- so the pools are a registered relation, not list parameters: binding a list of 1,300 nodes cost
-- 0.15 s of CPU per statement at the bench's L.
-- Params: $start TIMESTAMP, $end TIMESTAMP.
WITH scoped_series AS (
    SELECT s.series_id, s.namespace, m.pool,
           dense_rank() OVER (ORDER BY s.namespace) AS namespace_id,
           dense_rank() OVER (ORDER BY m.pool) AS pool_id
    FROM series AS s
    LEFT JOIN _forecast_pools AS m ON m.node = s.node
),
parts AS MATERIALIZED (
    SELECT u.ts, x.namespace_id, x.pool_id, grouping(x.namespace_id) AS by_pool,
           sum(u.cpu_cores)::DOUBLE AS cpu_cores, sum(u.memory_bytes)::DOUBLE AS memory_bytes
    FROM usage_samples AS u
    JOIN scoped_series AS x USING (series_id)
    WHERE u.ts BETWEEN $start AND $end
    GROUP BY GROUPING SETS ((u.ts, x.namespace_id), (u.ts, x.pool_id))
),
sums AS (
    SELECT 'namespace' AS scope_kind, n.namespace AS scope_name, p.ts, p.cpu_cores, p.memory_bytes
    FROM parts AS p
    JOIN (SELECT DISTINCT namespace_id, namespace FROM scoped_series) AS n USING (namespace_id)
    WHERE p.by_pool = 0
    UNION ALL
    SELECT 'pool', q.pool, p.ts, p.cpu_cores, p.memory_bytes
    FROM parts AS p
    JOIN (SELECT DISTINCT pool_id, pool FROM scoped_series WHERE pool IS NOT NULL) AS q USING (pool_id)
    WHERE p.by_pool = 1
    UNION ALL
    SELECT 'cluster', 'cluster', ts, sum(cpu_cores), sum(memory_bytes)
    FROM parts
    WHERE by_pool = 1
    GROUP BY ts
)
SELECT scope_kind, scope_name, CAST(ts AS DATE) AS day, count(*) AS sample_times,
       quantile_cont(cpu_cores, 0.95) AS cpu, quantile_cont(memory_bytes, 0.95) AS memory
FROM sums
GROUP BY scope_kind, scope_name, day
ORDER BY scope_kind, scope_name, day
