-- `capplan import FILE`, in its transaction: the file's new containers (ids from import_series.sql)
-- in the cluster $cluster, in the order of their ids (without it the L file's 11,502 came out in two
-- runs, 6145.. then 1..: no reader depends on it, but the same file then makes the same table).
INSERT INTO series (series_id, cluster, namespace, pod, container, node)
SELECT series_id, $cluster, namespace, pod, container, ''
FROM _import_series
WHERE new
ORDER BY series_id
