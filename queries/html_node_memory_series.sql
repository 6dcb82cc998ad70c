-- Per node and timestamp: the summed working set of the node's containers over [$start, $end]
-- (the HTML report's memory-pressure chart). Params: $start TIMESTAMP, $end TIMESTAMP.
SELECT s.node, u.ts, sum(u.memory_bytes) AS memory_bytes
FROM usage_samples AS u
JOIN series AS s USING (series_id)
WHERE u.ts BETWEEN $start AND $end AND s.node <> ''
GROUP BY s.node, u.ts
ORDER BY s.node, u.ts
