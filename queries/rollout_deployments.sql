-- Deployments as seen at $at (the latest interval in [$at - $tolerance, $at]): desired replicas,
-- rollout strategy and the absolute maxSurge kube-state-metrics reports (NULL = not collected).
-- Params: $at TIMESTAMP, $tolerance INTERVAL.
SELECT namespace, name AS deployment, replicas, strategy, max_surge_pods
FROM workloads
WHERE kind = 'Deployment' AND valid_from <= $at AND valid_to >= $at - $tolerance
QUALIFY row_number() OVER (PARTITION BY namespace, name ORDER BY valid_to DESC, valid_from DESC) = 1
ORDER BY namespace, deployment
