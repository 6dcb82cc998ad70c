-- The VPA recommender's decaying CPU histogram per aggregate, as bucket weights
-- (kubernetes/autoscaler vertical-pod-autoscaler/pkg/recommender/util/histogram_options.go
-- FindBucket; decaying_histogram.go; model/aggregate_container_state.go addCPUSample):
--   bucket = 0 below $first_bucket, else floor(log(v*(ratio-1)/first + 1) / log(ratio)),
--            capped at $num_buckets - 1;
--   weight = max(cpu request, 0.1) * 2^((ts - $end) / half-life).
-- Needs the registered relation _rec_weights(series_id, group_id, cpu_weight).
-- Params: $start, $end TIMESTAMP; $first_bucket, $ratio, $half_life_s DOUBLE; $num_buckets INTEGER.
SELECT w.group_id,
       CASE WHEN u.cpu_cores < $first_bucket THEN 0
            ELSE least(CAST(trunc(ln(u.cpu_cores * ($ratio - 1) / $first_bucket + 1) / ln($ratio)) AS INTEGER),
                       $num_buckets - 1)
       END AS bucket,
       sum(w.cpu_weight * pow(2.0, epoch(u.ts - $end) / $half_life_s)) AS weight
FROM usage_samples AS u
JOIN _rec_weights AS w USING (series_id)
WHERE u.ts BETWEEN $start AND $end AND u.cpu_cores >= 0
GROUP BY w.group_id, bucket
ORDER BY w.group_id, bucket
