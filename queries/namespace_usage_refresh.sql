-- One part of the namespace sums' refresh (capplan.store.refresh_scope_usage), and the definition of
-- namespace_usage's rows (schema 008): for [$lo, $hi] (whole seconds), per cluster, namespace and
-- sample time, the summed usage of every stored sample (usage_raw and the rollups, as the
-- usage_samples view shows them) of the namespace's series; NULL when no sample has the value. CPU
-- adds the cores as the view shows them (REAL) in a DOUBLE, as the namespaces and the forecast summed
-- them before the table, so their answers did not change (a DOUBLE holds such a sum exactly: REAL's
-- 24-bit mantissas of values from 0.001 to thousands of cores fit in its 53 bits, whatever the
-- order); memory adds KiB exactly. Runs on the real tables, never in a store.scope.
-- As queries/node_usage_refresh.sql: the samples through usage_stored_in (usage_raw alone where the
-- part has no rolled-up sample), grouped by the integer namespace id of queries/sums_refresh_ids.sql,
-- sorted by (ts, namespace_id) as integers, the names looked up after the sort. In time order the
-- file holds the sums in ~25% less than in namespace order (10 days of L: 90 blocks against 120), for
-- about the same CPU (bench/RESULTS.md); no reader depends on the order.
INSERT INTO namespace_usage (cluster, namespace, ts, cpu_cores, memory_kib)
WITH sums AS (
    SELECT m.namespace_id, u.ts,
           sum(CAST(u.cpu_mcores * 0.001 AS REAL))::DOUBLE AS cpu_cores, CAST(sum(u.memory_kib) AS BIGINT) AS memory_kib
    FROM usage_stored_in($lo, $hi) AS u
    JOIN _refresh_series_namespaces AS m USING (series_id)
    GROUP BY m.namespace_id, u.ts
),
names AS (
    SELECT list(cluster ORDER BY namespace_id) AS clusters, list(namespace ORDER BY namespace_id) AS namespaces
    FROM _refresh_namespaces
)
SELECT names.clusters[s.namespace_id], names.namespaces[s.namespace_id], CAST(s.ts AS TIMESTAMP), s.cpu_cores, s.memory_kib
FROM (SELECT * FROM sums ORDER BY ts, namespace_id) AS s, names
