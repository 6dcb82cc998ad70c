-- Merge rollup rows (the registered or temporary relation _rollup_in, columns of usage_hourly with
-- the time column named t) per series and date_trunc($grain, t): counts add, max is the max, the
-- mean is weighted by samples, p95 becomes the largest p95 merged (an upper bound: a percentile of
-- the union is not known from the parts), and histograms add their counts bucket by bucket.
-- Used for hours -> days (capplan.rollup) and for late samples of an hour already rolled up.
-- Params: $grain VARCHAR ('hour' or 'day').
WITH rows AS (
    SELECT series_id, CAST(date_trunc($grain, CAST(t AS TIMESTAMP)) AS TIMESTAMP_S) AS t, samples,
           cpu_mcores_max, cpu_mcores_mean, cpu_mcores_p95, memory_kib_max, memory_kib_mean, memory_kib_p95,
           cpu_buckets, cpu_counts
    FROM _rollup_in
),
stats AS (
    SELECT series_id, t,
           sum(samples) AS samples,
           max(cpu_mcores_max) AS cpu_mcores_max,
           CAST(round(sum(cpu_mcores_mean * samples) / sum(samples)) AS INTEGER) AS cpu_mcores_mean,
           max(cpu_mcores_p95) AS cpu_mcores_p95,
           max(memory_kib_max) AS memory_kib_max,
           CAST(round(sum(CAST(memory_kib_mean AS BIGINT) * samples) / sum(samples)) AS INTEGER) AS memory_kib_mean,
           max(memory_kib_p95) AS memory_kib_p95
    FROM rows
    GROUP BY series_id, t
),
hist AS (
    SELECT series_id, t,
           list(bucket ORDER BY bucket) AS cpu_buckets,
           list(CAST(n AS UINTEGER) ORDER BY bucket) AS cpu_counts
    FROM (
        SELECT series_id, t, bucket, sum(n) AS n
        FROM (SELECT series_id, t, unnest(cpu_buckets) AS bucket, unnest(cpu_counts) AS n FROM rows)
        GROUP BY ALL
    )
    GROUP BY series_id, t
)
SELECT s.series_id, s.t, CAST(s.samples AS INTEGER) AS samples,
       s.cpu_mcores_max, s.cpu_mcores_mean, s.cpu_mcores_p95,
       s.memory_kib_max, s.memory_kib_mean, s.memory_kib_p95,
       h.cpu_buckets, h.cpu_counts
FROM stats AS s LEFT JOIN hist AS h USING (series_id, t)
ORDER BY s.series_id, s.t
