-- Usage samples of one container name in one namespace over [$start, $end], with the workload
-- each pod rolls up to (pod -> direct owner -> its owner, as in current_containers.sql), for the
-- usage distributions of the HTML report. Params: $start, $end TIMESTAMP; $namespace, $container VARCHAR;
-- $lo, $hi BIGINT: the smallest and largest series_id of the container (zone maps skip the rest).
WITH pod_owner AS (
    SELECT namespace, pod, arg_max(owner_kind, valid_to) AS owner_kind, arg_max(owner_name, valid_to) AS owner_name
    FROM pods
    WHERE namespace = $namespace
    GROUP BY namespace, pod
),
owner_up AS (
    SELECT namespace, kind, name, arg_max(owner_kind, valid_to) AS up_kind, arg_max(owner_name, valid_to) AS up_name
    FROM owners
    WHERE namespace = $namespace AND owner_kind IS NOT NULL
    GROUP BY namespace, kind, name
)
SELECT s.namespace, s.pod, s.container,
       coalesce(o.up_kind, p.owner_kind) AS owner_kind,
       coalesce(o.up_name, p.owner_name, s.pod) AS owner_name,
       u.ts, u.cpu_cores, u.memory_bytes
FROM usage_samples AS u
JOIN series AS s USING (series_id)
LEFT JOIN pod_owner AS p ON p.namespace = s.namespace AND p.pod = s.pod
LEFT JOIN owner_up AS o ON o.namespace = p.namespace AND o.kind = p.owner_kind AND o.name = p.owner_name
WHERE u.series_id BETWEEN $lo AND $hi
  AND u.ts BETWEEN $start AND $end AND s.namespace = $namespace AND s.container = $container
