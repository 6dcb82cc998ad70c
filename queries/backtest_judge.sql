-- Judge sizing plans on the samples of (test_start, test_end]: per policy,
--   cpu_slack = 1 - sum(used) / sum(request), cpu_short = sum(max(0, used - request)) / sum(used),
--   mem_slack = 1 - sum(memory used) / sum(memory limit), over samples whose plan has a limit,
--   mem_request_slack = the same against the memory request (samples whose plan has one),
--   oom_container_days = share of container-days (24h periods after test_start) with usage > limit once,
--   throttled_hours = share of container-hours whose mean CPU exceeds the request (a proxy: with a
--     CPU limit at the request those hours would have been throttled; throttling is not collected),
--   over_request_days = share of container-days with memory usage above the memory request once
--     (first in line for eviction under node memory pressure; no request: never),
--   mem_limit_sum = sum over samples of the memory limit, over the containers whose current spec
--     has one (the caller compares policies with it: a limit where there was none is not "more").
-- Sums of CPU cores (and of a request or limit times a count) are taken in fixed point: each term
-- in whole units of 2^-34 ($units = 2^34 per core or byte; a CPU term as a BIGINT, which holds
-- up to 5 x 10^8 cores, a memory term as a HUGEINT), added as integers (their sum is a HUGEINT). A
-- sum of DOUBLEs on several threads adds in another order on every run, and the scores differed in
-- their last digits from one run of `capplan backtest` to the next (the Bitbrains month,
-- 2026-12-03). A REAL core value is a whole number of these units (its last bit is worth at least
-- 2^-33 from 0.001 cores up), so the CPU sums are exact; a difference or a product is rounded once,
-- by at most 2^-35, before it is added: every run adds the same integers.
-- Needs the registered relation
--   _bt_plan(policy, series_id, cpu_request_cores, memory_request_bytes, memory_limit_bytes).
-- Params: $test_start, $test_end TIMESTAMP; $units DOUBLE (capplan.analysis.backtest.JUDGE_UNITS).
WITH hourly AS (
    -- policy-independent: one row per series and hour, so the per-policy work is small
    SELECT series_id,
           CAST(ceil(epoch(ts - $test_start) / 3600) AS INTEGER) - 1 AS hour,
           -- day 0 is (test_start, test_start + 24h], like the window itself
           CAST(ceil(epoch(ts - $test_start) / 86400) AS INTEGER) - 1 AS day,
           sum(CAST(cpu_cores * $units AS BIGINT)) AS cpu_units, max(memory_bytes) AS memory_peak,
           sum(memory_bytes) AS memory_sum,
           count(*) AS n
    FROM usage_samples
    WHERE ts > $test_start AND ts <= $test_end AND series_id IN (SELECT series_id FROM _bt_plan)
    GROUP BY ALL
),
judged AS (
    SELECT p.policy, h.*, CAST(h.cpu_units AS DOUBLE) / $units AS cpu_sum,
           coalesce(p.cpu_request_cores, 0) AS cpu_request_cores, p.memory_request_bytes, p.memory_limit_bytes, c.memory_limit_bytes IS NOT NULL AS limited_now
    FROM hourly AS h JOIN _bt_plan AS p USING (series_id)
    LEFT JOIN _bt_plan AS c ON c.series_id = h.series_id AND c.policy = 'current'
),
short AS (
    -- the shortfall needs every sample: used - request is not additive over an hour
    SELECT p.policy, CAST(sum(CAST(greatest(0, u.cpu_cores - coalesce(p.cpu_request_cores, 0)) * $units AS BIGINT))
                         AS DOUBLE) / $units AS cpu_short_sum
    FROM usage_samples AS u JOIN _bt_plan AS p USING (series_id)
    WHERE u.ts > $test_start AND u.ts <= $test_end
    GROUP BY p.policy
),
days AS (
    SELECT policy, series_id, day, bool_or(memory_peak > memory_limit_bytes) AS oom,
           bool_or(memory_peak > memory_request_bytes) AS over_request
    FROM judged GROUP BY policy, series_id, day
),
totals AS (
    SELECT policy,
           1 - CAST(sum(cpu_units) AS DOUBLE)
               / nullif(CAST(sum(CAST(cpu_request_cores * n * $units AS BIGINT)) AS DOUBLE), 0) AS cpu_slack,
           CAST(sum(cpu_units) AS DOUBLE) / $units AS cpu_used_sum,
           1 - sum(memory_sum) FILTER (WHERE memory_limit_bytes IS NOT NULL)
               / nullif(sum(CAST(memory_limit_bytes * n * $units AS HUGEINT)) / $units, 0) AS mem_slack,
           1 - sum(memory_sum) FILTER (WHERE memory_request_bytes IS NOT NULL)
               / nullif(sum(CAST(memory_request_bytes * n * $units AS HUGEINT)) / $units, 0) AS mem_request_slack,
           CAST(sum(CAST(memory_limit_bytes * n * $units AS HUGEINT)) FILTER (WHERE limited_now) AS DOUBLE)
               / $units AS mem_limit_sum,
           CAST(sum(n) AS BIGINT) AS samples,
           count(DISTINCT series_id) AS containers,
           avg(CASE WHEN cpu_sum / n > cpu_request_cores THEN 1.0 ELSE 0.0 END) AS throttled_hours
    FROM judged GROUP BY policy
),
oom AS (
    SELECT policy, avg(CASE WHEN oom THEN 1.0 ELSE 0.0 END) AS oom_container_days,
           avg(CASE WHEN over_request THEN 1.0 ELSE 0.0 END) AS over_request_days, count(*) AS container_days
    FROM days GROUP BY policy
)
SELECT t.policy, t.cpu_slack, s.cpu_short_sum / nullif(t.cpu_used_sum, 0) AS cpu_short, t.mem_slack,
       o.oom_container_days, t.throttled_hours, t.mem_request_slack, o.over_request_days, t.mem_limit_sum, o.container_days,
       t.samples, t.containers
FROM totals AS t JOIN oom AS o USING (policy) JOIN short AS s USING (policy)
