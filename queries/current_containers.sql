-- The containers of the pods alive at $at: each container's latest spec seen in
-- [$at - $tolerance, $at], with its pod's node, owner, priority class and reported QoS.
-- Params: $at TIMESTAMP, $tolerance INTERVAL.
WITH pods_now AS (
    SELECT *
    FROM pods
    WHERE valid_from <= $at AND valid_to >= $at - $tolerance
      AND coalesce(phase, 'Running') IN ('Running', 'Pending', 'Unknown')
    QUALIFY row_number() OVER (PARTITION BY namespace, pod ORDER BY valid_to DESC, valid_from DESC) = 1
),
containers_now AS (
    SELECT *
    FROM containers
    WHERE valid_from <= $at AND valid_to >= $at - $tolerance
    QUALIFY row_number() OVER (PARTITION BY namespace, pod, container ORDER BY valid_to DESC, valid_from DESC) = 1
)
SELECT
    p.namespace, p.pod, p.node, p.owner_kind, p.owner_name,
    coalesce(o.owner_kind, p.owner_kind) AS workload_kind,
    coalesce(o.owner_name, p.owner_name, p.pod) AS workload_name,
    p.priority_class, p.qos_class AS qos_class_reported, p.phase,
    p.overhead_cpu_cores, p.overhead_memory_bytes,
    c.container, c.init_container, c.restartable, c.init_order,
    c.cpu_request_cores, c.cpu_limit_cores, c.memory_request_bytes, c.memory_limit_bytes
FROM pods_now AS p
JOIN containers_now AS c USING (namespace, pod)
LEFT JOIN (
    SELECT namespace, kind, name, owner_kind, owner_name
    FROM owners
    WHERE owner_kind IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY namespace, kind, name ORDER BY valid_to DESC) = 1
) AS o ON o.namespace = p.namespace AND o.kind = p.owner_kind AND o.name = p.owner_name
ORDER BY p.namespace, p.pod, c.init_container DESC, c.init_order, c.container
