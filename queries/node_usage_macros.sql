-- Table macros of the usage samples and the node-level usage series (schema 006), created on every
-- connection capplan opens (capplan.store._connect); names resolve when a query calls them.
--
-- usage_in(lo, hi): the samples the usage_samples view shows in [lo, hi] (raw samples, then
-- rolled-up hours and days stamped at their start with their CPU p95 and memory max), in the stored
-- units (cpu_mcores, memory_kib). The view's filter on its TIMESTAMP cast reads every row of the
-- column; this one prunes by the stored TIMESTAMP_S (zone maps) first: a day of a 30-day store
-- reads a thirtieth of it.
CREATE OR REPLACE TEMP MACRO usage_in(lo, hi) AS TABLE
SELECT series_id, ts, cpu_mcores, memory_kib
FROM (
    SELECT series_id, CAST(ts AS TIMESTAMP) AS ts, cpu_mcores, memory_kib
    FROM usage_raw WHERE ts BETWEEN CAST(CAST(lo AS TIMESTAMP) - INTERVAL 1 SECOND AS TIMESTAMP_S) AND CAST(CAST(hi AS TIMESTAMP) + INTERVAL 1 SECOND AS TIMESTAMP_S)
    UNION ALL
    SELECT series_id, CAST(hour AS TIMESTAMP), cpu_mcores_p95, memory_kib_max
    FROM usage_hourly WHERE hour BETWEEN CAST(CAST(lo AS TIMESTAMP) - INTERVAL 1 SECOND AS TIMESTAMP_S) AND CAST(CAST(hi AS TIMESTAMP) + INTERVAL 1 SECOND AS TIMESTAMP_S)
    UNION ALL
    SELECT series_id, CAST(day AS TIMESTAMP), cpu_mcores_p95, memory_kib_max
    FROM usage_daily WHERE day BETWEEN CAST(CAST(lo AS TIMESTAMP) - INTERVAL 1 SECOND AS TIMESTAMP_S) AND CAST(CAST(hi AS TIMESTAMP) + INTERVAL 1 SECOND AS TIMESTAMP_S)
)
WHERE ts BETWEEN lo AND hi;  -- exact bounds (the casts above round to the second)

-- usage_stored_in(lo, hi): the same samples as they are stored (ts a TIMESTAMP_S, stored units), for
-- lo, hi whole seconds (capplan.analysis.rollup_span.stored_bounds): those are compared with the
-- stored times as they are, without a per-row cast, and the zone maps skip the other row groups.
-- usage_raw_in(lo, hi): usage_raw's part of them alone. A span without rolled-up samples
-- (rollup_span.raw_only) has the same rows in both, but DuckDB runs the table alone faster than the
-- union even when the rollup branches are empty: through the union it loses usage_raw's statistics
-- on series_id, and with them its perfect-hash joins (bench L: auto's daily statistics over 5 days
-- 0.77 -> 0.55 CPU-s, whatif's peaks 1.2 -> 0.8). A query reads usage_stored_in in its text;
-- capplan.store.query(..., raw=True) runs it on usage_raw_in instead.
CREATE OR REPLACE TEMP MACRO usage_raw_in(lo, hi) AS TABLE
SELECT series_id, ts, cpu_mcores, memory_kib
FROM usage_raw WHERE ts BETWEEN CAST(lo AS TIMESTAMP_S) AND CAST(hi AS TIMESTAMP_S);

CREATE OR REPLACE TEMP MACRO usage_stored_in(lo, hi) AS TABLE
SELECT series_id, ts, cpu_mcores, memory_kib FROM usage_raw_in(lo, hi)
UNION ALL
SELECT series_id, hour, cpu_mcores_p95, memory_kib_max
FROM usage_hourly WHERE hour BETWEEN CAST(lo AS TIMESTAMP_S) AND CAST(hi AS TIMESTAMP_S)
UNION ALL
SELECT series_id, day, cpu_mcores_p95, memory_kib_max
FROM usage_daily WHERE day BETWEEN CAST(lo AS TIMESTAMP_S) AND CAST(hi AS TIMESTAMP_S);

-- node_usage_compute, the definition of node_usage's rows (schema 006), is now
-- queries/node_usage_refresh.sql, the refresh's own query (capplan.store._refresh_node_sums).

-- node_usage_sum(lo, hi): the same per node, for readers (in a store.scope: one cluster's).
CREATE OR REPLACE TEMP MACRO node_usage_sum(lo, hi) AS TABLE
SELECT s.node, u.ts, CAST(sum(u.cpu_mcores) AS BIGINT) AS cpu_mcores, CAST(sum(u.memory_kib) AS BIGINT) AS memory_kib
FROM usage_in(lo, hi) AS u
JOIN series AS s USING (series_id)
WHERE s.node <> ''
GROUP BY s.node, u.ts;

-- node_usage_window(lo, hi, dirty_lo, dirty_hi): each node's summed usage per sample time in
-- [lo, hi] as readers want it (node, ts, cpu_cores DOUBLE, memory_bytes BIGINT; NULL where no
-- container had the value): node_usage's rows, except in [dirty_lo, dirty_hi] (the hull of the
-- pending ranges, capplan.store.node_usage_params), which is summed from the samples. Analyses
-- read one cluster (a store.scope, or a store of one cluster).
CREATE OR REPLACE TEMP MACRO node_usage_window(lo, hi, dirty_lo, dirty_hi) AS TABLE
SELECT node, ts, cpu_mcores / 1000 AS cpu_cores, memory_kib * 1024 AS memory_bytes
FROM node_usage
WHERE ts BETWEEN lo AND hi AND NOT (ts BETWEEN dirty_lo AND dirty_hi)
UNION ALL
SELECT node, ts, cpu_mcores / 1000 AS cpu_cores, memory_kib * 1024 AS memory_bytes
FROM node_usage_sum(greatest(lo, dirty_lo), least(hi, dirty_hi));
