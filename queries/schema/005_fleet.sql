-- capplan store, schema version 5: many clusters in one store (issue 21, the fleet).
--
-- Every table keys by cluster. What a database held before belongs to the cluster `default`
-- (also the cluster of any row written without one: the column's default).
--   series            UNIQUE (cluster, namespace, pod, container); series_id stays the primary key
--   usage_raw, usage_hourly, usage_daily, series_nodes
--                     unchanged: they reach the cluster through series_id (no column per sample:
--                     storage is measured in bytes per sample, docs/storage.md)
--   nodes             (cluster, node) + valid_from/valid_to
--   pods              (cluster, namespace, pod) + valid_from/valid_to
--   containers        (cluster, namespace, pod, container) + valid_from/valid_to
--   owners, workloads (cluster, namespace, kind, name) + valid_from/valid_to
--   hpas              (cluster, namespace, hpa) + valid_from/valid_to
--   resource_quotas   (cluster, namespace, quota, resource) + valid_from/valid_to
--   restarts          (cluster, namespace, pod, container, ts)
--   collection_runs   run_id (global: one lock per database), with the cluster it collected
--   high_water_marks  PRIMARY KEY (cluster, source, metric)
--   collector_sources PRIMARY KEY (cluster, source, exporter)
-- Analyses read one cluster at a time through capplan.store.scope (temporary views of the same
-- names, filtered to the cluster), so the queries themselves know nothing of clusters.

ALTER TABLE nodes ADD COLUMN cluster VARCHAR DEFAULT 'default';
ALTER TABLE nodes ALTER COLUMN cluster SET NOT NULL;
ALTER TABLE pods ADD COLUMN cluster VARCHAR DEFAULT 'default';
ALTER TABLE pods ALTER COLUMN cluster SET NOT NULL;
ALTER TABLE containers ADD COLUMN cluster VARCHAR DEFAULT 'default';
ALTER TABLE containers ALTER COLUMN cluster SET NOT NULL;
ALTER TABLE owners ADD COLUMN cluster VARCHAR DEFAULT 'default';
ALTER TABLE owners ALTER COLUMN cluster SET NOT NULL;
ALTER TABLE workloads ADD COLUMN cluster VARCHAR DEFAULT 'default';
ALTER TABLE workloads ALTER COLUMN cluster SET NOT NULL;
ALTER TABLE hpas ADD COLUMN cluster VARCHAR DEFAULT 'default';
ALTER TABLE hpas ALTER COLUMN cluster SET NOT NULL;
ALTER TABLE resource_quotas ADD COLUMN cluster VARCHAR DEFAULT 'default';
ALTER TABLE resource_quotas ALTER COLUMN cluster SET NOT NULL;
ALTER TABLE restarts ADD COLUMN cluster VARCHAR DEFAULT 'default';
ALTER TABLE restarts ALTER COLUMN cluster SET NOT NULL;
ALTER TABLE collection_runs ADD COLUMN cluster VARCHAR DEFAULT 'default';
ALTER TABLE collection_runs ALTER COLUMN cluster SET NOT NULL;

-- Tables whose declared keys change are rebuilt (DuckDB cannot alter a constraint).
CREATE TABLE series_v5 (
    series_id INTEGER NOT NULL PRIMARY KEY,
    namespace VARCHAR NOT NULL,
    pod VARCHAR NOT NULL,
    container VARCHAR NOT NULL,
    node VARCHAR NOT NULL,          -- the node it was last seen on ('' when never known); history in series_nodes
    cluster VARCHAR NOT NULL DEFAULT 'default',
    UNIQUE (cluster, namespace, pod, container)
);
INSERT INTO series_v5 (series_id, namespace, pod, container, node, cluster)
SELECT series_id, namespace, pod, container, node, 'default' FROM series;
DROP TABLE series;
ALTER TABLE series_v5 RENAME TO series;

CREATE TABLE high_water_marks_v5 (
    cluster VARCHAR NOT NULL DEFAULT 'default',
    source VARCHAR NOT NULL,
    metric VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,
    PRIMARY KEY (cluster, source, metric)
);
INSERT INTO high_water_marks_v5 (cluster, source, metric, ts)
SELECT 'default', source, metric, ts FROM high_water_marks;
DROP TABLE high_water_marks;
ALTER TABLE high_water_marks_v5 RENAME TO high_water_marks;

CREATE TABLE collector_sources_v5 (
    cluster VARCHAR NOT NULL DEFAULT 'default',
    source VARCHAR NOT NULL,
    exporter VARCHAR NOT NULL,      -- cadvisor, kube-state-metrics
    scrape_seconds DOUBLE,
    selector VARCHAR,               -- the label matchers chosen for this exporter, '' for none
    measured_at TIMESTAMP NOT NULL,
    PRIMARY KEY (cluster, source, exporter)
);
INSERT INTO collector_sources_v5 (cluster, source, exporter, scrape_seconds, selector, measured_at)
SELECT 'default', source, exporter, scrape_seconds, selector, measured_at FROM collector_sources;
DROP TABLE collector_sources;
ALTER TABLE collector_sources_v5 RENAME TO collector_sources;
