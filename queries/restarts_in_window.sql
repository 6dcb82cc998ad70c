-- Per pod: container restarts observed in [$start, $end] and how many of them were OOM kills.
-- Params: $start TIMESTAMP, $end TIMESTAMP.
SELECT namespace, pod,
       count(*) AS restarts,
       count(*) FILTER (WHERE reason = 'OOMKilled') AS oom_kills,
       list(DISTINCT container ORDER BY container) FILTER (WHERE reason = 'OOMKilled') AS oom_killed_containers
FROM restarts
WHERE ts BETWEEN $start AND $end
GROUP BY namespace, pod
ORDER BY namespace, pod
