-- The integer ids the stored sums' refresh writes and groups by (capplan.store.refresh_node_usage,
-- refresh_scope_usage), run once per refresh, before its first slice, in its transaction:
-- every (cluster, node) of a series and every (cluster, namespace) not yet named gets the next id
-- (schema 010: node_names, namespace_names; an id is never reused or renumbered, so the stored sums
-- keep theirs), then each series' ids go into temp tables (this connection's, replaced by the next
-- refresh; the series do not change during one: refreshes run in the single writer, outside its
-- writes). Grouping a slice's samples by an integer id read from a table costs less than grouping by
-- the texts or numbering them in every slice (bench L import, 10 days of node sums: 2.85 CPU-s with
-- the ids in a CTE of the slice's query, 2.62 from a table; bench/RESULTS.md).
INSERT INTO node_names (node_id, cluster, node)
SELECT CAST((SELECT coalesce(max(node_id), 0) FROM node_names) + row_number() OVER (ORDER BY cluster, node) AS INTEGER),
       cluster, node
FROM (SELECT DISTINCT cluster, node FROM series WHERE node <> ''
      EXCEPT SELECT cluster, node FROM node_names);

CREATE OR REPLACE TEMP TABLE _refresh_series_nodes AS
SELECT s.series_id, n.node_id
FROM series AS s
JOIN node_names AS n USING (cluster, node)
ORDER BY s.series_id;

INSERT INTO namespace_names (namespace_id, cluster, namespace)
SELECT CAST((SELECT coalesce(max(namespace_id), 0) FROM namespace_names)
            + row_number() OVER (ORDER BY cluster, namespace) AS INTEGER), cluster, namespace
FROM (SELECT DISTINCT cluster, namespace FROM series
      EXCEPT SELECT cluster, namespace FROM namespace_names);

CREATE OR REPLACE TEMP TABLE _refresh_series_namespaces AS
SELECT s.series_id, n.namespace_id
FROM series AS s
JOIN namespace_names AS n USING (cluster, namespace)
ORDER BY s.series_id;
