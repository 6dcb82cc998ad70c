-- A new collection run with the next run_id, which it returns. Params: $source VARCHAR, $now,
-- $finished_at, $window_start, $window_end TIMESTAMP, $queries BIGINT, $status, $message, $cluster VARCHAR.
INSERT INTO collection_runs (run_id, source, started_at, finished_at, window_start, window_end,
                             series, samples, queries, status, message, cluster)
SELECT coalesce(max(run_id), 0) + 1, $source, $now, $finished_at, $window_start, $window_end, 0, 0, $queries,
       $status, $message, $cluster
FROM collection_runs
RETURNING run_id
