-- `capplan import FILE`, refusing a file that gives one container and time two values: every row
-- of such a (series, time), with its line (only run when there is one).
-- Format field: lines, the file with each row's line (capplan.file_ingest.LongFile.lines).
CREATE OR REPLACE TEMP TABLE _import_clash_rows AS
WITH clashing AS (
    SELECT DISTINCT series_id, ts
    FROM (
        SELECT series_id, ts,
               series_id = lag(series_id) OVER () AND ts = lag(ts) OVER () AS same,
               values_hash <> lag(values_hash) OVER () AS differs
        FROM _staged_usage
    )
    WHERE same AND differs
)
SELECT r.line, r.namespace, r.pod, r.container, r.ts, r.cpu_cores, r.memory_bytes, c.series_id, c.ts AS key_ts
FROM {lines} AS r
JOIN _import_series AS m USING (namespace, pod, container)
JOIN clashing AS c ON c.series_id = m.series_id AND c.ts = date_trunc('second', r.ts)
