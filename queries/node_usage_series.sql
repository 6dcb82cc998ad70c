-- Per node and timestamp over [$start, $end]: the node's summed container usage, in no particular
-- order, summed from the samples: what `--engine spark` runs (capplan.engines.spark); DuckDB reads
-- the stored sums instead (queries/node_sums_series.sql, schema 006).
-- Params: $start TIMESTAMP, $end TIMESTAMP.
SELECT s.node, u.ts, sum(u.cpu_cores) AS cpu_cores, sum(u.memory_bytes) AS memory_bytes
FROM usage_samples AS u
JOIN series AS s USING (series_id)
WHERE u.ts BETWEEN $start AND $end AND s.node <> ''
GROUP BY s.node, u.ts
