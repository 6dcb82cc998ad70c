-- `capplan import FILE` when nothing is stored in the file's time span (capplan.file_ingest): the
-- samples of a time slice of the file (whole UTC days from {base_us}) straight into usage_raw in
-- the stored units (as import_direct.sql) and in the clustered order of each day (the day, then
-- store.CLUSTERED_DAY_ORDER: series-id block, time, series id), sorted on one integer key that holds
-- all four: ((day * blocks + block - block_lo) * 86400 + second of the day) * block size + the id's
-- place in its block. The sort then moves the key and the two values, not the id and the time as
-- well (a day of L, 2.7 M rows: 0.78 -> 0.57 CPU-s for the sort into a table, bench/RESULTS.md); the
-- id and the time are read back from the key.
-- Format fields: rows, the file (capplan.file_ingest); cpu_units, millicores per core; memory_unit,
-- bytes per KiB; base_us, the first day's UTC midnight in microseconds since the epoch (no row is
-- before it); block, store.CLUSTER_SERIES_BLOCK; block_lo and blocks, the first series-id block of
-- the file's series and how many blocks they span; key_type, INTEGER when every key fits in it,
-- else BIGINT. Params: $path: the file (and $slice_lo, $slice_hi when rows is a time slice of it).
INSERT INTO usage_raw (series_id, ts, cpu_mcores, memory_kib)
SELECT CAST((k // ({block} * 86400) % {blocks} + {block_lo}) * {block} + k % {block} AS INTEGER) AS series_id,
       CAST(make_timestamp({base_us} + (k // ({block} * 86400) // {blocks} * 86400 + k // {block} % 86400) * 1000000)
            AS TIMESTAMP_S) AS ts,
       cpu_mcores, memory_kib
FROM (SELECT CAST(k AS BIGINT) AS k, cpu_mcores, memory_kib FROM (
    SELECT CAST((((epoch_us(r.ts) - {base_us}) // 86400000000 * {blocks} + m.series_id // {block} - {block_lo}) * 86400
                 + (epoch_us(r.ts) - {base_us}) // 1000000 % 86400) * {block} + m.series_id % {block} AS {key_type}) AS k,
           CAST(r.cpu_cores * {cpu_units} AS INTEGER) AS cpu_mcores,
           CAST(r.memory_bytes / {memory_unit} AS INTEGER) AS memory_kib
    FROM {rows} AS r
    JOIN _import_series AS m USING (namespace, pod, container)
    ORDER BY k
))
