-- The number of stored samples (raw, then rollups) in [$start, $end], their largest CPU value and
-- the range of their series ids: how many parts a per-series percentile query runs in and the series
-- each takes, and how long a list of CPU buckets the VPA histogram looks up
-- (capplan.analysis.recommend). Params: $lo, $hi TIMESTAMP.
-- $lo, $hi: $start and $end rounded inward to whole seconds (the stored times are whole seconds, so
-- the rows are the same; comparing TIMESTAMP_S with TIMESTAMP_S lets the zone maps skip row groups).
WITH samples AS (  -- the usage_samples view's rows in [$start, $end], in the stored units
    SELECT series_id, ts, cpu_mcores, memory_kib FROM usage_raw
    WHERE ts BETWEEN CAST($lo AS TIMESTAMP_S) AND CAST($hi AS TIMESTAMP_S)
    UNION ALL
    SELECT series_id, hour, cpu_mcores_p95, memory_kib_max FROM usage_hourly
    WHERE hour BETWEEN CAST($lo AS TIMESTAMP_S) AND CAST($hi AS TIMESTAMP_S)
    UNION ALL
    SELECT series_id, day, cpu_mcores_p95, memory_kib_max FROM usage_daily
    WHERE day BETWEEN CAST($lo AS TIMESTAMP_S) AND CAST($hi AS TIMESTAMP_S)
)
SELECT count(*) AS samples, max(cpu_mcores) AS cpu_mcores_max,
       min(series_id) AS first_series_id, max(series_id) AS last_series_id
FROM samples
