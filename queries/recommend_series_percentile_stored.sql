-- DuckDB's recommend_series_percentile (the same columns and values once
-- capplan.analysis.recommend has turned cpu_levels into cpu_pq_cores; other engines run that file
-- over the lake): per container series, over [$start, $end], sample count and span, the integer
-- quantiles of the CPU millicores at $levels (real_quantiles.levels of $cpu_q: the view's REAL
-- percentile follows exactly), peak CPU and peak memory (the simple strategy), from the stored
-- integer units as queries/recommend_series_stats_stored.sql explains.
-- Params: $lo, $hi TIMESTAMP; $levels DOUBLE[]; $first_id, $last_id INTEGER: only series with ids in
-- [$first_id, $last_id] (the caller runs such parts one after another to bound memory; a range, not
-- a remainder, so the zone maps of series_id skip the row groups of the other parts' series).
-- $lo, $hi: $start and $end rounded inward to whole seconds (the stored times are whole seconds, so
-- the rows are the same; comparing TIMESTAMP_S with TIMESTAMP_S lets the zone maps skip row groups).
SELECT series_id,
       count(*) AS samples,
       CAST(min(ts) AS TIMESTAMP) AS first_ts,
       CAST(max(ts) AS TIMESTAMP) AS last_ts,
       count(cpu_mcores) AS cpu_values,
       quantile_cont(cpu_mcores, $levels) AS cpu_levels,
       CAST(max(cpu_mcores) / 1000 AS REAL) AS cpu_max_cores,
       CAST(max(memory_kib) AS BIGINT) * 1024 AS memory_max_bytes
FROM usage_stored_in($lo, $hi) AS samples
WHERE series_id BETWEEN $first_id AND $last_id
GROUP BY series_id
