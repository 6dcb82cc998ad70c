-- Record the nodes staged usage ran on (_staged_nodes: series_id, node, valid_from, valid_to),
-- widening known (series, node) spans, then point each touched series at its latest node; returns
-- the series that moved (their node sums must be recomputed, schema 006).
INSERT INTO series_nodes (series_id, node, valid_from, valid_to)
SELECT series_id, node, valid_from, valid_to FROM _staged_nodes
ON CONFLICT (series_id, node) DO UPDATE SET
    valid_from = least(series_nodes.valid_from, excluded.valid_from),
    valid_to = greatest(series_nodes.valid_to, excluded.valid_to);
UPDATE series SET node = latest.node
FROM (
    SELECT n.series_id, arg_max(n.node, n.valid_to) AS node
    FROM series_nodes AS n
    WHERE n.series_id IN (SELECT series_id FROM _staged_nodes)
    GROUP BY n.series_id
) AS latest
WHERE series.series_id = latest.series_id AND series.node <> latest.node
RETURNING series.series_id;
