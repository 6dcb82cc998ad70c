-- capplan store, schema version 1.
-- Conventions: timestamps are TIMESTAMP in UTC; CPU in cores (DOUBLE/REAL), memory in bytes (BIGINT).
-- Spec tables keep history as intervals: a row holds the values seen from valid_from to valid_to
-- (both inclusive, the first and last time they were observed). A change opens a new row.

CREATE TABLE schema_version (version INTEGER NOT NULL);

CREATE TABLE nodes (
    node VARCHAR NOT NULL,
    valid_from TIMESTAMP NOT NULL,
    valid_to TIMESTAMP NOT NULL,
    cpu_capacity_cores DOUBLE,
    memory_capacity_bytes BIGINT,
    pods_capacity INTEGER,
    cpu_allocatable_cores DOUBLE,
    memory_allocatable_bytes BIGINT,
    pods_allocatable INTEGER,
    labels VARCHAR,          -- JSON object of node labels
    taints VARCHAR           -- JSON list of {"key","value","effect"}
);

CREATE TABLE pods (
    namespace VARCHAR NOT NULL,
    pod VARCHAR NOT NULL,
    valid_from TIMESTAMP NOT NULL,
    valid_to TIMESTAMP NOT NULL,
    node VARCHAR,
    owner_kind VARCHAR,      -- direct controller: ReplicaSet, StatefulSet, DaemonSet, Job, ...
    owner_name VARCHAR,
    priority_class VARCHAR,
    qos_class VARCHAR,       -- as reported by kube-state-metrics, NULL when not collected
    phase VARCHAR,
    overhead_cpu_cores DOUBLE,      -- pod overhead (RuntimeClass), NULL when unknown
    overhead_memory_bytes BIGINT
);

CREATE TABLE containers (
    namespace VARCHAR NOT NULL,
    pod VARCHAR NOT NULL,
    container VARCHAR NOT NULL,
    valid_from TIMESTAMP NOT NULL,
    valid_to TIMESTAMP NOT NULL,
    init_container BOOLEAN NOT NULL,
    restartable BOOLEAN NOT NULL,   -- an init container with restartPolicy Always (a sidecar)
    init_order INTEGER,             -- declaration order among init containers, NULL when unknown
    cpu_request_cores DOUBLE,       -- NULL = not set
    cpu_limit_cores DOUBLE,
    memory_request_bytes BIGINT,
    memory_limit_bytes BIGINT
);

-- Owner chain above the pod: ReplicaSet -> Deployment, Job -> CronJob.
CREATE TABLE owners (
    namespace VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    valid_from TIMESTAMP NOT NULL,
    valid_to TIMESTAMP NOT NULL,
    owner_kind VARCHAR,
    owner_name VARCHAR
);

-- Deployments (and other scalable workloads): desired replicas and rollout strategy.
CREATE TABLE workloads (
    namespace VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    valid_from TIMESTAMP NOT NULL,
    valid_to TIMESTAMP NOT NULL,
    replicas INTEGER,
    strategy VARCHAR,              -- RollingUpdate, Recreate, BlueGreen
    max_surge_pods INTEGER         -- absolute surge as kube-state-metrics reports it; NULL = default 25%
);

CREATE TABLE hpas (
    namespace VARCHAR NOT NULL,
    hpa VARCHAR NOT NULL,
    valid_from TIMESTAMP NOT NULL,
    valid_to TIMESTAMP NOT NULL,
    target_kind VARCHAR,
    target_name VARCHAR,
    metric_name VARCHAR            -- cpu, memory, or a custom metric
);

CREATE TABLE resource_quotas (
    namespace VARCHAR NOT NULL,
    quota VARCHAR NOT NULL,
    resource VARCHAR NOT NULL,     -- requests.cpu, requests.memory, limits.cpu, limits.memory, pods, ...
    valid_from TIMESTAMP NOT NULL,
    valid_to TIMESTAMP NOT NULL,
    hard DOUBLE                    -- cores for cpu, bytes for memory, count for pods
);

-- Usage: one integer id per container series, samples keyed by (series_id, ts).
CREATE TABLE series (
    series_id INTEGER NOT NULL PRIMARY KEY,
    namespace VARCHAR NOT NULL,
    pod VARCHAR NOT NULL,
    container VARCHAR NOT NULL,
    node VARCHAR NOT NULL,          -- '' when unknown
    UNIQUE (namespace, pod, container, node)
);

CREATE TABLE usage_samples (
    series_id INTEGER NOT NULL,
    ts TIMESTAMP NOT NULL,
    cpu_cores REAL,                 -- average cores over the step ending at ts
    memory_bytes BIGINT             -- peak working set within the step ending at ts
);

-- Container restarts, one row per observed restart; reason is the last terminated reason.
CREATE TABLE restarts (
    namespace VARCHAR NOT NULL,
    pod VARCHAR NOT NULL,
    container VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,
    restarts_total INTEGER,
    reason VARCHAR                  -- OOMKilled, Error, Completed, ...
);

CREATE TABLE collection_runs (
    run_id INTEGER NOT NULL,
    source VARCHAR NOT NULL,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    window_start TIMESTAMP,
    window_end TIMESTAMP,
    series BIGINT,
    samples BIGINT,
    queries INTEGER,
    status VARCHAR,                 -- running, ok, interrupted, failed
    message VARCHAR
);

-- Per metric high-water mark: everything up to ts is stored for this source.
CREATE TABLE high_water_marks (
    source VARCHAR NOT NULL,
    metric VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,
    PRIMARY KEY (source, metric)
);
