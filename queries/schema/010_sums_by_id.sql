-- capplan store, schema version 10: the node and namespace sums keyed by integer ids (issue 14).
--
-- node_usage (schema 006) and namespace_usage (schema 008) held the cluster and the node or namespace
-- as text on every row: storing those texts was most of the cost of writing the sums, which every
-- import and collect does at its end (bench L import, a day's 373 k node sums: 0.13-0.16 CPU-s to
-- insert with the two texts, 0.02-0.03 with an integer id; bench/RESULTS.md). The rows now name an
-- id, and the names are in a small table per kind:
--   node_names       node_id -> (cluster, node): every pair a series was on at a refresh (ids are
--                    never reused; a pair no longer on any series keeps its id and may have no sums).
--   node_sums        node_id, ts and the sums: node_usage's rows as they were, the same definition
--                    (queries/node_usage_refresh.sql), in (ts, node_id) order.
--   namespace_names  namespace_id -> (cluster, namespace), as node_names.
--   namespace_sums   namespace_id, ts and the sums: namespace_usage's rows as they were
--                    (queries/namespace_usage_refresh.sql), in (ts, namespace_id) order.
--   node_usage, namespace_usage  views of the old names, columns and rows, for every reader (and
--                    store.scope's per-cluster views of them).
-- The sums carry no cluster column: a row reaches its cluster through its id's names row (as
-- usage_raw's rows reach theirs through series), and the names tables carry the cluster key.
-- The pending ranges (node_usage_pending, scope_usage_pending) are unchanged: the rows move as
-- they are, nothing is recomputed.

CREATE TABLE node_names (
    node_id INTEGER NOT NULL PRIMARY KEY,
    cluster VARCHAR NOT NULL,
    node VARCHAR NOT NULL,
    UNIQUE (cluster, node)
);

CREATE TABLE node_sums (
    node_id INTEGER NOT NULL,       -- node_names.node_id
    ts TIMESTAMP NOT NULL,
    cpu_mcores BIGINT,              -- sum of the containers' millicores at ts
    memory_kib BIGINT               -- sum of the containers' working set (KiB) at ts
);

CREATE TABLE namespace_names (
    namespace_id INTEGER NOT NULL PRIMARY KEY,
    cluster VARCHAR NOT NULL,
    namespace VARCHAR NOT NULL,
    UNIQUE (cluster, namespace)
);

CREATE TABLE namespace_sums (
    namespace_id INTEGER NOT NULL,  -- namespace_names.namespace_id
    ts TIMESTAMP NOT NULL,
    cpu_cores DOUBLE,               -- sum of the containers' cores (the view's REAL) at ts
    memory_kib BIGINT               -- sum of the containers' working set (KiB) at ts
);

INSERT INTO node_names
SELECT CAST(row_number() OVER (ORDER BY cluster, node) AS INTEGER), cluster, node
FROM (SELECT DISTINCT cluster, node FROM node_usage);

INSERT INTO node_sums
SELECT n.node_id, u.ts, u.cpu_mcores, u.memory_kib
FROM node_usage AS u JOIN node_names AS n USING (cluster, node)
ORDER BY u.ts, n.node_id;

INSERT INTO namespace_names
SELECT CAST(row_number() OVER (ORDER BY cluster, namespace) AS INTEGER), cluster, namespace
FROM (SELECT DISTINCT cluster, namespace FROM namespace_usage);

INSERT INTO namespace_sums
SELECT n.namespace_id, u.ts, u.cpu_cores, u.memory_kib
FROM namespace_usage AS u JOIN namespace_names AS n USING (cluster, namespace)
ORDER BY u.ts, n.namespace_id;

DROP TABLE node_usage;
DROP TABLE namespace_usage;

CREATE VIEW node_usage AS
SELECT n.cluster, n.node, s.ts, s.cpu_mcores, s.memory_kib
FROM node_sums AS s JOIN node_names AS n USING (node_id);

CREATE VIEW namespace_usage AS
SELECT n.cluster, n.namespace, s.ts, s.cpu_cores, s.memory_kib
FROM namespace_sums AS s JOIN namespace_names AS n USING (namespace_id);
