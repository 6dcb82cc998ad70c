-- Per node and timestamp over [$start, $end]: the node's summed container usage, in no particular
-- order, summed from the samples: what `--engine spark` runs (capplan.engines.spark); DuckDB reads
-- the stored sums instead (queries/node_sums_series.sql, schema 006).
-- CPU is summed in whole millicores, the stored unit (the view's REAL cores times 1000, rounded:
-- exact below 4,000 cores), so both engines and the stored sums (schema 006) give the same value.
-- Params: $start TIMESTAMP, $end TIMESTAMP.
SELECT s.node, u.ts, sum(CAST(round(CAST(u.cpu_cores AS DOUBLE) * 1000) AS BIGINT)) / 1000 AS cpu_cores,
       sum(u.memory_bytes) AS memory_bytes
FROM usage_samples AS u
JOIN series AS s USING (series_id)
WHERE u.ts BETWEEN $start AND $end AND s.node <> ''
GROUP BY s.node, u.ts
