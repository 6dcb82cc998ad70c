-- capplan store, schema version 8: each namespace's summed usage per sample time, materialised
-- (issue 14).
--
-- namespaces (and the report's namespaces section) take the 95th percentile and the maximum of each
-- namespace's summed usage per sample time over the window. Summing 86.5 M samples per (namespace,
-- sample time) on every run cost about 6.5 s of CPU at the bench's L cluster (bench/RESULTS.md), so
-- the sums are kept here, a row per cluster, namespace and sample time, and read instead (about
-- 7 M rows for L's month).
--   namespace_usage     defined as queries/scope_usage_macros.sql's namespace_usage_compute: every
--                       stored sample the usage_samples view shows (usage_raw, and the rollups) of the
--                       cluster's series of that namespace at that time, summed: CPU as the view's
--                       REAL cores added in a DOUBLE (exact whatever the order, as the namespaces
--                       always summed them), memory in KiB exactly; NULL when no sample has the
--                       value. Kept with scope_usage_daily (schema 007), which is now computed from
--                       these rows: capplan.store.refresh_scope_usage recomputes both for every UTC
--                       day a pending range (scope_usage_pending) touches, in one transaction a day;
--                       until then readers sum the pending days from the samples
--                       (capplan.analysis.namespaces.load_namespace_usage). Scoped like the other
--                       cluster tables (store.scope).
CREATE TABLE namespace_usage (
    cluster VARCHAR NOT NULL DEFAULT 'default',
    namespace VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,
    cpu_cores DOUBLE,                 -- sum of the containers' cores (the view's REAL) at ts
    memory_kib BIGINT                 -- sum of the containers' working set (KiB) at ts
);

-- What was stored before: every day is recomputed by the first writable open (capplan.store.open_db),
-- the daily scope figures with it (the same figures, now from these sums).
INSERT INTO scope_usage_pending
SELECT lo, hi FROM (
    SELECT least((SELECT min(ts) FROM usage_raw), (SELECT min(hour) FROM usage_hourly), (SELECT min(day) FROM usage_daily)) AS lo,
           greatest((SELECT max(ts) FROM usage_raw), (SELECT max(hour) FROM usage_hourly), (SELECT max(day) FROM usage_daily)) AS hi
) WHERE lo IS NOT NULL;
