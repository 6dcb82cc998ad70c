-- The outcome of a collection run. Params: $run_id BIGINT, $finished_at TIMESTAMP, $series,
-- $samples, $queries BIGINT, $status, $message VARCHAR, $window_end TIMESTAMP (NULL keeps it).
UPDATE collection_runs
SET finished_at = $finished_at, series = $series, samples = $samples, queries = $queries, status = $status,
    message = $message, window_end = coalesce($window_end, window_end)
WHERE run_id = $run_id
