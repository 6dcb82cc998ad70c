-- One memory peak per container series and aggregation interval, as the VPA recommender keeps
-- them (kubernetes/autoscaler vertical-pod-autoscaler/pkg/recommender/model/container.go,
-- addMemorySample): intervals of $interval_s seconds aligned to the series' first sample in
-- the window; the peak is stamped at the interval's end (WindowEnd).
-- Needs the registered relation _rec_first(series_id, first_s): the series' first sample in the
-- window as epoch seconds. The caller adds interval_end = first + (interval_index + 1) intervals.
-- Params: $start, $end TIMESTAMP; $interval_s DOUBLE.
SELECT u.series_id,
       CAST(floor((epoch(u.ts) - f.first_s) / $interval_s) AS INTEGER) AS interval_index,
       max(u.memory_bytes) AS peak_bytes
FROM usage_samples AS u
JOIN _rec_first AS f USING (series_id)
WHERE u.ts BETWEEN $start AND $end
GROUP BY u.series_id, interval_index
ORDER BY u.series_id, interval_index
