-- `capplan import FILE`: the series id of every container of the file (_import_groups) in the
-- cluster $cluster (a series is (cluster, namespace, pod, container): schema 005): the stored one,
-- or the next free ids in (namespace, pod, container) order for new containers (the import holds
-- the collection lock, so no other writer takes them before its transaction).
CREATE OR REPLACE TEMP TABLE _import_series AS
SELECT k.namespace, k.pod, k.container,
       coalesce(s.series_id, CAST((SELECT coalesce(max(series_id), 0) FROM series)
                + row_number() OVER (PARTITION BY s.series_id IS NULL ORDER BY k.namespace, k.pod, k.container)
                AS INTEGER)) AS series_id,
       s.series_id IS NULL AS new
FROM (SELECT DISTINCT namespace, pod, container FROM _import_groups) AS k
LEFT JOIN (SELECT * FROM series WHERE cluster = $cluster) AS s USING (namespace, pod, container)
