-- Per node and sample time in [$start, $end]: the summed working set of the containers on it
-- (capplan's stand-in for the node's working set in the kubelet's memory.available signal).
-- Params: $start TIMESTAMP, $end TIMESTAMP.
SELECT s.node, u.ts, CAST(sum(u.memory_bytes) AS BIGINT) AS working_set_bytes
FROM usage_samples AS u
JOIN series AS s USING (series_id)
WHERE u.ts BETWEEN $start AND $end AND s.node <> '' AND u.memory_bytes IS NOT NULL
GROUP BY s.node, u.ts
ORDER BY s.node, u.ts
