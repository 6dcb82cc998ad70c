-- Per node: its summed-usage rows in [$start, $end] (how capplan.analysis.node_series batches the
-- nodes of queries/node_sums_percentiles.sql).
-- Params: $start, $end, $dirty_lo, $dirty_hi TIMESTAMP (capplan.store.node_usage_params).
SELECT node, count(*) AS points
FROM node_usage_window($start, $end, $dirty_lo, $dirty_hi)
GROUP BY node
ORDER BY node
