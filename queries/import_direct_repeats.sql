-- `capplan import FILE`, after import_direct.sql: in [$lo, $hi], the file's span, which held no
-- sample before the insert (its rows there are the file's, in the order written; a streaming
-- window reads them in that order): repeats, a series and time again right after itself (in the
-- stored order, and in the clustered order of a day, every repeat is such a neighbour), and
-- backwards, rows before the one before them in the order the write assumed.
-- Format field: backwards, the condition on (ts, series_id) against (previous_ts, previous_id) of a
-- row out of the stored order, when the file was taken to come in it; else `false` (a sorted write).
SELECT count(*) FILTER (WHERE series_id = previous_id AND ts = previous_ts) AS repeats,
       count(*) FILTER (WHERE {backwards}) AS backwards
FROM (
    SELECT series_id, ts, lag(series_id) OVER () AS previous_id, lag(ts) OVER () AS previous_ts
    FROM usage_raw
    WHERE ts BETWEEN CAST($lo AS TIMESTAMP_S) AND CAST($hi AS TIMESTAMP_S)
)
