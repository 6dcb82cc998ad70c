-- DuckDB's recommend_series_stats_light (the same columns and values; other engines run that file
-- over the lake): per container series, over [$start, $end], sample count and span, peak CPU and
-- peak memory (the vpa and max-target strategies), from the stored integer units as
-- queries/recommend_series_stats_stored.sql explains.
-- Params: $lo, $hi TIMESTAMP.
-- $lo, $hi: $start and $end rounded inward to whole seconds (the stored times are whole seconds, so
-- the rows are the same; comparing TIMESTAMP_S with TIMESTAMP_S lets the zone maps skip row groups).
SELECT series_id,
       count(*) AS samples,
       CAST(min(ts) AS TIMESTAMP) AS first_ts,
       CAST(max(ts) AS TIMESTAMP) AS last_ts,
       CAST(max(cpu_mcores) / 1000 AS REAL) AS cpu_max_cores,
       CAST(max(memory_kib) AS BIGINT) * 1024 AS memory_max_bytes
FROM usage_stored_in($lo, $hi) AS samples
GROUP BY series_id
