-- Per node and timestamp over [$start, $end]: the node's summed container usage (the series the
-- node percentiles and the memory-pressure risk are computed from), in no particular order; only
-- the nodes in $nodes when it is not NULL (charts of a few nodes).
-- Params: $start, $end, $dirty_lo, $dirty_hi TIMESTAMP (capplan.store.node_usage_params); $nodes VARCHAR[] or NULL.
SELECT node, ts, cpu_cores, memory_bytes
FROM node_usage_window($start, $end, $dirty_lo, $dirty_hi)
WHERE $nodes IS NULL OR list_contains($nodes, node)
