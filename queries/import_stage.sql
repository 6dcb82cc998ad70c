-- `capplan import FILE`: the file's samples in the stored units (whole seconds, millicores and KiB,
-- rounded half to even as the collector's writer does: queries/schema/003_compact_storage.sql) and
-- the stored order (capplan.store.STORED_ORDER). values_hash: the values as read, so that the same
-- container and time twice with different values is found (import_repeats.sql).
-- Format fields: rows, the file (capplan.file_ingest); cpu_units, millicores per core; memory_unit,
-- bytes per KiB; order, the stored order. Params: $path: the file.
CREATE OR REPLACE TEMP TABLE _staged_usage AS
SELECT m.series_id,
       date_trunc('second', r.ts) AS ts,
       CAST(round_even(r.cpu_cores * {cpu_units}, 0) AS INTEGER) AS cpu_mcores,
       CAST(round_even(r.memory_bytes / {memory_unit}, 0) AS INTEGER) AS memory_kib,
       hash(r.cpu_cores, r.memory_bytes) AS values_hash
FROM {rows} AS r
JOIN _import_series AS m USING (namespace, pod, container)
ORDER BY {order}
