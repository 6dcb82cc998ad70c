-- Per node and pod: in how many of the node's moments under the hard threshold within [$start, $end]
-- the pod is among those the kubelet would evict to relieve it, each moment ranked and relieved on
-- its own as capplan.analysis.eviction.exposure.pod_exposure does (rankMemoryPressure: pods above
-- their request first, lower priority first, larger usage - request first; then namespace and pod;
-- critical pods are skipped and free nothing). Pods with no stats at a moment are not at it.
-- Params: $start, $end, $dirty_lo, $dirty_hi TIMESTAMP (capplan.store.node_usage_params): one slice.
-- Registered: _eviction_thresholds (node, memory_capacity_bytes, hard_threshold_bytes),
--             _eviction_specs (namespace, pod, memory_request_bytes, priority, evictable).
WITH needs AS (
    SELECT u.node, u.ts, t.hard_threshold_bytes - (t.memory_capacity_bytes - u.memory_bytes) AS need_bytes
    FROM node_usage_window($start, $end, $dirty_lo, $dirty_hi) AS u
    JOIN _eviction_thresholds AS t USING (node)
    WHERE u.memory_bytes IS NOT NULL AND t.hard_threshold_bytes - (t.memory_capacity_bytes - u.memory_bytes) > 0
),
pods AS (
    SELECT s.node, u.ts, s.namespace, s.pod, CAST(sum(u.memory_kib) AS BIGINT) * 1024 AS working_set_bytes
    FROM usage_in($start, $end) AS u
    JOIN series AS s USING (series_id)
    SEMI JOIN needs AS n ON n.node = s.node AND n.ts = u.ts
    WHERE u.memory_kib IS NOT NULL
    GROUP BY s.node, u.ts, s.namespace, s.pod
),
specs AS (
    SELECT p.node, p.ts, p.namespace, p.pod, p.working_set_bytes, n.need_bytes,
           coalesce(x.memory_request_bytes, 0) AS request_bytes, coalesce(x.priority, 0) AS priority,
           coalesce(x.evictable, true) AS evictable
    FROM pods AS p
    JOIN needs AS n USING (node, ts)
    LEFT JOIN _eviction_specs AS x USING (namespace, pod)
),
ranked AS (
    SELECT node, namespace, pod, need_bytes, evictable,
           CASE WHEN evictable THEN working_set_bytes ELSE 0 END AS freed_bytes,
           sum(CASE WHEN evictable THEN working_set_bytes ELSE 0 END) OVER (
               PARTITION BY node, ts
               ORDER BY working_set_bytes > request_bytes DESC, priority, working_set_bytes - request_bytes DESC,
                        namespace, pod
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cumulative_freed_bytes
    FROM specs
)
SELECT node, namespace, pod,
       CAST(count_if(evictable AND cumulative_freed_bytes - freed_bytes < need_bytes) AS BIGINT) AS evicted_moments
FROM ranked
GROUP BY node, namespace, pod
