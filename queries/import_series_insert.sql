-- `capplan import FILE`, in its transaction: the file's new containers (ids from import_series.sql)
-- in the cluster $cluster.
INSERT INTO series (series_id, cluster, namespace, pod, container, node)
SELECT series_id, $cluster, namespace, pod, container, ''
FROM _import_series
WHERE new
