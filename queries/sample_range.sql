-- The oldest and newest stored usage sample at or before $end (NULL: no bound), raw and rolled up
-- alike: what `SELECT min(ts), max(ts) FROM usage_samples` answers, read from each table's own
-- TIMESTAMP_S column (the cast is monotonic, so the min of the casts is the cast of the min). Without
-- a bound DuckDB answers from the column statistics; through the view it scanned every row
-- (bench L: 0.09 s of CPU, asked about 15 times by a report). In a store.scope the tables are the
-- cluster's views.
-- Params: $end TIMESTAMP or NULL.
SELECT min(lo) AS oldest, max(hi) AS newest
FROM (
    SELECT CAST(min(ts) AS TIMESTAMP) AS lo, CAST(max(ts) AS TIMESTAMP) AS hi
    FROM usage_raw WHERE $end IS NULL OR CAST(ts AS TIMESTAMP) <= $end
    UNION ALL
    SELECT CAST(min(hour) AS TIMESTAMP), CAST(max(hour) AS TIMESTAMP)
    FROM usage_hourly WHERE $end IS NULL OR CAST(hour AS TIMESTAMP) <= $end
    UNION ALL
    SELECT CAST(min(day) AS TIMESTAMP), CAST(max(day) AS TIMESTAMP)
    FROM usage_daily WHERE $end IS NULL OR CAST(day AS TIMESTAMP) <= $end
)
