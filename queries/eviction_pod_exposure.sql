-- Per node and pod: in how many of the node's moments under the hard threshold within [$start, $end]
-- the pod is among those the kubelet would evict to relieve it, each moment ranked and relieved on
-- its own as capplan.analysis.eviction.exposure.pod_exposure does (rankMemoryPressure: pods above
-- their request first, lower priority first, larger usage - request first; then namespace and pod;
-- critical pods are skipped and free nothing). Pods with no stats at a moment are not at it.
-- Nodes and pods are keyed by integers (node_id: the thresholds' row; pod_id: the rank of
-- (namespace, pod), so ordering by it is ordering by the names): the string-keyed per-moment
-- tables cost twice the CPU at the bench's L (a day of 2.9 M samples a slice).
-- Params: $start, $end, $dirty_lo, $dirty_hi TIMESTAMP (capplan.store.node_usage_params): one slice.
-- Registered: _eviction_thresholds (node, node_id, memory_capacity_bytes, hard_threshold_bytes),
--             _eviction_specs (namespace, pod, memory_request_bytes, priority, evictable).
WITH needs AS (
    SELECT t.node_id, u.ts, t.hard_threshold_bytes - (t.memory_capacity_bytes - u.memory_bytes) AS need_bytes
    FROM node_usage_window($start, $end, $dirty_lo, $dirty_hi) AS u
    JOIN _eviction_thresholds AS t USING (node)
    WHERE u.memory_bytes IS NOT NULL AND t.hard_threshold_bytes - (t.memory_capacity_bytes - u.memory_bytes) > 0
),
pod_names AS (
    SELECT namespace, pod, dense_rank() OVER (ORDER BY namespace, pod) AS pod_id
    FROM (SELECT DISTINCT namespace, pod FROM series)
),
ids AS (
    SELECT s.series_id, t.node_id, p.pod_id
    FROM series AS s
    JOIN _eviction_thresholds AS t USING (node)
    JOIN pod_names AS p USING (namespace, pod)
    WHERE t.node_id IN (SELECT node_id FROM needs)
),
pods AS (
    SELECT i.node_id, u.ts, i.pod_id, CAST(sum(u.memory_kib) AS BIGINT) * 1024 AS working_set_bytes
    FROM usage_in($start, $end) AS u
    JOIN ids AS i USING (series_id)
    SEMI JOIN needs AS n ON n.node_id = i.node_id AND n.ts = u.ts
    WHERE u.memory_kib IS NOT NULL
    GROUP BY i.node_id, u.ts, i.pod_id
),
specs AS (
    SELECT p.node_id, p.ts, p.pod_id, p.working_set_bytes, n.need_bytes,
           coalesce(x.memory_request_bytes, 0) AS request_bytes, coalesce(x.priority, 0) AS priority,
           coalesce(x.evictable, true) AS evictable
    FROM pods AS p
    JOIN needs AS n USING (node_id, ts)
    JOIN pod_names AS pn USING (pod_id)
    LEFT JOIN _eviction_specs AS x ON x.namespace = pn.namespace AND x.pod = pn.pod
),
ranked AS (
    SELECT node_id, pod_id, need_bytes, evictable,
           CASE WHEN evictable THEN working_set_bytes ELSE 0 END AS freed_bytes,
           sum(CASE WHEN evictable THEN working_set_bytes ELSE 0 END) OVER (
               PARTITION BY node_id, ts
               ORDER BY working_set_bytes > request_bytes DESC, priority, working_set_bytes - request_bytes DESC, pod_id
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cumulative_freed_bytes
    FROM specs
),
counted AS (
    SELECT node_id, pod_id,
           CAST(count_if(evictable AND cumulative_freed_bytes - freed_bytes < need_bytes) AS BIGINT) AS evicted_moments
    FROM ranked
    GROUP BY node_id, pod_id
)
SELECT t.node, p.namespace, p.pod, c.evicted_moments
FROM counted AS c
JOIN _eviction_thresholds AS t USING (node_id)
JOIN pod_names AS p USING (pod_id)
