-- Usage samples per UTC day of [$start, $end] (raw and rolled up alike): how analyses that must
-- hold a day's per-sample-time sums cut a long window into slices of whole days. Through usage_in
-- (queries/node_usage_macros.sql), which reads only the blocks of the window.
-- Params: $start TIMESTAMP, $end TIMESTAMP.
SELECT CAST(ts AS DATE) AS day, count(*) AS samples
FROM usage_in($start, $end)
GROUP BY day
ORDER BY day
