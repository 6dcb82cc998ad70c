-- capplan store, schema version 2: a container series is (namespace, pod, container).
-- Schema 1 keyed series by (namespace, pod, container, node), so the same container imported
-- with and without a node (or collected with and without kube-state-metrics) became two series
-- and its usage was counted twice. Here the split series of one container are merged into the
-- one with the smallest id; where two of them hold a sample at the same time, the sample of a
-- series with a known node is kept, else the one written last (highest id). The node becomes
-- an attribute with history (series_nodes); series.node is the node it was last seen on.

CREATE TABLE series_nodes (
    series_id INTEGER NOT NULL,
    node VARCHAR NOT NULL,
    valid_from TIMESTAMP NOT NULL,   -- first and last sample seen on that node
    valid_to TIMESTAMP NOT NULL,
    PRIMARY KEY (series_id, node)
);

CREATE TEMP TABLE _series_map AS
SELECT series_id AS old_id,
       min(series_id) OVER (PARTITION BY namespace, pod, container) AS new_id,
       count(*) OVER (PARTITION BY namespace, pod, container) > 1 AS split,
       node
FROM series;

INSERT INTO series_nodes (series_id, node, valid_from, valid_to)
SELECT m.new_id, m.node, min(u.ts), max(u.ts)
FROM usage_samples AS u JOIN _series_map AS m ON u.series_id = m.old_id
WHERE m.node <> ''
GROUP BY m.new_id, m.node;

CREATE TEMP TABLE _drop AS
SELECT series_id, ts FROM (
    SELECT u.series_id, u.ts,
           row_number() OVER (PARTITION BY m.new_id, u.ts ORDER BY (m.node <> '') DESC, u.series_id DESC) AS rn
    FROM usage_samples AS u JOIN _series_map AS m ON u.series_id = m.old_id
    WHERE m.split
) WHERE rn > 1;

DELETE FROM usage_samples AS u USING _drop AS d WHERE u.series_id = d.series_id AND u.ts = d.ts;

UPDATE usage_samples SET series_id = m.new_id
FROM _series_map AS m
WHERE usage_samples.series_id = m.old_id AND m.old_id <> m.new_id;

CREATE TABLE series_v2 (
    series_id INTEGER NOT NULL PRIMARY KEY,
    namespace VARCHAR NOT NULL,
    pod VARCHAR NOT NULL,
    container VARCHAR NOT NULL,
    node VARCHAR NOT NULL,          -- the node it was last seen on ('' when never known); history in series_nodes
    UNIQUE (namespace, pod, container)
);

INSERT INTO series_v2 (series_id, namespace, pod, container, node)
SELECT s.series_id, s.namespace, s.pod, s.container,
       coalesce((SELECT arg_max(n.node, n.valid_to) FROM series_nodes AS n WHERE n.series_id = s.series_id), s.node)
FROM series AS s JOIN _series_map AS m ON s.series_id = m.old_id
WHERE m.old_id = m.new_id;

DROP TABLE series;
ALTER TABLE series_v2 RENAME TO series;
DROP TABLE _drop;
DROP TABLE _series_map;
