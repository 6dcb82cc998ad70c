-- The series whose latest node in series_nodes is not series.node (queries/prune_orphan_series.sql
-- is about to point them at it): their node sums move with them (schema 006).
SELECT s.series_id
FROM series AS s
JOIN (SELECT series_id, arg_max(node, valid_to) AS node FROM series_nodes GROUP BY series_id) AS latest USING (series_id)
WHERE s.node <> latest.node
