-- `capplan import FILE` when nothing is stored in the file's time span (capplan.file_ingest): the
-- samples of a time slice of the file (whole UTC days from {base_us}) straight into usage_raw in
-- the stored units (as import_direct.sql) and in the clustered order of each day (the day, then
-- store.CLUSTERED_DAY_ORDER: series-id block, time, series id), sorted on one integer key that
-- holds all four in bit fields: ((day * blocks + block - block_lo) << 23) | (second of the day <<
-- 6) | the id's place in its block (a second of the day < 2^17, a place < 64 = 2^6:
-- capplan.file_ingest KEY_PLACE_BITS, KEY_SECOND_BITS). The sort then moves the key and the two
-- values, not the id and the time as well (a day of L, 2.7 M rows: 0.78 -> 0.57 CPU-s for the sort
-- into a table, bench/RESULTS.md); the id and the time are read back from the key with shifts and
-- masks instead of divisions (DuckDB divides by a runtime constant, ~0.03 CPU-s per division and
-- day of L).
-- Format fields: rows, the file (capplan.file_ingest); cpu_cores, the row r's cores (through a
-- guard raising an error on a value of a check left to this write:
-- capplan.file_ingest.deferrable_checks); series, the file's series (_import_series) with `sb`,
-- their block's and place's part of the key, joined to the row `r` (on the hash of namespace, pod
-- and container when those hashes are distinct, else on the three texts); key, the key of the row
-- `r` from its time and m.sb; block_of_key and day_of_key, the block's (from block_lo) and the
-- day's number in the key k; cpu_units, millicores per core; memory_unit, bytes per KiB; base_us,
-- the first day's UTC midnight in microseconds since the epoch (no row is before it); block,
-- store.CLUSTER_SERIES_BLOCK; block_lo, the first series-id block of the file's series; place_bits,
-- place_mask and second_mask, the key's fields; key_type, UINTEGER when every key fits in it, else
-- BIGINT.
-- Params: $path: the file (and $slice_lo, $slice_hi when rows is a time slice of it).
INSERT INTO usage_raw (series_id, ts, cpu_mcores, memory_kib)
SELECT CAST(({block_of_key} + {block_lo}) * {block} + (k & {place_mask}) AS INTEGER) AS series_id,
       CAST(make_timestamp({base_us} + ({day_of_key} * 86400 + ((k >> {place_bits}) & {second_mask})) * 1000000)
            AS TIMESTAMP_S) AS ts,
       cpu_mcores, memory_kib
FROM (SELECT CAST(k AS BIGINT) AS k, cpu_mcores, memory_kib FROM (
    SELECT CAST({key} AS {key_type}) AS k,
           CAST({cpu_cores} * {cpu_units} AS INTEGER) AS cpu_mcores,
           CAST(r.memory_bytes / {memory_unit} AS INTEGER) AS memory_kib
    FROM {rows} AS r
    JOIN {series}
    ORDER BY k
))
