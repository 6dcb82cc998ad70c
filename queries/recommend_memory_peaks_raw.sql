-- queries/recommend_memory_peaks_stored.sql for a slice without rolled-up samples: usage_raw alone
-- (the same rows, so the same answer; DuckDB runs it faster than the union, see
-- capplan.analysis.rollup_span). Needs _rec_first as that query does.
-- Params: $lo, $hi TIMESTAMP (whole seconds); $interval_s DOUBLE.
SELECT u.series_id,
       CAST(floor((epoch(u.ts) - f.first_s) / $interval_s) AS INTEGER) AS interval_index,
       CAST(max(u.memory_kib) AS BIGINT) * 1024 AS peak_bytes
FROM usage_raw AS u
JOIN _rec_first AS f USING (series_id)
WHERE u.ts BETWEEN CAST($lo AS TIMESTAMP_S) AND CAST($hi AS TIMESTAMP_S)
GROUP BY u.series_id, interval_index
