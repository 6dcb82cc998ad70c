-- Summed container usage per sample time and scope over [$start, $end]: the cluster, each node
-- pool (node -> pool given as the parallel lists $nodes and $pools; series on other nodes or on
-- an unknown node count for no pool) and each namespace.
-- Params: $start TIMESTAMP, $end TIMESTAMP, $nodes VARCHAR[], $pools VARCHAR[].
WITH pool_map AS (
    SELECT unnest($nodes::VARCHAR[]) AS node, unnest($pools::VARCHAR[]) AS pool
),
per_node AS (
    SELECT u.ts, s.node, s.namespace, sum(u.cpu_cores)::DOUBLE AS cpu_cores, sum(u.memory_bytes)::DOUBLE AS memory_bytes
    FROM usage_samples AS u
    JOIN series AS s USING (series_id)
    WHERE u.ts BETWEEN $start AND $end
    GROUP BY u.ts, s.node, s.namespace
)
SELECT 'cluster' AS scope_kind, 'cluster' AS scope_name, ts, sum(cpu_cores) AS cpu_cores, sum(memory_bytes) AS memory_bytes
FROM per_node GROUP BY ts
UNION ALL
SELECT 'pool', m.pool, p.ts, sum(p.cpu_cores), sum(p.memory_bytes)
FROM per_node AS p JOIN pool_map AS m USING (node) GROUP BY m.pool, p.ts
UNION ALL
SELECT 'namespace', namespace, ts, sum(cpu_cores), sum(memory_bytes)
FROM per_node GROUP BY namespace, ts
ORDER BY 1, 2, 3
