-- Usage per workload container over [$start, $end] for `capplan check`: the peak working set
-- and the p95 of CPU and memory over every sample of every pod of the workload.
-- `_act_series` (series_id, namespace, owner_kind, owner_name, container) is registered by the
-- caller from the recommend_series rollup. Params: $start TIMESTAMP, $end TIMESTAMP.
SELECT m.namespace, m.owner_kind, m.owner_name, m.container,
       count(*) AS samples,
       max(u.memory_bytes) AS memory_peak_bytes,
       quantile_cont(u.memory_bytes, 0.95) AS memory_p95_bytes,
       quantile_cont(u.cpu_cores, 0.95) AS cpu_p95_cores
FROM usage_samples AS u
JOIN _act_series AS m ON m.series_id = u.series_id
WHERE u.ts BETWEEN $start AND $end
GROUP BY ALL
ORDER BY 1, 2, 3, 4
