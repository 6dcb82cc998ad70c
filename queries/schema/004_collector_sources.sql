-- capplan store, schema version 4 (the collector's; 002 and 003 belong to other changes).
-- Per source, what the collector measured once and keeps across runs so that incremental runs
-- use the same windows: the scrape interval of cAdvisor and of kube-state-metrics series,
-- measured where the data is (the median time between consecutive samples), and which
-- cAdvisor source (job, metrics_path) was picked when several export the same containers.
CREATE TABLE collector_sources (
    source VARCHAR NOT NULL,
    exporter VARCHAR NOT NULL,      -- cadvisor, kube-state-metrics
    scrape_seconds DOUBLE,
    selector VARCHAR,               -- the label matchers chosen for this exporter, '' for none
    measured_at TIMESTAMP NOT NULL,
    PRIMARY KEY (source, exporter)
);
