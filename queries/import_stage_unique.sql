-- `capplan import FILE`: the same sample twice in the file is one sample: keep the first of each
-- run of equal (series, time) in the staged order (their values are equal: import_repeats.sql).
CREATE TEMP TABLE _staged_unique AS
SELECT series_id, ts, cpu_mcores, memory_kib, values_hash
FROM (
    SELECT *, series_id = lag(series_id) OVER () AND ts = lag(ts) OVER () AS same
    FROM _staged_usage
)
WHERE same IS NOT TRUE;
DROP TABLE _staged_usage;
ALTER TABLE _staged_unique RENAME TO _staged_usage;
