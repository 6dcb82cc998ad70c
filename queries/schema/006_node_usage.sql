-- capplan store, schema version 6: the node-level usage series, materialised (issue 14).
--
-- nodes, eviction, the memory-pressure risk and the report all read each node's summed container
-- usage per sample time. Summing 86.5 M samples into 11 M (node, time) rows on every analysis
-- took most of their time and memory at 10,000 containers (bench/RESULTS.md), so the sums are kept
-- here, one row per node and time, and read instead.
--   node_usage          node, ts and the sums, defined as queries/node_usage_macros.sql's
--                       node_usage_compute: every stored sample (usage_raw, and the rollups the
--                       usage_samples view reads) of the series whose cluster and node
--                       (series.node) are the row's, summed; NULL when no
--                       sample has the value; exact, in the stored units (millicores, KiB).
--                       Scoped like the other cluster tables (store.scope).
--   node_usage_pending  time ranges whose sums may be stale: a write of usage (insert, --replace,
--                       a series that moved to another node), prune and compaction record what they
--                       touched in the same transaction. capplan.store.refresh_node_usage recomputes
--                       them (writers call it when they finish; any writable open does too), and until
--                       then readers sum those ranges from the samples (node_usage_window), so an
--                       analysis never reads a stale row.
CREATE TABLE node_usage (
    cluster VARCHAR NOT NULL DEFAULT 'default',  -- schema 005: the node's cluster (its series')
    node VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,
    cpu_mcores BIGINT,              -- sum of the containers' millicores at ts
    memory_kib BIGINT               -- sum of the containers' working set (KiB) at ts
);

-- Ranges of time, of every cluster: a refresh recomputes all clusters' sums in them.
CREATE TABLE node_usage_pending (
    lo TIMESTAMP NOT NULL,          -- inclusive, whole seconds
    hi TIMESTAMP NOT NULL
);

-- What was stored before: computed by the first writable open (capplan.store.open_db).
INSERT INTO node_usage_pending
SELECT lo, hi FROM (
    SELECT least((SELECT min(ts) FROM usage_raw), (SELECT min(hour) FROM usage_hourly), (SELECT min(day) FROM usage_daily)) AS lo,
           greatest((SELECT max(ts) FROM usage_raw), (SELECT max(hour) FROM usage_hourly), (SELECT max(day) FROM usage_daily)) AS hi
) WHERE lo IS NOT NULL;
