-- Every container series that may have samples in [$start, $end], rolled up to the workload
-- users think in: pod -> ReplicaSet -> Deployment, Job -> CronJob, StatefulSet, DaemonSet;
-- a pod without an owner is its own workload (owner_kind 'Pod', owner_name = the pod).
-- With the container's latest spec and its pod's latest interval inside the window.
-- Params: $start TIMESTAMP, $end TIMESTAMP.
WITH pods_w AS (
    SELECT namespace, pod, owner_kind, owner_name, valid_to
    FROM pods
    WHERE valid_from <= $end AND valid_to >= $start
    QUALIFY row_number() OVER (PARTITION BY namespace, pod ORDER BY valid_to DESC, valid_from DESC) = 1
),
containers_w AS (
    SELECT namespace, pod, container, init_container, restartable,
           cpu_request_cores, cpu_limit_cores, memory_request_bytes, memory_limit_bytes
    FROM containers
    WHERE valid_from <= $end AND valid_to >= $start
    QUALIFY row_number() OVER (PARTITION BY namespace, pod, container ORDER BY valid_to DESC, valid_from DESC) = 1
),
owners_latest AS (
    SELECT namespace, kind, name, owner_kind, owner_name
    FROM owners
    WHERE owner_kind IS NOT NULL AND valid_from <= $end
    QUALIFY row_number() OVER (PARTITION BY namespace, kind, name ORDER BY valid_to DESC) = 1
)
SELECT s.series_id, s.namespace, s.pod, s.container, s.node,
       CASE WHEN p.owner_kind IS NULL THEN 'Pod' ELSE coalesce(o.owner_kind, p.owner_kind) END AS owner_kind,
       CASE WHEN p.owner_kind IS NULL THEN s.pod ELSE coalesce(o.owner_name, p.owner_name) END AS owner_name,
       coalesce(c.init_container, false) AS init_container,
       coalesce(c.restartable, false) AS restartable,
       c.cpu_request_cores, c.cpu_limit_cores, c.memory_request_bytes, c.memory_limit_bytes,
       c.container IS NOT NULL AS spec_known,   -- false: no spec stored, requests/limits unknown
       p.valid_to AS pod_seen_to
FROM series AS s
LEFT JOIN pods_w AS p ON p.namespace = s.namespace AND p.pod = s.pod
LEFT JOIN containers_w AS c ON c.namespace = s.namespace AND c.pod = s.pod AND c.container = s.container
LEFT JOIN owners_latest AS o ON o.namespace = p.namespace AND o.kind = p.owner_kind AND o.name = p.owner_name
ORDER BY s.series_id
