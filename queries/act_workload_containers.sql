-- Every container the store knows for each workload in [$start, $end] (from the spec tables,
-- so containers that never reported usage, such as finished init containers, count too),
-- rolled up as recommend_series rolls pods up: pod -> ReplicaSet -> Deployment, Job -> CronJob;
-- a pod without an owner is its own workload (owner_kind 'Pod').
-- Params: $start TIMESTAMP, $end TIMESTAMP.
WITH pods_w AS (
    SELECT namespace, pod, owner_kind, owner_name
    FROM pods
    WHERE valid_from <= $end AND valid_to >= $start
    QUALIFY row_number() OVER (PARTITION BY namespace, pod ORDER BY valid_to DESC, valid_from DESC) = 1
),
owners_latest AS (
    SELECT namespace, kind, name, owner_kind, owner_name
    FROM owners
    WHERE owner_kind IS NOT NULL AND valid_from <= $end
    QUALIFY row_number() OVER (PARTITION BY namespace, kind, name ORDER BY valid_to DESC) = 1
)
SELECT DISTINCT p.namespace,
       CASE WHEN p.owner_kind IS NULL THEN 'Pod' ELSE coalesce(o.owner_kind, p.owner_kind) END AS owner_kind,
       CASE WHEN p.owner_kind IS NULL THEN p.pod ELSE coalesce(o.owner_name, p.owner_name) END AS owner_name,
       c.container
FROM pods_w AS p
JOIN containers AS c ON c.namespace = p.namespace AND c.pod = p.pod
                    AND c.valid_from <= $end AND c.valid_to >= $start
LEFT JOIN owners_latest AS o ON o.namespace = p.namespace AND o.kind = p.owner_kind AND o.name = p.owner_name
ORDER BY 1, 2, 3, 4
