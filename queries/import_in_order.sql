-- `capplan import FILE`: of the file's first rows (rows: the first lines of the file with their
-- line, capplan.file_ingest.in_order), how many are not after the row before them in the stored
-- order (time in whole seconds, then series id): none, and the file is taken to be in that order.
-- Format field: rows. Params: $path: the file.
SELECT count(*) FILTER (WHERE ts < previous_ts OR (ts = previous_ts AND series_id <= previous_id))
FROM (
    SELECT date_trunc('second', r.ts) AS ts, m.series_id,
           lag(date_trunc('second', r.ts)) OVER (ORDER BY r.line) AS previous_ts,
           lag(m.series_id) OVER (ORDER BY r.line) AS previous_id
    FROM {rows} AS r
    JOIN _import_series AS m USING (namespace, pod, container)
)
