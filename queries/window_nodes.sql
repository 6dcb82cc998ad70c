-- Each node's latest capacity and allocatable seen in [$start, $end].
-- Params: $start TIMESTAMP, $end TIMESTAMP.
SELECT node, memory_capacity_bytes, memory_allocatable_bytes, cpu_capacity_cores, cpu_allocatable_cores
FROM nodes
WHERE valid_from <= $end AND valid_to >= $start
QUALIFY row_number() OVER (PARTITION BY node ORDER BY valid_to DESC, valid_from DESC) = 1
ORDER BY node
