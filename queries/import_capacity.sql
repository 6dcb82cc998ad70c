-- `capplan import FILE`: the largest capacity each node of the file ever had, by the nodes stored
-- in the cluster $cluster (the gate's physical bounds: capplan.gate.CAPACITY_SQL).
CREATE OR REPLACE TEMP TABLE _import_capacity AS
SELECT node,
       max(cpu_capacity_cores)::DOUBLE AS cpu_capacity_cores,
       max(memory_capacity_bytes)::DOUBLE AS memory_capacity_bytes
FROM nodes
WHERE cluster = $cluster AND node IN (SELECT node FROM _import_groups)
GROUP BY node
