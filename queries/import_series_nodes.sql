-- `capplan import FILE`: on which node each series ran, and when (_staged_nodes, for
-- series_nodes_upsert.sql), from the file's summary.
CREATE OR REPLACE TEMP TABLE _staged_nodes AS
SELECT m.series_id, g.node,
       date_trunc('second', min(g.valid_from)) AS valid_from,
       date_trunc('second', max(g.valid_to)) AS valid_to
FROM _import_groups AS g
JOIN _import_series AS m USING (namespace, pod, container)
WHERE g.node IS NOT NULL AND g.node <> ''
GROUP BY m.series_id, g.node
