-- Per UTC day of [$start, $end]: each pod alive that day in a non-terminal phase, the span of
-- the day it was seen in (clipped to the window), its node, and the latest spec that day of
-- each of its containers. One row per pod, day and container.
-- Params: $start TIMESTAMP, $end TIMESTAMP.
WITH days AS (
    SELECT unnest(range(date_trunc('day', $start::TIMESTAMP), $end::TIMESTAMP, INTERVAL 1 DAY)) AS day
),
pod_days AS (
    SELECT d.day, p.namespace, p.pod,
           min(greatest(p.valid_from, d.day, $start::TIMESTAMP)) AS span_start,
           max(least(p.valid_to, d.day + INTERVAL 1 DAY - INTERVAL 1 MICROSECOND, $end::TIMESTAMP)) AS span_end,
           arg_max(p.node, p.valid_to) AS node,
           arg_max(p.overhead_cpu_cores, p.valid_to) AS overhead_cpu_cores,
           arg_max(p.overhead_memory_bytes, p.valid_to) AS overhead_memory_bytes
    FROM pods AS p
    JOIN days AS d ON p.valid_from < d.day + INTERVAL 1 DAY AND p.valid_to >= d.day
    WHERE p.valid_from <= $end AND p.valid_to >= $start
      AND coalesce(p.phase, 'Running') IN ('Running', 'Pending', 'Unknown')
    GROUP BY d.day, p.namespace, p.pod
),
container_days AS (
    SELECT d.day, c.*
    FROM containers AS c
    JOIN days AS d ON c.valid_from < d.day + INTERVAL 1 DAY AND c.valid_to >= d.day
    WHERE c.valid_from <= $end AND c.valid_to >= $start
    QUALIFY row_number() OVER (PARTITION BY d.day, c.namespace, c.pod, c.container
                               ORDER BY c.valid_to DESC, c.valid_from DESC) = 1
)
SELECT p.day, p.namespace, p.pod, p.node, p.span_start, p.span_end,
       p.overhead_cpu_cores, p.overhead_memory_bytes,
       c.container, c.init_container, c.restartable, c.init_order,
       c.cpu_request_cores, c.cpu_limit_cores, c.memory_request_bytes, c.memory_limit_bytes
FROM pod_days AS p
JOIN container_days AS c USING (day, namespace, pod)
WHERE p.span_start <= p.span_end
ORDER BY p.day, p.namespace, p.pod, c.init_container DESC, c.init_order, c.container
