-- Per node and pod over [$lo, $hi]: the pod's working set (sum over its containers per sample
-- time) at its p95, peak and latest sample, for the pods whose smallest series id is in
-- [$first_id, $last_id] (a part: capplan.analysis.eviction.analysis.pod_memory_stats runs the
-- parts one after another, series_parts.run_parts; together they hold every pod once).
-- Params: $lo, $hi TIMESTAMP whole seconds (rollup_span.stored_bounds); $first_id, $last_id BIGINT;
-- $distinct_times BOOLEAN: no series has two stored samples of one time in [$lo, $hi]
-- (queries/stored_times_distinct.sql; always so for usage_raw alone).
-- Pods are grouped by a dense integer id, not by their three name strings: at 86 M samples the
-- string-keyed per-timestamp hash table alone outgrew 8 GiB. The exact p95 keeps every per-time
-- sum of the pods it aggregates: over all pods at once, 90 days of the bench's L year file ran out
-- of DuckDB's 1.9 GiB (issue 14), hence the parts. A part's series ids are those of its pods; the
-- join's bounds on them let the scan of the clustered usage_raw skip the other row groups.
-- Most pods have one series (the bench's L: 11,178 of 13,122): with distinct times their samples
-- are already their per-time sums, and only the pods of several series go through the hash table
-- of (pod, time) groups, which held a group per sample (the bench's L: 7.2 M in one part, most of
-- the query's CPU, spilling to disk under eviction's 128 MiB, store.bounded_memory): `capplan
-- eviction --usage p95` at L 16.0-18.6 -> 9.1-9.5 CPU-s, the year file's 90 days 35.0-38.1 ->
-- 21.6-21.7 (load 4-6.5; bench/RESULTS.md, issue 14, RV). Each branch scans the part's samples,
-- a cheap scan next to that hash table.
WITH pods AS (
    SELECT series_id, node, namespace, pod,
           dense_rank() OVER (ORDER BY node, namespace, pod) AS pod_id,
           min(series_id) OVER (PARTITION BY node, namespace, pod) AS pod_first_id,
           count(*) OVER (PARTITION BY node, namespace, pod) AS pod_series
    FROM series
    WHERE node <> ''
),
part AS (
    SELECT series_id, node, namespace, pod, pod_id, pod_series = 1 AND $distinct_times AS one_sum_a_sample
    FROM pods
    WHERE pod_first_id BETWEEN $first_id AND $last_id
),
per_ts AS (
    SELECT p.pod_id, u.ts, CAST(u.memory_kib AS BIGINT) * 1024 AS working_set_bytes
    FROM usage_stored_in($lo, $hi) AS u
    JOIN (SELECT series_id, pod_id FROM part WHERE one_sum_a_sample) AS p USING (series_id)
    WHERE u.memory_kib IS NOT NULL
    UNION ALL
    SELECT p.pod_id, u.ts, CAST(sum(u.memory_kib) AS BIGINT) * 1024 AS working_set_bytes
    FROM usage_stored_in($lo, $hi) AS u
    JOIN (SELECT series_id, pod_id FROM part WHERE NOT one_sum_a_sample) AS p USING (series_id)
    WHERE u.memory_kib IS NOT NULL
    GROUP BY p.pod_id, u.ts
),
stats AS (
    SELECT pod_id,
           quantile_cont(working_set_bytes, 0.95) AS working_set_p95_bytes,
           CAST(max(working_set_bytes) AS BIGINT) AS working_set_peak_bytes,
           CAST(arg_max(working_set_bytes, ts) AS BIGINT) AS working_set_latest_bytes,
           CAST(max(ts) AS TIMESTAMP) AS last_seen
    FROM per_ts
    GROUP BY pod_id
)
SELECT n.node, n.namespace, n.pod, s.working_set_p95_bytes, s.working_set_peak_bytes,
       s.working_set_latest_bytes, s.last_seen
FROM stats AS s
JOIN (SELECT DISTINCT pod_id, node, namespace, pod FROM part) AS n USING (pod_id)
ORDER BY n.node, n.namespace, n.pod
