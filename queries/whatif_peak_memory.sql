-- What-if memory pressure, one slice of the window: for a hypothetical placement (registered as
-- whatif_placement: namespace, pod, node, node_id), each node's largest summed container working
-- set at one timestamp of [$start, $end], and the first time it was reached (ties give the same
-- answer every run). Pods are matched to their usage series by (namespace, pod). Summed in the
-- stored KiB (exact: the bytes are whole KiB) per integer node id; capplan.analysis.whatif takes
-- the largest of the slices'.
-- Params: $start TIMESTAMP, $end TIMESTAMP.
WITH pod_series AS (
    SELECT s.series_id, p.node_id
    FROM series AS s
    JOIN whatif_placement AS p ON p.namespace = s.namespace AND p.pod = s.pod
),
per_moment AS (
    SELECT ps.node_id, u.ts, sum(u.memory_kib) AS memory_kib
    FROM usage_in($start, $end) AS u
    JOIN pod_series AS ps USING (series_id)
    GROUP BY ps.node_id, u.ts
)
SELECT node_id, CAST(memory_kib AS BIGINT) * 1024 AS peak_memory_bytes, ts AS peak_at
FROM per_moment
QUALIFY row_number() OVER (PARTITION BY node_id ORDER BY memory_kib DESC, ts) = 1
