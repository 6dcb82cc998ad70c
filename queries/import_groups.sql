-- `capplan import FILE`: a long-format file (rows: the file as capplan.file_ingest reads it) in
-- one pass, summarised per series, node, owner and request/limit values: what the ingest gate's
-- checks are judged on.
-- The spec tables, series_nodes and the bounds by node are built from this summary.
-- Format fields: rows, the file; keys, the grouping columns; extremes, the minimum and maximum
-- of the time and of every number (the gate's checks are judged on them: capplan.file_ingest);
-- unparsed, per text column, the texts that are no time or number (and, while they are not known
-- yet, how many text times have a UTC offset).
-- Params: $path: the file.
CREATE OR REPLACE TEMP TABLE _import_groups AS
SELECT {keys},
       count(*) AS samples,
       min(ts) AS valid_from,
       max(ts) AS valid_to,
       count(ts) AS timed{extremes}{unparsed}
FROM {rows}
GROUP BY {keys}
