-- HPAs alive at the end of the window, with the resource they scale on (cpu, memory, custom).
-- Params: $start, $end TIMESTAMP.
SELECT DISTINCT namespace, target_kind, target_name, metric_name
FROM hpas
WHERE valid_from <= $end AND valid_to >= $start
ORDER BY namespace, target_kind, target_name, metric_name
