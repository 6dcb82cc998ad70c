-- `capplan import FILE`: the same container and time twice in the staged samples (sorted, so such
-- rows are neighbours; a streaming window reads them in order): clashes (different values: the
-- file contradicts itself) and repeats (all of them, equal values included).
SELECT count(*) FILTER (WHERE same AND values_hash <> previous_hash) AS clashes,
       count(*) FILTER (WHERE same) AS repeats
FROM (
    SELECT series_id = lag(series_id) OVER () AND ts = lag(ts) OVER () AS same,
           values_hash,
           lag(values_hash) OVER () AS previous_hash
    FROM _staged_usage
)
