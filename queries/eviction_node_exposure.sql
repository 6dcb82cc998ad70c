-- Per node with a memory sample in [$start, $end]: its latest moment, and with a threshold
-- (_eviction_thresholds) its worst moment (largest summed working set; the latest of equal ones),
-- the moments counted, those with memory.available (capacity - working set) under the hard
-- threshold and under the soft one, and the UTC days holding a moment under the hard one.
-- What capplan.analysis.eviction.exposure.node_exposure computes from the whole series.
-- Params: $start, $end, $dirty_lo, $dirty_hi TIMESTAMP (capplan.store.node_usage_params).
-- Registered: _eviction_thresholds (node, memory_capacity_bytes, hard_threshold_bytes, soft_threshold_bytes).
WITH moments AS (
    SELECT node, ts, memory_bytes AS working_set_bytes
    FROM node_usage_window($start, $end, $dirty_lo, $dirty_hi)
    WHERE memory_bytes IS NOT NULL
),
latest AS (
    SELECT node, max(ts) AS latest_moment FROM moments GROUP BY node
),
exposure AS (
    SELECT m.node,
           arg_max(m.ts, (m.working_set_bytes, m.ts)) AS worst_moment,
           max(m.working_set_bytes) AS working_set_at_worst_bytes,
           count(*) AS memory_moments,
           CAST(count_if(t.memory_capacity_bytes - m.working_set_bytes < t.hard_threshold_bytes) AS BIGINT) AS under_hard,
           CAST(count_if(t.memory_capacity_bytes - m.working_set_bytes < t.soft_threshold_bytes) AS BIGINT) AS under_soft,
           list(DISTINCT date_trunc('day', m.ts) ORDER BY date_trunc('day', m.ts))
               FILTER (WHERE t.memory_capacity_bytes - m.working_set_bytes < t.hard_threshold_bytes) AS pressure_days
    FROM moments AS m
    JOIN _eviction_thresholds AS t USING (node)
    GROUP BY m.node
)
SELECT l.node, l.latest_moment, e.worst_moment, e.working_set_at_worst_bytes, e.memory_moments, e.under_hard,
       e.under_soft, e.pressure_days
FROM latest AS l
LEFT JOIN exposure AS e USING (node)
ORDER BY l.node
