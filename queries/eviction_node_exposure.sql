-- Per node with a memory sample in [$start, $end]: its latest moment, and with a threshold
-- (_eviction_thresholds) its worst moment (largest summed working set; the latest of equal ones),
-- the moments counted, those with memory.available (capacity - working set) under the hard
-- threshold and under the soft one, and the UTC days holding a moment under the hard one.
-- What capplan.analysis.eviction.exposure.node_exposure computes from the whole series.
-- One aggregation over the node series: as two (latest, exposure) DuckDB materialised the
-- series (11 M rows, +480 MiB at the bench's L). Nodes without a threshold get their latest
-- moment only (the rest is NULL).
-- Params: $start, $end, $dirty_lo, $dirty_hi TIMESTAMP (capplan.store.node_usage_params).
-- Registered: _eviction_thresholds (node, memory_capacity_bytes, hard_threshold_bytes, soft_threshold_bytes).
WITH per_node AS (
    SELECT m.node,
           max(m.ts) AS latest_moment,
           bool_or(t.node IS NOT NULL) AS has_threshold,
           arg_max(m.ts, (m.memory_bytes, m.ts)) FILTER (WHERE t.node IS NOT NULL) AS worst_moment,
           max(m.memory_bytes) FILTER (WHERE t.node IS NOT NULL) AS working_set_at_worst_bytes,
           count(*) FILTER (WHERE t.node IS NOT NULL) AS memory_moments,
           CAST(count_if(t.memory_capacity_bytes - m.memory_bytes < t.hard_threshold_bytes) AS BIGINT) AS under_hard,
           CAST(count_if(t.memory_capacity_bytes - m.memory_bytes < t.soft_threshold_bytes) AS BIGINT) AS under_soft,
           list(DISTINCT date_trunc('day', m.ts) ORDER BY date_trunc('day', m.ts))
               FILTER (WHERE t.memory_capacity_bytes - m.memory_bytes < t.hard_threshold_bytes) AS pressure_days
    FROM node_usage_window($start, $end, $dirty_lo, $dirty_hi) AS m
    LEFT JOIN _eviction_thresholds AS t USING (node)
    WHERE m.memory_bytes IS NOT NULL
    GROUP BY m.node
)
SELECT node, latest_moment,
       worst_moment,
       working_set_at_worst_bytes,
       CASE WHEN has_threshold THEN memory_moments END AS memory_moments,
       CASE WHEN has_threshold THEN under_hard END AS under_hard,
       CASE WHEN has_threshold THEN under_soft END AS under_soft,
       pressure_days
FROM per_node
ORDER BY node
