-- `capplan import FILE`: nodes whose largest usage in the file is above their capacity.
-- Format field: over, capplan.gate.CAPACITY_SQL over (cpu_cores, memory_bytes) maxima per node.
SELECT count(*)
FROM (
    SELECT node, max(cpu_cores__max) AS cpu_cores, max(memory_bytes__max) AS memory_bytes
    FROM _import_groups
    WHERE node IS NOT NULL
    GROUP BY node
) AS g
JOIN _import_capacity AS n USING (node)
WHERE {over}
