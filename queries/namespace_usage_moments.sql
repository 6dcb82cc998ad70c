-- Per namespace (as its integer id: its rank among the stored namespaces) and sample time in
-- [$start, $end]: the namespace's summed container usage, one slice of the window
-- (capplan.analysis.namespaces.load_namespace_usage holds the slices' rows, then takes
-- queries/namespace_usage_percentiles.sql of them). CPU is summed as the usage_samples view's REAL
-- cores into a DOUBLE (exact whatever the order: float32 values of whole millicores, far from the
-- 53 bits of a double), memory in whole bytes.
-- Params: $start TIMESTAMP, $end TIMESTAMP.
WITH ids AS (
    SELECT series_id, CAST(dense_rank() OVER (ORDER BY namespace) AS INTEGER) AS namespace_id
    FROM series
)
SELECT i.namespace_id,
       sum(CAST(u.cpu_mcores * 0.001 AS REAL)) AS cpu_cores,
       CAST(sum(CAST(u.memory_kib AS BIGINT) * 1024) AS BIGINT) AS memory_bytes
FROM usage_in($start, $end) AS u
JOIN ids AS i USING (series_id)
GROUP BY i.namespace_id, u.ts
