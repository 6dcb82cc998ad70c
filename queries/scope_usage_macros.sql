-- Table macros of the daily usage figures per scope (schema 007), created on every connection
-- capplan opens (capplan.store._connect); names resolve when a query calls them.
--
-- scope_usage_compute(lo, hi): per cluster, UTC day and scope (the cluster, each namespace) of the
-- samples in [lo, hi] (usage_in: raw samples and rollups, as the usage_samples view shows them): the
-- number of sample times, the first and last, and the 95th percentile (linear interpolation) of the
-- scope's summed usage per sample time, in cores and bytes. CPU adds the cores as the usage_samples
-- view shows them (REAL) in a DOUBLE, as the forecast summed them before the table: so its answers did
-- not change (a DOUBLE holds such a sum exactly: REAL's 24-bit mantissas of values from 0.001 to
-- thousands of cores fit in its 53 bits, whatever the order); memory adds KiB exactly. What
-- scope_usage_daily holds for whole days (capplan.store.refresh_node_usage; on the real tables, never
-- in a store.scope).
-- The samples are grouped by an integer id of each (cluster, namespace), not by the two texts, and
-- the names joined to the day's figures (a day of the bench's L import, 2.7 M samples: 0.25 CPU-s
-- against 0.37; the same rows as grouping by the texts, to the bit, on all ten days: EXCEPT ALL both
-- ways; tests/test_scope_usage.py checks them against a brute force).
CREATE OR REPLACE TEMP MACRO scope_usage_compute(lo, hi) AS TABLE
WITH scopes AS (
    SELECT series_id, cluster, namespace, dense_rank() OVER (ORDER BY cluster, namespace) AS scope_id
    FROM series
),
names AS (
    SELECT DISTINCT scope_id, cluster, namespace FROM scopes
),
per_namespace AS (
    SELECT n.scope_id, u.ts,
           sum(CAST(u.cpu_mcores * 0.001 AS REAL))::DOUBLE AS cpu_cores, CAST(sum(u.memory_kib) AS BIGINT) AS memory_kib
    FROM usage_in(lo, hi) AS u
    JOIN scopes AS n USING (series_id)
    GROUP BY n.scope_id, u.ts
),
namespace_figures AS (
    SELECT scope_id, CAST(ts AS DATE) AS day, count(*) AS sample_times, min(ts) AS first_ts, max(ts) AS last_ts,
           quantile_cont(cpu_cores, 0.95) AS cpu_cores_p95,
           quantile_cont(CAST(memory_kib AS DOUBLE) * 1024, 0.95) AS memory_bytes_p95
    FROM per_namespace
    GROUP BY scope_id, day
),
cluster_sums AS (
    SELECT k.cluster, p.ts, sum(p.cpu_cores) AS cpu_cores, CAST(sum(p.memory_kib) AS BIGINT) AS memory_kib
    FROM per_namespace AS p
    JOIN names AS k USING (scope_id)
    GROUP BY k.cluster, p.ts
)
SELECT k.cluster, f.day, 'namespace' AS scope_kind, k.namespace AS scope_name, f.sample_times, f.first_ts,
       f.last_ts, f.cpu_cores_p95, f.memory_bytes_p95
FROM namespace_figures AS f
JOIN names AS k USING (scope_id)
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
