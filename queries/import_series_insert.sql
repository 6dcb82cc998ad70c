-- `capplan import FILE`, in its transaction: the file's new containers (ids from import_series.sql)
-- in the cluster $cluster, in the order of their ids (without it the L file's 11,502 came out in two
-- runs, 6145.. then 1..: no reader depends on it, but the same file then makes the same table).
-- Each with the node it was last seen on in the file (_staged_nodes, import_series_nodes.sql; ''
-- when none): series_nodes_upsert.sql then changes no new series, where setting the node of every
-- new one cost 0.05 s of the L Parquet import (11,502 series; bench/RESULTS.md, issue 14). It still
-- sets the node of any series whose stored history says otherwise.
INSERT INTO series (series_id, cluster, namespace, pod, container, node)
SELECT s.series_id, $cluster, s.namespace, s.pod, s.container, coalesce(latest.node, '')
FROM _import_series AS s
LEFT JOIN (SELECT series_id, arg_max(node, valid_to) AS node FROM _staged_nodes GROUP BY series_id) AS latest
    USING (series_id)
WHERE s.new
ORDER BY s.series_id
