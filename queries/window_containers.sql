-- The containers of every pod seen in [$start, $end]: each pod's and container's latest spec in
-- the window, with the pod's node, priority class and reported QoS (eviction analysis: a pod
-- that ran at a node's worst moment may be gone by the window's end).
-- Params: $start TIMESTAMP, $end TIMESTAMP.
WITH pods_seen AS (
    SELECT *
    FROM pods
    WHERE valid_from <= $end AND valid_to >= $start
    QUALIFY row_number() OVER (PARTITION BY namespace, pod ORDER BY valid_to DESC, valid_from DESC) = 1
),
containers_seen AS (
    SELECT *
    FROM containers
    WHERE valid_from <= $end AND valid_to >= $start
    QUALIFY row_number() OVER (PARTITION BY namespace, pod, container ORDER BY valid_to DESC, valid_from DESC) = 1
)
SELECT
    p.namespace, p.pod, p.node, p.owner_kind, p.owner_name,
    p.priority_class, p.qos_class AS qos_class_reported, p.phase,
    p.overhead_cpu_cores, p.overhead_memory_bytes,
    c.container, c.init_container, c.restartable, c.init_order,
    c.cpu_request_cores, c.cpu_limit_cores, c.memory_request_bytes, c.memory_limit_bytes
FROM pods_seen AS p
JOIN containers_seen AS c USING (namespace, pod)
ORDER BY p.namespace, p.pod, c.init_container DESC, c.init_order, c.container
