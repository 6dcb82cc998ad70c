"""A database of today's schema turned back into schema 9's sums tables, as main wrote them before
migration 010: node_usage and namespace_usage as tables of (cluster, name, ts, sums) rows, no id
tables. The rows are the views' (the same values schema 9's refresh stored: bench/RESULTS.md
compares the two on the bench's imports), in schema 9's order (ts, cluster, node) and
(cluster, namespace, ts). Tests build older schemas from it by dropping what came later."""

from __future__ import annotations

import duckdb

SCHEMA_9_SUMS = """
CREATE TABLE node_usage_9 (
    cluster VARCHAR NOT NULL DEFAULT 'default', node VARCHAR NOT NULL, ts TIMESTAMP NOT NULL,
    cpu_mcores BIGINT, memory_kib BIGINT);
INSERT INTO node_usage_9 SELECT cluster, node, ts, cpu_mcores, memory_kib FROM node_usage ORDER BY ts, cluster, node;
CREATE TABLE namespace_usage_9 (
    cluster VARCHAR NOT NULL DEFAULT 'default', namespace VARCHAR NOT NULL, ts TIMESTAMP NOT NULL,
    cpu_cores DOUBLE, memory_kib BIGINT);
INSERT INTO namespace_usage_9 SELECT cluster, namespace, ts, cpu_cores, memory_kib FROM namespace_usage
ORDER BY cluster, namespace, ts;
DROP VIEW node_usage; DROP VIEW namespace_usage;
DROP TABLE node_sums; DROP TABLE node_names; DROP TABLE namespace_sums; DROP TABLE namespace_names;
ALTER TABLE node_usage_9 RENAME TO node_usage;
ALTER TABLE namespace_usage_9 RENAME TO namespace_usage;
UPDATE schema_version SET version = 9;
"""


def to_schema_9(con: duckdb.DuckDBPyConnection) -> None:
    """Turn a database of schema 10 (a plain DuckDB connection, no capplan macros) into schema 9."""
    con.execute("BEGIN TRANSACTION")
    con.execute(SCHEMA_9_SUMS)
    con.execute("COMMIT")
