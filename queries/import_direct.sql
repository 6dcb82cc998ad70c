-- `capplan import FILE` when nothing is stored in the file's time span (capplan.file_ingest): the
-- file's samples straight into usage_raw, in the stored units, as import_stage.sql stages them (a
-- cast to INTEGER rounds half to even, as round_even does) but without the staged copy; sorted into
-- the stored order unless the file comes in it. The same container and time twice, and rows that
-- were not in order after all, are looked for afterwards (import_direct_repeats.sql).
-- Format fields: rows, the file (capplan.file_ingest); cpu_cores, the row r's cores (through a
-- guard raising an error on a value of a check left to this write:
-- capplan.file_ingest.deferrable_checks); cpu_units, millicores per core; memory_unit, bytes per
-- KiB; order, `ORDER BY` the stored order, or nothing. Params: $path: the file (and $slice_lo,
-- $slice_hi when rows is a time slice of it).
INSERT INTO usage_raw (series_id, ts, cpu_mcores, memory_kib)
SELECT m.series_id,
       CAST(date_trunc('second', r.ts) AS TIMESTAMP_S) AS ts,
       CAST({cpu_cores} * {cpu_units} AS INTEGER) AS cpu_mcores,
       CAST(r.memory_bytes / {memory_unit} AS INTEGER) AS memory_kib
FROM {rows} AS r
JOIN _import_series AS m USING (namespace, pod, container)
{order}
