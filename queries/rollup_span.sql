-- The first and last time of the rolled-up samples in [$lo, $hi] (usage_hourly's hours and
-- usage_daily's days, as stored: TIMESTAMP_S), NULL when there are none: an analysis that cuts the
-- window into slices reads a slice outside this span from usage_raw alone (usage_raw_in instead of
-- usage_stored_in), which DuckDB runs faster than the UNION ALL of the three tables even when the
-- rollups' branches are empty (capplan.analysis.rollup_span).
-- Params: $lo, $hi TIMESTAMP.
SELECT CAST(min(first_t) AS TIMESTAMP) AS first_ts, CAST(max(last_t) AS TIMESTAMP) AS last_ts
FROM (
    SELECT min(hour) AS first_t, max(hour) AS last_t FROM usage_hourly
    WHERE hour BETWEEN CAST(CAST($lo AS TIMESTAMP) - INTERVAL 1 SECOND AS TIMESTAMP_S)
                   AND CAST(CAST($hi AS TIMESTAMP) + INTERVAL 1 SECOND AS TIMESTAMP_S)
    UNION ALL
    SELECT min(day), max(day) FROM usage_daily
    WHERE day BETWEEN CAST(CAST($lo AS TIMESTAMP) - INTERVAL 1 SECOND AS TIMESTAMP_S)
                  AND CAST(CAST($hi AS TIMESTAMP) + INTERVAL 1 SECOND AS TIMESTAMP_S)
)
