-- The first and last time anything the daily scope figures derive from is stored: a sample (raw or
-- rolled up) or a figure (the day of one whose samples a prune just removed). Min and max of the
-- stored columns, which DuckDB answers from its statistics.
SELECT least((SELECT CAST(min(ts) AS TIMESTAMP) FROM usage_raw), (SELECT CAST(min(hour) AS TIMESTAMP) FROM usage_hourly),
             (SELECT CAST(min(day) AS TIMESTAMP) FROM usage_daily), (SELECT CAST(min(day) AS TIMESTAMP) FROM scope_usage_daily)),
       greatest((SELECT CAST(max(ts) AS TIMESTAMP) FROM usage_raw), (SELECT CAST(max(hour) AS TIMESTAMP) FROM usage_hourly),
                (SELECT CAST(max(day) AS TIMESTAMP) FROM usage_daily), (SELECT max(last_ts) FROM scope_usage_daily))
