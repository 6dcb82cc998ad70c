-- The number of stored samples (raw, then rollups) in [$start, $end], their largest CPU value and
-- the range of their series ids: how many parts a per-series percentile query runs in and the series
-- each takes, and how long a list of CPU buckets the VPA histogram looks up
-- (capplan.analysis.recommend). Params: $lo, $hi TIMESTAMP.
-- $lo, $hi: $start and $end rounded inward to whole seconds (the stored times are whole seconds, so
-- the rows are the same; comparing TIMESTAMP_S with TIMESTAMP_S lets the zone maps skip row groups).
-- Each table is aggregated alone and the three rows combined (counts add, maxima and minima of the
-- parts): a UNION ALL of the tables under one aggregate reads every row of the window (0.15-0.5 s at
-- the bench's L), where count/min/max of one table's columns over a range DuckDB answers mostly from
-- its row-group statistics (0.005 s). So not the table macro usage_stored_in, which is that union.
WITH parts AS (
    SELECT count(*) AS samples, max(cpu_mcores) AS cpu_mcores_max,
           min(series_id) AS first_series_id, max(series_id) AS last_series_id
    FROM usage_raw
    WHERE ts BETWEEN CAST($lo AS TIMESTAMP_S) AND CAST($hi AS TIMESTAMP_S)
    UNION ALL
    SELECT count(*), max(cpu_mcores_p95), min(series_id), max(series_id) FROM usage_hourly
    WHERE hour BETWEEN CAST($lo AS TIMESTAMP_S) AND CAST($hi AS TIMESTAMP_S)
    UNION ALL
    SELECT count(*), max(cpu_mcores_p95), min(series_id), max(series_id) FROM usage_daily
    WHERE day BETWEEN CAST($lo AS TIMESTAMP_S) AND CAST($hi AS TIMESTAMP_S)
)
SELECT CAST(sum(samples) AS BIGINT) AS samples, max(cpu_mcores_max) AS cpu_mcores_max,
       min(first_series_id) AS first_series_id, max(last_series_id) AS last_series_id
FROM parts
