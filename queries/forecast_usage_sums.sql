-- Summed container usage per sample time, node and namespace over [$start, $end]; the forecast
-- adds these up per scope (cluster, node pool, namespace) before taking daily percentiles.
-- Params: $start TIMESTAMP, $end TIMESTAMP.
SELECT u.ts, s.node, s.namespace,
       sum(u.cpu_cores)::DOUBLE AS cpu_cores,
       sum(u.memory_bytes)::DOUBLE AS memory_bytes
FROM usage_samples AS u
JOIN series AS s USING (series_id)
WHERE u.ts BETWEEN $start AND $end
GROUP BY u.ts, s.node, s.namespace
ORDER BY u.ts, s.node, s.namespace
