-- `capplan import FILE`: the ingest gate over a long-format file (rows: the file as
-- capplan.file_ingest reads it), in one pass, summarised per series, node, owner and request/limit values.
-- The spec tables, series_nodes and the bounds by node are built from this summary.
-- Format fields: keys, the grouping columns; bad, every check of capplan.gate OR-ed (a row
-- failing any); unparsed, counts of text that is no time or number, per text column.
-- Params: $ts_limit TIMESTAMP: the latest sample time the gate accepts; $path: the file.
CREATE OR REPLACE TEMP TABLE _import_groups AS
SELECT {keys},
       count(*) AS samples,
       min(ts) AS valid_from,
       max(ts) AS valid_to,
       max(cpu_cores) AS cpu_max,
       max(memory_bytes) AS memory_max,
       count(*) FILTER (WHERE {bad}) AS bad{unparsed}
FROM {rows}
GROUP BY {keys}
