-- One part of the namespace sums' refresh (capplan.store.refresh_scope_usage), and the definition of
-- namespace_usage's rows (schema 008, stored in namespace_sums since schema 010): for [$lo, $hi]
-- (whole seconds), per cluster, namespace and sample time, the summed usage of every stored sample
-- (usage_raw and the rollups, as the usage_samples view shows them) of the namespace's series; NULL
-- when no sample has the value. CPU adds the cores as the view shows them (REAL) in a DOUBLE, as the
-- namespaces and the forecast summed them before the table, so their answers did not change (a
-- DOUBLE holds such a sum exactly: REAL's 24-bit mantissas of values from 0.001 to thousands of
-- cores fit in its 53 bits, whatever the order); memory adds KiB exactly. Runs on the real tables,
-- never in a store.scope. The view's REAL is made as CAST(mcores / 1000 AS REAL), which equals its
-- CAST(mcores * 0.001 AS REAL) on every value tested (0 to 20 M, and the whole INTEGER range in steps
-- of 7,919: tests/analysis/test_recommend_stored.py) without the DECIMAL product: a day of the L
-- import's namespace sums 0.105 -> 0.097 CPU-s on one thread.
-- As queries/node_usage_refresh.sql: the samples through usage_stored_in (usage_raw alone where the
-- part has no rolled-up sample), grouped and stored by the integer namespace id of
-- queries/sums_refresh_ids.sql, in (ts, namespace_id) order (in time order the file holds the sums
-- in ~25% fewer blocks than in namespace order; no reader depends on the order), by the closing
-- ORDER BY unless DuckDB runs on one thread over clustered raw samples (capplan.store._SUMS_ORDER_BY).
INSERT INTO namespace_sums (namespace_id, ts, cpu_cores, memory_kib)
SELECT m.namespace_id, CAST(u.ts AS TIMESTAMP) AS ts,
       sum(CAST(u.cpu_mcores / 1000 AS REAL))::DOUBLE, CAST(sum(u.memory_kib) AS BIGINT)
FROM usage_stored_in($lo, $hi) AS u
JOIN _refresh_series_namespaces AS m USING (series_id)
GROUP BY m.namespace_id, u.ts
ORDER BY ts, m.namespace_id
