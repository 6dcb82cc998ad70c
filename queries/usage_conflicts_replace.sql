-- `--replace`: stored samples take the staged (_staged_usage) values where they differ (both in the
-- stored units: millicores and KiB, schema 003).
-- Params: $lo, $hi TIMESTAMP: the stored samples' range overlapping the staged ones.
UPDATE usage_raw AS u
SET cpu_mcores = s.cpu_mcores, memory_kib = s.memory_kib
FROM _staged_usage AS s
WHERE u.series_id = s.series_id AND CAST(u.ts AS TIMESTAMP) = s.ts AND u.ts BETWEEN $lo AND $hi
  AND (s.cpu_mcores IS DISTINCT FROM u.cpu_mcores OR s.memory_kib IS DISTINCT FROM u.memory_kib)
