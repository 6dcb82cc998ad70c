-- Each namespace's ResourceQuota hard values seen in [$at - $tolerance, $at], one row per
-- quota and resource (the latest interval).
-- Params: $at TIMESTAMP, $tolerance INTERVAL.
SELECT namespace, quota, resource, hard
FROM resource_quotas
WHERE valid_from <= $at AND valid_to >= $at - $tolerance
QUALIFY row_number() OVER (PARTITION BY namespace, quota, resource ORDER BY valid_to DESC, valid_from DESC) = 1
ORDER BY namespace, quota, resource
