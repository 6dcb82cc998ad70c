-- The newest collection run (any status) and the finish time of the newest successful one.
-- Columns: started_at, finished_at, status, samples, series, last_ok_finished_at.
WITH newest AS (
    SELECT started_at, finished_at, status, samples, series
    FROM collection_runs
    ORDER BY started_at DESC, run_id DESC
    LIMIT 1
)
SELECT n.started_at, n.finished_at, n.status, n.samples, n.series,
       (SELECT max(finished_at) FROM collection_runs WHERE status = 'ok') AS last_ok_finished_at
FROM (SELECT 1) AS one
LEFT JOIN newest AS n ON true
