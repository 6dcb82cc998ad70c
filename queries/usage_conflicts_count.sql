-- Staged samples (_staged_usage) already stored for the same series and time with another value
-- (compared in the stored units: millicores and KiB, schema 003).
-- Params: $lo, $hi TIMESTAMP: the stored samples' range overlapping the staged ones (prunes the scan).
SELECT count(*)
FROM _staged_usage AS s
JOIN (SELECT series_id, CAST(ts AS TIMESTAMP) AS ts, cpu_mcores, memory_kib FROM usage_raw
      WHERE ts BETWEEN $lo AND $hi) AS u
    USING (series_id, ts)
WHERE s.cpu_mcores IS DISTINCT FROM u.cpu_mcores OR s.memory_kib IS DISTINCT FROM u.memory_kib
