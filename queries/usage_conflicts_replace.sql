-- `--replace`: stored samples take the staged (_staged_usage) values where they differ.
-- Params: $lo, $hi TIMESTAMP: the stored samples' range overlapping the staged ones.
UPDATE usage_samples AS u
SET cpu_cores = s.cpu_cores, memory_bytes = s.memory_bytes
FROM _staged_usage AS s
WHERE u.series_id = s.series_id AND u.ts = s.ts AND u.ts BETWEEN $lo AND $hi
  AND (s.cpu_cores IS DISTINCT FROM u.cpu_cores OR s.memory_bytes IS DISTINCT FROM u.memory_bytes)
