-- Raw samples older than $cutoff, summarised per container series and UTC hour (capplan.rollup):
-- count, max, mean and p95 (quantile_disc: a stored sample) of CPU millicores and memory KiB, and
-- the CPU histogram in the VPA recommender's buckets (bucket 0 below $first_bucket_mcores, else
-- floor(log(v * (ratio - 1) / first + 1) / log(ratio)), capped at $num_buckets - 1; the formula of
-- queries/recommend_cpu_histogram.sql in millicores).
-- Params: $cutoff TIMESTAMP; $first_bucket_mcores, $ratio DOUBLE; $num_buckets INTEGER.
WITH raw AS (
    SELECT series_id,
           CAST(date_trunc('hour', CAST(ts AS TIMESTAMP)) AS TIMESTAMP_S) AS hour,
           cpu_mcores,
           memory_kib,
           CASE WHEN cpu_mcores IS NULL THEN NULL
                WHEN cpu_mcores < $first_bucket_mcores THEN 0
                ELSE least(CAST(trunc(ln(cpu_mcores * ($ratio - 1) / $first_bucket_mcores + 1) / ln($ratio)) AS INTEGER),
                           $num_buckets - 1)
           END AS bucket
    FROM usage_raw
    WHERE ts < CAST(CAST($cutoff AS TIMESTAMP) AS TIMESTAMP_S)
),
stats AS (
    SELECT series_id, hour,
           count(*) AS samples,
           max(cpu_mcores) AS cpu_mcores_max,
           CAST(round(avg(cpu_mcores)) AS INTEGER) AS cpu_mcores_mean,
           quantile_disc(cpu_mcores, 0.95) AS cpu_mcores_p95,
           max(memory_kib) AS memory_kib_max,
           CAST(round(avg(memory_kib)) AS INTEGER) AS memory_kib_mean,
           quantile_disc(memory_kib, 0.95) AS memory_kib_p95
    FROM raw
    GROUP BY series_id, hour
),
hist AS (
    SELECT series_id, hour,
           list(CAST(bucket AS UTINYINT) ORDER BY bucket) AS cpu_buckets,
           list(CAST(n AS UINTEGER) ORDER BY bucket) AS cpu_counts
    FROM (SELECT series_id, hour, bucket, count(*) AS n FROM raw WHERE bucket IS NOT NULL GROUP BY ALL)
    GROUP BY series_id, hour
)
SELECT s.series_id, s.hour, s.samples,
       s.cpu_mcores_max, s.cpu_mcores_mean, s.cpu_mcores_p95,
       s.memory_kib_max, s.memory_kib_mean, s.memory_kib_p95,
       h.cpu_buckets, h.cpu_counts
FROM stats AS s LEFT JOIN hist AS h USING (series_id, hour)
ORDER BY s.series_id, s.hour
