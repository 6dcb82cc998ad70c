-- DuckDB's twin of both recommend_series_stats and recommend_series_percentile (the same columns
-- and values once capplan.analysis.recommend has turned cpu_levels into cpu_q, or cpu_pq_cores;
-- other engines run those files over the lake's usage_samples view; the two differ only in the
-- levels asked, so one file: recommend.REAL_PERCENTILES_STORED): per container series, over
-- [$start, $end], sample count and span, the integer quantiles of the CPU millicores at $levels
-- (real_quantiles.levels of $cpu_q, p90, p95, p99 for auto; of $cpu_q alone for simple), from which
-- capplan.analysis.real_quantiles computes the view's quantile_cont of REAL cores exactly (the
-- float comparisons of a REAL sort cost ~25% more CPU at L), peak CPU and peak memory. Reads the
-- stored integer units (raw samples, then the rollups: the table macro usage_stored_in,
-- queries/node_usage_macros.sql) instead of the view:
-- the view's REAL cores and BIGINT bytes are made per sample and its time filter reads every row.
-- Values stay the view's: CPU is CAST(mcores / 1000 AS REAL), which is the view's
-- CAST(mcores * 0.001 AS REAL) (equal for every mcores value; tests/analysis/
-- test_recommend_stored.py), and the peaks are converted after the max (the conversions keep the
-- order). cpu_values: the non-NULL CPU values the quantiles are of.
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
