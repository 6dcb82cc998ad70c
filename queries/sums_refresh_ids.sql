-- The integer ids the stored sums' refresh groups by (capplan.store.refresh_node_usage,
-- refresh_scope_usage), built once per refresh, before its slices: each (cluster, node) and each
-- (cluster, namespace) numbered in its order, and each series' ids. Grouping a slice's samples by
-- an integer id, then joining the names to the sums, costs less than grouping by the texts or
-- numbering them in every slice (bench L import, 10 days of node sums: 2.85 CPU-s with the ids in
-- a CTE of the slice's query, 2.62 from these tables; bench/RESULTS.md).
-- Temp tables: this connection's, replaced by the next refresh (the series do not change during
-- one: refreshes run in the single writer, outside its writes).
CREATE OR REPLACE TEMP TABLE _refresh_nodes AS
SELECT CAST(row_number() OVER (ORDER BY cluster, node) AS INTEGER) AS node_id, cluster, node
FROM (SELECT DISTINCT cluster, node FROM series WHERE node <> '');

CREATE OR REPLACE TEMP TABLE _refresh_series_nodes AS
SELECT s.series_id, n.node_id
FROM series AS s
JOIN _refresh_nodes AS n USING (cluster, node)
ORDER BY s.series_id;

CREATE OR REPLACE TEMP TABLE _refresh_namespaces AS
SELECT CAST(row_number() OVER (ORDER BY cluster, namespace) AS INTEGER) AS namespace_id, cluster, namespace
FROM (SELECT DISTINCT cluster, namespace FROM series);

CREATE OR REPLACE TEMP TABLE _refresh_series_namespaces AS
SELECT s.series_id, n.namespace_id
FROM series AS s
JOIN _refresh_namespaces AS n USING (cluster, namespace)
ORDER BY s.series_id;
