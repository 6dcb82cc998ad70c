-- Judge sizing plans on the samples of (test_start, test_end]: per policy,
--   cpu_slack = 1 - sum(used) / sum(request), cpu_short = sum(max(0, used - request)) / sum(used),
--   mem_slack = 1 - sum(memory used) / sum(memory limit), over samples whose plan has a limit,
--   oom_container_days = share of container-days (24h periods after test_start) with usage > limit once.
-- Needs the registered relation _bt_plan(policy, series_id, cpu_request_cores, memory_limit_bytes).
-- Params: $test_start, $test_end TIMESTAMP.
WITH judged AS (
    SELECT p.policy, u.series_id,
           -- day 0 is (test_start, test_start + 24h], like the window itself
           CAST(ceil(epoch(u.ts - $test_start) / 86400) AS INTEGER) - 1 AS day,
           u.cpu_cores, coalesce(p.cpu_request_cores, 0) AS cpu_request_cores,
           u.memory_bytes, p.memory_limit_bytes
    FROM usage_samples AS u
    JOIN _bt_plan AS p USING (series_id)
    WHERE u.ts > $test_start AND u.ts <= $test_end
),
days AS (
    SELECT policy, series_id, day, bool_or(memory_bytes > memory_limit_bytes) AS oom
    FROM judged GROUP BY policy, series_id, day
),
totals AS (
    SELECT policy,
           1 - sum(cpu_cores) / nullif(sum(cpu_request_cores), 0) AS cpu_slack,
           sum(greatest(0, cpu_cores - cpu_request_cores)) / nullif(sum(cpu_cores), 0) AS cpu_short,
           1 - sum(memory_bytes) FILTER (WHERE memory_limit_bytes IS NOT NULL)
               / nullif(sum(memory_limit_bytes), 0) AS mem_slack,
           count(*) AS samples,
           count(DISTINCT series_id) AS containers
    FROM judged GROUP BY policy
),
oom AS (
    SELECT policy, avg(CASE WHEN oom THEN 1.0 ELSE 0.0 END) AS oom_container_days, count(*) AS container_days
    FROM days GROUP BY policy
)
SELECT t.policy, t.cpu_slack, t.cpu_short, t.mem_slack, o.oom_container_days, o.container_days, t.samples, t.containers
FROM totals AS t JOIN oom AS o USING (policy)
