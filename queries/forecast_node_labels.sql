-- The latest labels of every node seen in [$start, $end] (node pools are a node label).
-- Params: $start TIMESTAMP, $end TIMESTAMP.
SELECT node, labels
FROM nodes
WHERE valid_from <= $end AND valid_to >= $start
QUALIFY row_number() OVER (PARTITION BY node ORDER BY valid_to DESC, valid_from DESC) = 1
ORDER BY node
