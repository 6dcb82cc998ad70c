-- After samples were pruned: series left without samples go (with their node history), and
-- every remaining series points at the latest node it has history for.
DELETE FROM series_nodes WHERE series_id NOT IN (SELECT DISTINCT series_id FROM usage_samples);
UPDATE series SET node = latest.node
FROM (SELECT series_id, arg_max(node, valid_to) AS node FROM series_nodes GROUP BY series_id) AS latest
WHERE series.series_id = latest.series_id AND series.node <> latest.node;
DELETE FROM series WHERE series_id NOT IN (SELECT DISTINCT series_id FROM usage_samples);
