-- What-if memory pressure: for a hypothetical placement (registered as whatif_placement:
-- namespace, pod, node), each node's largest summed container working set at one timestamp of
-- [$start, $end], and the first time it was reached. Pods are matched to their usage series by (namespace, pod).
-- Params: $start TIMESTAMP, $end TIMESTAMP.
WITH pod_series AS (
    SELECT s.series_id, p.node
    FROM series AS s
    JOIN whatif_placement AS p ON p.namespace = s.namespace AND p.pod = s.pod
),
per_moment AS (
    SELECT ps.node, u.ts, sum(u.memory_bytes) AS memory_bytes
    FROM usage_samples AS u
    JOIN pod_series AS ps USING (series_id)
    WHERE u.ts BETWEEN $start AND $end
    GROUP BY ps.node, u.ts
)
-- the first moment of the peak, so ties give the same answer every run
SELECT node, memory_bytes::BIGINT AS peak_memory_bytes, ts AS peak_at
FROM per_moment
QUALIFY row_number() OVER (PARTITION BY node ORDER BY memory_bytes DESC, ts) = 1
ORDER BY node
