-- Per node pool and UTC day of [$start, $end]: the number of sample times and the 95th percentile
-- (linear interpolation) of the pool's summed usage per sample time, from the node sums (node_usage,
-- schema 006, with its pending ranges summed from the samples: $dirty_lo, $dirty_hi from
-- capplan.store.node_usage_params). node -> pool is the registered relation _forecast_pools(node,
-- pool) (capplan.analysis.forecast.series.node_pools); series on other nodes or on an unknown node
-- count for no pool. Sums are exact in the stored units (millicores, KiB).
-- Params: $start, $end, $dirty_lo, $dirty_hi TIMESTAMP.
WITH sums AS (
    SELECT m.pool, n.ts, CAST(sum(n.cpu_mcores) AS BIGINT) AS cpu_mcores, CAST(sum(n.memory_kib) AS BIGINT) AS memory_kib
    FROM node_usage_units($start, $end, $dirty_lo, $dirty_hi) AS n
    JOIN _forecast_pools AS m USING (node)
    GROUP BY m.pool, n.ts
)
SELECT 'pool' AS scope_kind, pool AS scope_name, CAST(ts AS DATE) AS day, count(*) AS sample_times,
       quantile_cont(cpu_mcores / 1000, 0.95) AS cpu, quantile_cont(CAST(memory_kib AS DOUBLE) * 1024, 0.95) AS memory
FROM sums
GROUP BY pool, day
