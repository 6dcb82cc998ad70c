-- Advance the high-water marks of many metrics of one source and cluster at once (never moves one
-- back); the collector's per-chunk commit (same rule as store.set_high_water_mark).
INSERT INTO high_water_marks (cluster, source, metric, ts)
SELECT $cluster, $source, unnest($metrics::VARCHAR[]), $ts
ON CONFLICT (cluster, source, metric) DO UPDATE SET ts = greatest(high_water_marks.ts, excluded.ts)
