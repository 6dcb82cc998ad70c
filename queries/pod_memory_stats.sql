-- Per node and pod over [$lo, $hi]: the pod's working set (sum over its containers per sample
-- time) at its p95, peak and latest sample, for the pods whose smallest series id is in
-- [$first_id, $last_id] (a part: capplan.analysis.eviction.analysis.pod_memory_stats runs the
-- parts one after another, series_parts.run_parts; together they hold every pod once).
-- Params: $lo, $hi TIMESTAMP whole seconds (rollup_span.stored_bounds); $first_id, $last_id BIGINT.
-- Pods are grouped by a dense integer id, not by their three name strings: at 86 M samples the
-- string-keyed per-timestamp hash table alone outgrew 8 GiB. The exact p95 keeps every per-time
-- sum of the pods it aggregates: over all pods at once, 90 days of the bench's L year file ran out
-- of DuckDB's 1.9 GiB (issue 14), hence the parts. A part's series ids are those of its pods; the
-- join's bounds on them let the scan of the clustered usage_raw skip the other row groups.
WITH pods AS (
    SELECT series_id, node, namespace, pod,
           dense_rank() OVER (ORDER BY node, namespace, pod) AS pod_id,
           min(series_id) OVER (PARTITION BY node, namespace, pod) AS pod_first_id
    FROM series
    WHERE node <> ''
),
part AS (
    SELECT series_id, node, namespace, pod, pod_id
    FROM pods
    WHERE pod_first_id BETWEEN $first_id AND $last_id
),
per_ts AS (
    SELECT p.pod_id, u.ts, CAST(sum(u.memory_kib) AS BIGINT) * 1024 AS working_set_bytes
    FROM usage_stored_in($lo, $hi) AS u
    JOIN part AS p USING (series_id)
    WHERE u.memory_kib IS NOT NULL
    GROUP BY p.pod_id, u.ts
),
stats AS (
    SELECT pod_id,
           quantile_cont(working_set_bytes, 0.95) AS working_set_p95_bytes,
           CAST(max(working_set_bytes) AS BIGINT) AS working_set_peak_bytes,
           CAST(arg_max(working_set_bytes, ts) AS BIGINT) AS working_set_latest_bytes,
           CAST(max(ts) AS TIMESTAMP) AS last_seen
    FROM per_ts
    GROUP BY pod_id
)
SELECT n.node, n.namespace, n.pod, s.working_set_p95_bytes, s.working_set_peak_bytes,
       s.working_set_latest_bytes, s.last_seen
FROM stats AS s
JOIN (SELECT DISTINCT pod_id, node, namespace, pod FROM part) AS n USING (pod_id)
ORDER BY n.node, n.namespace, n.pod
