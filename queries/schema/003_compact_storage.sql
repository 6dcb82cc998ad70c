-- capplan store, schema version 3: compact raw samples, and rollups for a year of history (issue 14).
--
-- Raw samples move to usage_raw in integer units, in time order (capplan.store.STORED_ORDER):
--   ts          TIMESTAMP_S: whole epoch seconds (collection steps are whole seconds; two samples
--               of one series within the same second are one sample)
--   cpu_mcores  millicores, rounded to the nearest: at most 0.0005 cores off
--   memory_kib  KiB, rounded to the nearest: at most 512 bytes off
-- Measured on the bench's data loaded a day at a time: M (10 days) 14.35 bytes/sample as schema 1
-- stored it (TIMESTAMP, REAL, BIGINT), 7.27 in these units; L (3 days) 4.68. REAL cores or
-- BIGINT bytes each cost 2.3 bytes more (the noisy low bits do not compress). The view usage_samples gives every reader
-- the old columns (TIMESTAMP ts, REAL cpu_cores, BIGINT memory_bytes), so queries are unchanged.
--
-- Rollups (capplan.rollup): samples older than the raw retention are summarised per series and
-- UTC hour (usage_hourly), hours older than 400 days per UTC day (usage_daily). Each row keeps the
-- sample count, max, mean and p95 of CPU and memory, and a mergeable CPU histogram in the buckets of
-- the VPA recommender (first bucket 0.01 cores, ratio 1.05: kubernetes/autoscaler
-- vertical-pod-autoscaler/pkg/recommender/model/aggregations_config.go): cpu_buckets[i] holds
-- cpu_counts[i] samples; histograms of several rows merge by adding counts per bucket.

CREATE TABLE usage_raw (
    series_id INTEGER NOT NULL,
    ts TIMESTAMP_S NOT NULL,
    cpu_mcores INTEGER,
    memory_kib INTEGER
);

INSERT INTO usage_raw
SELECT series_id, CAST(ts AS TIMESTAMP_S), CAST(round(cpu_cores * 1000) AS INTEGER),
       CAST(round(memory_bytes / 1024) AS INTEGER)
FROM usage_samples
ORDER BY ts, series_id;

DROP TABLE usage_samples;


CREATE TABLE usage_hourly (
    series_id INTEGER NOT NULL,
    hour TIMESTAMP_S NOT NULL,          -- start of the UTC hour
    samples INTEGER NOT NULL,
    cpu_mcores_max INTEGER,
    cpu_mcores_mean INTEGER,           
    cpu_mcores_p95 INTEGER,             -- quantile_disc of the hour's samples
    memory_kib_max INTEGER,
    memory_kib_mean INTEGER,           
    memory_kib_p95 INTEGER,
    cpu_buckets UTINYINT[],             -- VPA CPU histogram: bucket indexes, ascending
    cpu_counts UINTEGER[]               -- samples in each of those buckets
);

CREATE TABLE usage_daily (
    series_id INTEGER NOT NULL,
    day TIMESTAMP_S NOT NULL,           -- start of the UTC day
    samples INTEGER NOT NULL,
    cpu_mcores_max INTEGER,
    cpu_mcores_mean INTEGER,           
    cpu_mcores_p95 INTEGER,             -- the largest hourly p95 of the day (an upper bound)
    memory_kib_max INTEGER,
    memory_kib_mean INTEGER,           
    memory_kib_p95 INTEGER,             -- the largest hourly p95 of the day (an upper bound)
    cpu_buckets UTINYINT[],
    cpu_counts UINTEGER[]
);

-- Every reader sees the old columns. Past the raw samples, each rolled-up hour (day) is one
-- sample stamped at its start, holding the hour's CPU p95 and memory max: an analysis whose window
-- reaches past the raw retention reads the rollups through the same queries, erring on the side of
-- more usage (a p95 of hourly p95s is at least the p95 of the samples; a max stays the max), and
-- the CLI says so (capplan.rollup.rollup_note).
CREATE VIEW usage_samples AS
SELECT series_id,
       CAST(ts AS TIMESTAMP) AS ts,
       CAST(cpu_mcores * 0.001 AS REAL) AS cpu_cores,
       CAST(memory_kib AS BIGINT) * 1024 AS memory_bytes
FROM usage_raw
UNION ALL
SELECT series_id, CAST(hour AS TIMESTAMP), CAST(cpu_mcores_p95 * 0.001 AS REAL), CAST(memory_kib_max AS BIGINT) * 1024
FROM usage_hourly
UNION ALL
SELECT series_id, CAST(day AS TIMESTAMP), CAST(cpu_mcores_p95 * 0.001 AS REAL), CAST(memory_kib_max AS BIGINT) * 1024
FROM usage_daily;
