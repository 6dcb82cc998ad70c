-- DuckDB's recommend_cpu_histogram (the same columns and values; other engines run that file over
-- the lake): the VPA recommender's decaying CPU histogram per container series and bucket, with
-- each series' sample count and span, from the stored integer units as
-- queries/recommend_series_stats_stored.sql explains. The bucket is the same formula on the same
-- REAL value, evaluated once per millicore value up to $cap_mcores into a list each sample up to
-- there looks its bucket up in (the formula per sample took 40% of this query at L; DuckDB copies the
-- list per chunk of rows, so the caller keeps it short: the window's largest value, at most
-- LUT_MAX_MCORES; larger values take the formula) (kubernetes/autoscaler vertical-pod-autoscaler/pkg/
-- recommender/util/histogram_options.go FindBucket; util/decaying_histogram.go):
--   bucket = 0 below $first_bucket, else floor(log(v*(ratio-1)/first + 1) / log(ratio)),
--            capped at $num_buckets - 1;
--   decayed = sum of 2^((ts - $end) / half-life), written exp((epoch(ts) - epoch($end)) * ln 2 / half-life);
--            the caller multiplies by the series' sample weight max(cpu request, 0.1).
-- Params: $lo, $hi, $end TIMESTAMP; $first_bucket, $ratio, $half_life_s DOUBLE; $num_buckets INTEGER;
-- $cap_mcores INTEGER: the longest value the list holds.
-- $lo, $hi: $start and $end rounded inward to whole seconds (the stored times are whole seconds, so
-- the rows are the same; comparing TIMESTAMP_S with TIMESTAMP_S lets the zone maps skip row groups).
WITH buckets AS (  -- bucket of every millicore value 0..$cap_mcores (list index = value + 1)
    SELECT list_transform(range(0, $cap_mcores + 1), v ->
               CAST(CASE WHEN CAST(v / 1000 AS REAL) < $first_bucket THEN 0
                    ELSE least(CAST(trunc(ln(CAST(v / 1000 AS REAL) * ($ratio - 1) / $first_bucket + 1) / ln($ratio)) AS INTEGER),
                               $num_buckets - 1)
               END AS SMALLINT)) AS of_value
)
SELECT series_id,
       CASE WHEN cpu_mcores <= $cap_mcores THEN CAST(buckets.of_value[cpu_mcores + 1] AS INTEGER)
            WHEN CAST(cpu_mcores / 1000 AS REAL) < $first_bucket THEN 0
            ELSE least(CAST(trunc(ln(CAST(cpu_mcores / 1000 AS REAL) * ($ratio - 1) / $first_bucket + 1) / ln($ratio)) AS INTEGER),
                       $num_buckets - 1)
       END AS bucket,
       count(*) AS samples,
       CAST(min(ts) AS TIMESTAMP) AS first_ts,
       CAST(max(ts) AS TIMESTAMP) AS last_ts,
       CAST(max(cpu_mcores) / 1000 AS REAL) AS cpu_max_cores,
       sum(exp((epoch(ts) - epoch($end)) * (ln(2.0) / $half_life_s))) AS decayed
FROM usage_stored_in($lo, $hi) AS samples, buckets
WHERE cpu_mcores >= 0
GROUP BY series_id, bucket
