-- Per node and pod over [$start, $end]: the pod's working set (sum over its containers per
-- sample time) at its p95, peak and latest sample.
-- Params: $start TIMESTAMP, $end TIMESTAMP.
-- Pods are grouped by a dense integer id, not by their three name strings: at 86 M samples the
-- string-keyed per-timestamp hash table alone outgrew 8 GiB.
WITH pod_ids AS (
    SELECT series_id, node, namespace, pod,
           dense_rank() OVER (ORDER BY node, namespace, pod) AS pod_id
    FROM series
    WHERE node <> ''
),
per_ts AS (
    SELECT p.pod_id, u.ts, CAST(sum(u.memory_bytes) AS BIGINT) AS working_set_bytes
    FROM usage_samples AS u
    JOIN pod_ids AS p USING (series_id)
    WHERE u.ts BETWEEN $start AND $end AND u.memory_bytes IS NOT NULL
    GROUP BY p.pod_id, u.ts
),
stats AS (
    SELECT pod_id,
           quantile_cont(working_set_bytes, 0.95) AS working_set_p95_bytes,
           CAST(max(working_set_bytes) AS BIGINT) AS working_set_peak_bytes,
           CAST(arg_max(working_set_bytes, ts) AS BIGINT) AS working_set_latest_bytes,
           max(ts) AS last_seen
    FROM per_ts
    GROUP BY pod_id
)
SELECT n.node, n.namespace, n.pod, s.working_set_p95_bytes, s.working_set_peak_bytes,
       s.working_set_latest_bytes, s.last_seen
FROM stats AS s
JOIN (SELECT DISTINCT pod_id, node, namespace, pod FROM pod_ids) AS n USING (pod_id)
ORDER BY n.node, n.namespace, n.pod
