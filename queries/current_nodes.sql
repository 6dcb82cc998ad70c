-- Each node's latest capacity, allocatable, labels and taints seen in [$at - $tolerance, $at].
-- Params: $at TIMESTAMP, $tolerance INTERVAL.
SELECT node, cpu_capacity_cores, memory_capacity_bytes, pods_capacity,
       cpu_allocatable_cores, memory_allocatable_bytes, pods_allocatable, labels, taints
FROM nodes
WHERE valid_from <= $at AND valid_to >= $at - $tolerance
QUALIFY row_number() OVER (PARTITION BY node ORDER BY valid_to DESC, valid_from DESC) = 1
ORDER BY node
