-- Staged samples (_staged_usage) already stored for the same series and time with another value.
-- Params: $lo, $hi TIMESTAMP: the stored samples' range overlapping the staged ones (prunes the scan).
SELECT count(*)
FROM _staged_usage AS s
JOIN (SELECT series_id, ts, cpu_cores, memory_bytes FROM usage_samples WHERE ts BETWEEN $lo AND $hi) AS u
    USING (series_id, ts)
WHERE s.cpu_cores IS DISTINCT FROM u.cpu_cores OR s.memory_bytes IS DISTINCT FROM u.memory_bytes
