-- The VPA recommender's decaying CPU histogram, per container series and bucket, together with
-- each series' sample count and span (one scan serves both)
-- (kubernetes/autoscaler vertical-pod-autoscaler/pkg/recommender/util/histogram_options.go
-- FindBucket; util/decaying_histogram.go):
--   bucket = 0 below $first_bucket, else floor(log(v*(ratio-1)/first + 1) / log(ratio)),
--            capped at $num_buckets - 1;
--   decayed = sum of 2^((ts - $end) / half-life), written exp((epoch(ts) - epoch($end)) * ln 2 / half-life)
--            (cheaper); the caller multiplies by the series' sample
--            weight max(cpu request, 0.1) (model/aggregate_container_state.go addCPUSample).
-- Params: $start, $end TIMESTAMP; $first_bucket, $ratio, $half_life_s DOUBLE; $num_buckets INTEGER.
SELECT series_id,
       CASE WHEN cpu_cores < $first_bucket THEN 0
            ELSE least(CAST(trunc(ln(cpu_cores * ($ratio - 1) / $first_bucket + 1) / ln($ratio)) AS INTEGER),
                       $num_buckets - 1)
       END AS bucket,
       count(*) AS samples,
       min(ts) AS first_ts,
       max(ts) AS last_ts,
       max(cpu_cores) AS cpu_max_cores,
       sum(exp((epoch(ts) - epoch($end)) * (ln(2.0) / $half_life_s))) AS decayed
FROM usage_samples
WHERE ts BETWEEN $start AND $end AND cpu_cores >= 0
GROUP BY series_id, bucket
