-- capplan store, schema version 9: raw samples clustered in series-id blocks per UTC day (issue 14).
--
-- usage_raw's rows arrive in time order (a collector's hour holds every series), so each of its row
-- groups held an hour of all series and a per-series query over part of the series (recommend's
-- percentile parts) read every row of the window. Each complete UTC day is now rewritten once in
-- capplan.store.CLUSTERED_ORDER (blocks of series ids, time order within a block): a row group holds
-- a day of a few hundred series, and a range of series ids reads its own row groups.
--   usage_raw_unclustered  time ranges of raw samples written since their day was last put in that
--                          order (every usage write records its rows' span, in its transaction);
--                          capplan.store.cluster_usage rewrites the complete days among them, a day
--                          per transaction, and removes them. It says where the file's physical
--                          order may differ from the clustered one; no answer depends on it.
-- No cluster column: usage_raw holds every cluster's samples in one physical order (a series reaches
-- its cluster through series.cluster), and the ranges are of that order, not of a cluster's data.
-- The samples already stored were written in time order: their whole span is recorded, so the first
-- writer after the upgrade (or any writable open) clusters them, a day at a time.

CREATE TABLE usage_raw_unclustered (
    lo TIMESTAMP NOT NULL,
    hi TIMESTAMP NOT NULL
);

INSERT INTO usage_raw_unclustered
SELECT CAST(min(ts) AS TIMESTAMP), CAST(max(ts) AS TIMESTAMP) FROM usage_raw
HAVING count(*) > 0;
