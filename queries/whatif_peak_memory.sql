-- What-if memory pressure, one slice of the window: for a hypothetical placement (registered as
-- whatif_placement: namespace, pod, node, node_id), each node's largest summed container working
-- set at one timestamp of [$lo, $hi], and the first time it was reached (ties give the same
-- answer every run; a node whose sums are all NULL gets NULL at its first time). Pods are matched
-- to their usage series by (namespace, pod). Summed in the stored KiB (exact: the bytes are whole
-- KiB) per integer node id; capplan.analysis.whatif takes the largest of the slices'.
-- The samples the usage_samples view shows, as stored (usage_stored_in: the stored TIMESTAMP_S
-- compared as it is, the zone maps skip the other days); from usage_raw alone when the caller
-- knows the slice holds no rolled-up sample (capplan.store.query's raw: bench L, 1.2 -> 0.8 CPU-s).
-- The peak and its time are one aggregate (arg_min on (no value, -sum, time)), not a window
-- function over the sums: bench L, 5 days, 1.46 -> 1.03 CPU-s.
-- Params: $lo TIMESTAMP, $hi TIMESTAMP (whole seconds).
WITH pod_series AS (
    SELECT s.series_id, p.node_id
    FROM series AS s
    JOIN whatif_placement AS p ON p.namespace = s.namespace AND p.pod = s.pod
),
per_moment AS (
    SELECT ps.node_id, u.ts, sum(u.memory_kib) AS memory_kib
    FROM usage_stored_in($lo, $hi) AS u
    JOIN pod_series AS ps USING (series_id)
    GROUP BY ps.node_id, u.ts
)
SELECT node_id, CAST(max(memory_kib) AS BIGINT) * 1024 AS peak_memory_bytes,
       CAST(arg_min(ts, (memory_kib IS NULL, coalesce(-memory_kib, 0), ts)) AS TIMESTAMP) AS peak_at
FROM per_moment
GROUP BY node_id
