-- capplan.store.insert_staged_usage, when samples are stored in the staged rows' span: the staged
-- rows (_staged_usage) whose series and time is not stored yet, in the stored units and order, as
-- the temporary table _new_usage (inserted into usage_raw next; its span is what the write marks
-- unclustered). An explicit ANTI JOIN: a correlated NOT EXISTS plans as a delim join, twice as slow.
-- Format field: order, store.STORED_ORDER. Params: $lo, $hi TIMESTAMP: the stored samples' range
-- overlapping the staged ones.
CREATE OR REPLACE TEMP TABLE _new_usage AS
SELECT s.series_id, CAST(s.ts AS TIMESTAMP_S) AS ts, s.cpu_mcores, s.memory_kib
FROM _staged_usage AS s
ANTI JOIN (SELECT series_id, CAST(ts AS TIMESTAMP) AS ts FROM usage_raw
           WHERE ts BETWEEN $lo AND $hi) AS u
    USING (series_id, ts)
ORDER BY {order}
