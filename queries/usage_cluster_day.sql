-- capplan.store.cluster_usage: one UTC day of raw samples ([$lo, $hi], whole seconds) in the
-- clustered order (store.CLUSTERED_ORDER within a day): series ids in blocks of $block, each block's
-- samples in time order, the block's series side by side at each time. The caller deletes the day's
-- rows and inserts these in their place, in one transaction.
-- Params: $lo, $hi TIMESTAMP; $block INTEGER.
SELECT series_id, ts, cpu_mcores, memory_kib
FROM usage_raw
WHERE ts BETWEEN CAST($lo AS TIMESTAMP_S) AND CAST($hi AS TIMESTAMP_S)
ORDER BY series_id // $block, ts, series_id
