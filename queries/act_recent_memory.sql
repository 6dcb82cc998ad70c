-- The largest working set of each container series in [$start, $end] (the recent past that a
-- memory-limit decrease must stay above). Params: $start TIMESTAMP, $end TIMESTAMP.
SELECT series_id, max(memory_bytes) AS memory_recent_max_bytes, max(ts) AS last_ts
FROM usage_samples
WHERE ts BETWEEN $start AND $end
GROUP BY series_id
