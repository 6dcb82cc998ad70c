-- Per node: percentiles of the node's summed container usage over [$start, $end] (linear
-- interpolation between the per-timestamp sums: quantile_cont, numpy's and polars' default).
-- Params: $start, $end, $dirty_lo, $dirty_hi TIMESTAMP (capplan.store.node_usage_params).
SELECT node,
       count(*) AS usage_points,
       quantile_cont(cpu_cores, 0.50) AS cpu_usage_p50_cores,
       quantile_cont(cpu_cores, 0.95) AS cpu_usage_p95_cores,
       quantile_cont(cpu_cores, 0.99) AS cpu_usage_p99_cores,
       max(cpu_cores) AS cpu_usage_max_cores,
       quantile_cont(memory_bytes, 0.50) AS memory_usage_p50_bytes,
       quantile_cont(memory_bytes, 0.95) AS memory_usage_p95_bytes,
       quantile_cont(memory_bytes, 0.99) AS memory_usage_p99_bytes,
       max(memory_bytes) AS memory_usage_max_bytes
FROM node_usage_window($start, $end, $dirty_lo, $dirty_hi)
GROUP BY node
ORDER BY node
