-- Per node: percentiles of the node's summed container usage over [$start, $end] (linear
-- interpolation between the per-timestamp sums: quantile_cont, numpy's and polars' default).
-- One quantile state per column for the three levels: DuckDB keeps each state's values (8,640 per
-- node over 30 days at 5 minutes), so six separate quantile_cont calls held six copies.
-- The nodes of _node_batch (node) only: capplan.analysis.node_series takes them a batch at a time
-- (the states of all 11 M sums of the bench's L at once: +430 MiB of peak RSS).
-- Params: $start, $end, $dirty_lo, $dirty_hi TIMESTAMP (capplan.store.node_usage_params).
WITH q AS (
    SELECT node,
           count(*) AS usage_points,
           quantile_cont(cpu_cores, [0.50, 0.95, 0.99]) AS cpu_q,
           max(cpu_cores) AS cpu_usage_max_cores,
           quantile_cont(memory_bytes, [0.50, 0.95, 0.99]) AS memory_q,
           max(memory_bytes) AS memory_usage_max_bytes
    FROM node_usage_window($start, $end, $dirty_lo, $dirty_hi)
    WHERE node IN (SELECT node FROM _node_batch)
    GROUP BY node
)
SELECT node, usage_points,
       cpu_q[1] AS cpu_usage_p50_cores, cpu_q[2] AS cpu_usage_p95_cores, cpu_q[3] AS cpu_usage_p99_cores,
       cpu_usage_max_cores,
       memory_q[1] AS memory_usage_p50_bytes, memory_q[2] AS memory_usage_p95_bytes, memory_q[3] AS memory_usage_p99_bytes,
       memory_usage_max_bytes
FROM q
ORDER BY node
