-- One slice of the node sums' refresh (capplan.store._refresh_node_sums), and the definition of
-- node_usage's rows (schema 006): for [$lo, $hi] (whole seconds), per cluster, node and sample time,
-- the summed usage of every stored sample (usage_raw and the rollups, as the usage_samples view shows
-- them) of the containers whose series is on that node (series.node) now, in the stored units;
-- NULL when no sample has the value. Runs on the real tables, never in a store.scope.
-- The samples are read through usage_stored_in, so a slice without rolled-up samples runs on
-- usage_raw alone (store.load_sql(..., raw=True): the aggregate of a day of L 0.18 -> 0.08 CPU-s), and
-- grouped by the integer node id of queries/sums_refresh_ids.sql. The sums are sorted by (ts, node_id)
-- while they are integers, and the names put on after the sort by a lookup in the list of names (a
-- projection keeps the order; a join to the names would not, and sorting with the texts aboard cost
-- 0.08 CPU-s a day more). The order is for the file alone (no reader depends on it: each aggregates
-- or sorts what it reads): a refresh's sums unsorted take ~50% more blocks (10 days of L imported:
-- 164 against 110, the times bit-packed instead of run-length coded), bench/RESULTS.md.
INSERT INTO node_usage (cluster, node, ts, cpu_mcores, memory_kib)
WITH sums AS (
    SELECT m.node_id, u.ts, CAST(sum(u.cpu_mcores) AS BIGINT) AS cpu_mcores, CAST(sum(u.memory_kib) AS BIGINT) AS memory_kib
    FROM usage_stored_in($lo, $hi) AS u
    JOIN _refresh_series_nodes AS m USING (series_id)
    GROUP BY m.node_id, u.ts
),
names AS (
    SELECT list(cluster ORDER BY node_id) AS clusters, list(node ORDER BY node_id) AS nodes FROM _refresh_nodes
)
SELECT names.clusters[s.node_id], names.nodes[s.node_id], CAST(s.ts AS TIMESTAMP), s.cpu_mcores, s.memory_kib
FROM (SELECT * FROM sums ORDER BY ts, node_id) AS s, names
