-- Advance the high-water marks of many metrics of one source at once (never moves one back);
-- the collector's per-chunk commit (same rule as store.set_high_water_mark).
INSERT INTO high_water_marks (source, metric, ts)
SELECT $source, unnest($metrics::VARCHAR[]), $ts
ON CONFLICT (source, metric) DO UPDATE SET ts = greatest(high_water_marks.ts, excluded.ts)
