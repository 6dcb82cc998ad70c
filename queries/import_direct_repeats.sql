-- `capplan import FILE`, after import_direct.sql: in [$lo{part}, $hi{part}], a part of the file's
-- span (which held no sample before the insert: its rows there are the file's, in the order
-- written; a streaming window reads them in that order): repeats, a series and time again right
-- after itself (in the stored order, and in the clustered order of a day, every repeat is such a
-- neighbour), and backwards, rows before the one before them in the order the write assumed.
-- capplan.file_ingest.write_staged cuts the span into parts of whole UTC days, one per DuckDB thread,
-- and adds up this query over them (UNION ALL): a series and time repeated are in one day, and
-- are neighbours there too; a write taken to come in the stored order is of one day alone, so its
-- backwards rows are all in one part. One streaming window runs on one thread: over the 10 days of
-- the L Parquet, parts made the check 0.105-0.116 -> 0.042-0.044 s on two threads (0.083 CPU-s).
-- Format fields: part, the part's number (its parameters); backwards, the condition on (ts,
-- series_id) against (previous_ts, previous_id) of a row out of the stored order, when the file
-- was taken to come in it; else `false` (a sorted write).
SELECT count(*) FILTER (WHERE series_id = previous_id AND ts = previous_ts) AS repeats,
       count(*) FILTER (WHERE {backwards}) AS backwards
FROM (
    SELECT series_id, ts, lag(series_id) OVER () AS previous_id, lag(ts) OVER () AS previous_ts
    FROM usage_raw
    WHERE ts BETWEEN CAST($lo{part} AS TIMESTAMP_S) AND CAST($hi{part} AS TIMESTAMP_S)
)
