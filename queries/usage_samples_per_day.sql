-- Usage samples per UTC day of [$start, $end] (raw and rolled up alike): how analyses that must
-- hold a day's per-sample-time sums cut a long window into slices of whole days.
-- Params: $start TIMESTAMP, $end TIMESTAMP.
SELECT CAST(ts AS DATE) AS day, count(*) AS samples
FROM usage_samples
WHERE ts BETWEEN $start AND $end
GROUP BY day
ORDER BY day
