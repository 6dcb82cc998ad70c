-- queries/whatif_peak_memory.sql for a slice without rolled-up samples: usage_raw alone (the same
-- rows, so the same answer; DuckDB runs it faster than the union, see capplan.analysis.rollup_span).
-- Registered: whatif_placement (namespace, pod, node, node_id).
-- Params: $lo TIMESTAMP, $hi TIMESTAMP (whole seconds).
WITH pod_series AS (
    SELECT s.series_id, p.node_id
    FROM series AS s
    JOIN whatif_placement AS p ON p.namespace = s.namespace AND p.pod = s.pod
),
per_moment AS (
    SELECT ps.node_id, u.ts, sum(u.memory_kib) AS memory_kib
    FROM usage_raw AS u
    JOIN pod_series AS ps USING (series_id)
    WHERE u.ts BETWEEN CAST($lo AS TIMESTAMP_S) AND CAST($hi AS TIMESTAMP_S)
    GROUP BY ps.node_id, u.ts
)
SELECT node_id, CAST(max(memory_kib) AS BIGINT) * 1024 AS peak_memory_bytes,
       CAST(arg_min(ts, (memory_kib IS NULL, coalesce(-memory_kib, 0), ts)) AS TIMESTAMP) AS peak_at
FROM per_moment
GROUP BY node_id
