-- Per node and UTC day over [$start, $end]: the node's timestamps, the maximum of its summed
-- working set, and the timestamps in breach (working set above _memory_thresholds.threshold_bytes,
-- allocatable minus the hard eviction threshold; nodes without a threshold are left out).
-- What capplan.analysis.pressure.daily_memory computes from the whole series, one row a day.
-- Params: $start, $end, $dirty_lo, $dirty_hi TIMESTAMP (capplan.store.node_usage_params).
-- Registered: _memory_thresholds (node VARCHAR, threshold_bytes DOUBLE).
SELECT u.node, date_trunc('day', u.ts) AS day,
       count(*) AS points,
       CAST(max(u.memory_bytes) AS DOUBLE) AS memory_max_bytes,
       count(*) FILTER (WHERE u.memory_bytes > t.threshold_bytes) AS breach_points
FROM node_usage_window($start, $end, $dirty_lo, $dirty_hi) AS u
JOIN _memory_thresholds AS t USING (node)
GROUP BY u.node, day
ORDER BY u.node, day
