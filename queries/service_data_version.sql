-- A fingerprint of the stored data for the service's result cache: any committed collection or
-- import changes at least one of these (newest sample, row counts, newest spec observation, runs).
SELECT
    (SELECT max(ts) FROM usage_samples) AS newest_sample,
    (SELECT count(*) FROM usage_samples) AS samples,
    (SELECT count(*) FROM series) AS series,
    (SELECT max(valid_to) FROM nodes) AS nodes_seen,
    (SELECT count(*) FROM nodes) AS node_rows,
    (SELECT max(valid_to) FROM pods) AS pods_seen,
    (SELECT count(*) FROM pods) AS pod_rows,
    (SELECT count(*) FROM containers) AS container_rows,
    (SELECT count(*) FROM restarts) AS restart_rows,
    (SELECT max(run_id) FROM collection_runs) AS last_run,
    (SELECT max(finished_at) FROM collection_runs) AS last_finished
