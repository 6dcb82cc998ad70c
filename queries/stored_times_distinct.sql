-- Whether no series has two stored samples of one time in [$lo, $hi] (the samples usage_stored_in
-- reads): usage_raw holds one row per series and time (capplan.store.insert_staged_usage),
-- usage_hourly one per series and hour and usage_daily one per series and day (rollup._merge_into),
-- so two rows of one series and time can only come from two tables whose times overlap (raw
-- samples written into hours already rolled up, until the next compact merges them). True when
-- the tables' times in the window do not overlap (days before hours before raw samples).
-- Params: $lo, $hi TIMESTAMP whole seconds (rollup_span.stored_bounds).
WITH raw AS (
    SELECT min(ts) AS first_t FROM usage_raw WHERE ts BETWEEN CAST($lo AS TIMESTAMP_S) AND CAST($hi AS TIMESTAMP_S)
),
hourly AS (
    SELECT min(hour) AS first_t, max(hour) AS last_t FROM usage_hourly
    WHERE hour BETWEEN CAST($lo AS TIMESTAMP_S) AND CAST($hi AS TIMESTAMP_S)
),
daily AS (
    SELECT max(day) AS last_t FROM usage_daily WHERE day BETWEEN CAST($lo AS TIMESTAMP_S) AND CAST($hi AS TIMESTAMP_S)
)
SELECT coalesce(daily.last_t < coalesce(hourly.first_t, raw.first_t), true)
       AND coalesce(hourly.last_t < raw.first_t, true) AS distinct_times
FROM raw, hourly, daily
