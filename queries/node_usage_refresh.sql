-- One slice of the node sums' refresh (capplan.store._refresh_node_sums), and the definition of
-- node_usage's rows (schema 006, stored in node_sums since schema 010): for [$lo, $hi] (whole
-- seconds), per cluster, node and sample time, the summed usage of every stored sample (usage_raw
-- and the rollups, as the usage_samples view shows them) of the containers whose series is on that
-- node (series.node) now, in the stored units; NULL when no sample has the value. Runs on the real
-- tables, never in a store.scope.
-- The samples are read through usage_stored_in, so a slice without rolled-up samples runs on
-- usage_raw alone (store.load_sql(..., raw=True): the aggregate of a day of L 0.18 -> 0.08 CPU-s),
-- grouped by the integer node id of queries/sums_refresh_ids.sql, and stored by that id (no text:
-- inserting a day's 373 k sums of L cost 0.13-0.16 CPU-s with the cluster and node texts, 0.02-0.03
-- with the id). Sorted by (ts, node_id) for the file alone (no reader depends on the order: each
-- aggregates or sorts what it reads): unsorted on two threads, a day's times are bit-packed instead
-- of run-length coded (bench/RESULTS.md). DuckDB on one thread emits the sums of clustered raw
-- samples in runs of times without the sort, so the closing ORDER BY is left out then
-- (capplan.store._SUMS_ORDER_BY).
-- The integers are added up in a DOUBLE: exact while a sum stays below 2^53 (4 M samples of
-- INTEGER's largest value at one node and time), and a smaller aggregate state than the HUGEINT
-- of sum(INTEGER): 10 days of the L import's node sums on one thread, 1.28-1.53 -> 1.14-1.19
-- CPU-s (bench/RESULTS.md, issue 14).
INSERT INTO node_sums (node_id, ts, cpu_mcores, memory_kib)
SELECT m.node_id, CAST(u.ts AS TIMESTAMP) AS ts,
       CAST(sum(CAST(u.cpu_mcores AS DOUBLE)) AS BIGINT), CAST(sum(CAST(u.memory_kib AS DOUBLE)) AS BIGINT)
FROM usage_stored_in($lo, $hi) AS u
JOIN _refresh_series_nodes AS m USING (series_id)
GROUP BY m.node_id, u.ts
ORDER BY ts, m.node_id
