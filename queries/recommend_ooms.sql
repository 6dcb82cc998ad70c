-- OOM kills (restarts whose reason is OOMKilled) of containers in [$start, $end].
-- Params: $start, $end TIMESTAMP.
SELECT namespace, pod, container, ts
FROM restarts
WHERE ts BETWEEN $start AND $end AND reason = 'OOMKilled'
ORDER BY namespace, pod, container, ts
