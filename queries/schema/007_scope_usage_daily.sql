-- capplan store, schema version 7: the daily usage figures of the cluster and each namespace,
-- materialised (issue 14).
--
-- forecast (and the report's forecast section and charts) fits the daily 95th percentile of each
-- scope's summed usage per sample time. Summing 86.5 M samples per (namespace, sample time) on every
-- run cost about 0.3 s of CPU per day of the bench's L cluster (bench/RESULTS.md), so the figures of
-- whole UTC days are kept here, a row per cluster, day and scope, and read instead. Node pools are
-- not here: which node is in which pool is the caller's choice (--pool-label) and the labels at the
-- window's end; their sums come from node_usage (schema 006).
--   scope_usage_daily   defined as queries/scope_usage_macros.sql's scope_usage_compute: every
--                       stored sample the usage_samples view shows (usage_raw, and the rollups) of
--                       the cluster's series on that UTC day, summed per sample time over the scope
--                       (the cluster: every series; a namespace: its series), exact in the stored
--                       units, then the day's sample times, first and last, and the 95th percentile
--                       (quantile_cont) of the sums in cores and bytes. Scoped like the other cluster
--                       tables (store.scope).
--   scope_usage_pending time ranges whose days may be stale: every writer that records
--                       node_usage_pending records the same range here, in the same transaction
--                       (capplan.store.mark_node_usage_pending). capplan.store.refresh_node_usage
--                       recomputes the days they touch, a day per transaction; until then readers
--                       compute those days from the samples (capplan.analysis.forecast.series
--                       load_usage_daily), so a forecast never reads a stale row.
CREATE TABLE scope_usage_daily (
    cluster VARCHAR NOT NULL DEFAULT 'default',
    day DATE NOT NULL,                -- UTC
    scope_kind VARCHAR NOT NULL,      -- 'cluster' or 'namespace'
    scope_name VARCHAR NOT NULL,      -- 'cluster', or the namespace
    sample_times BIGINT NOT NULL,     -- distinct sample times of the scope's series that day
    first_ts TIMESTAMP NOT NULL,      -- the first and last of them: a window holding both holds the whole day
    last_ts TIMESTAMP NOT NULL,
    cpu_cores_p95 DOUBLE,             -- NULL when no sample of the day has the value
    memory_bytes_p95 DOUBLE
);

CREATE TABLE scope_usage_pending (
    lo TIMESTAMP NOT NULL,            -- inclusive, whole seconds
    hi TIMESTAMP NOT NULL
);

-- What was stored before: computed by the first writable open (capplan.store.open_db).
INSERT INTO scope_usage_pending
SELECT lo, hi FROM (
    SELECT least((SELECT min(ts) FROM usage_raw), (SELECT min(hour) FROM usage_hourly), (SELECT min(day) FROM usage_daily)) AS lo,
           greatest((SELECT max(ts) FROM usage_raw), (SELECT max(hour) FROM usage_hourly), (SELECT max(day) FROM usage_daily)) AS hi
) WHERE lo IS NOT NULL;
