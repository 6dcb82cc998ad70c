-- Per node: the largest summed container working set over [$start, $end].
-- Params: $start, $end, $dirty_lo, $dirty_hi TIMESTAMP (capplan.store.node_usage_params).
SELECT node, CAST(max(memory_bytes) AS DOUBLE) AS peak_bytes
FROM node_usage_window($start, $end, $dirty_lo, $dirty_hi)
GROUP BY node
ORDER BY node
