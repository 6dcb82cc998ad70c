"""`vpa`: the Vertical Pod Autoscaler recommender, after kubernetes/autoscaler
vertical-pod-autoscaler/pkg/recommender.

- Histograms (util/histogram_options.go NewExponentialHistogramOptions, FindBucket,
  GetBucketStart; model/aggregations_config.go): exponential buckets, first bucket 0.01 core
  (CPU; recent releases use 0.001) and 1e7 bytes (memory), each 5% wider than the one before,
  up to 1000 cores / 1e12 bytes.
- Decay (util/decaying_histogram.go): a sample's weight doubles every half-life (24h), i.e. a
  sample one day older counts half. Percentiles do not depend on the reference time.
- CPU (model/aggregate_container_state.go addCPUSample): every sample, weight max(request, 0.1).
  Memory (model/container.go addMemorySample): one peak per container and 24h interval, weight 1,
  stamped at the interval's end.
- OOM (model/container.go RecordOOM): memory used = max(request, the interval's peak); the
  interval's peak becomes at least max(used + 100Mi, used x 1.2).
- Estimation (logic/recommender.go CreatePodResourceRecommender, logic/estimator.go): target
  P90, lower bound P50, upper bound P95 (CPU and memory); x(1 + 0.15) safety margin; upper bound
  x(1 + 1/confidence), lower bound x(1 + 0.001/confidence)^-2 with confidence =
  min(history span in days, samples / 1440) (getConfidence); then at least 25m CPU and 250Mi
  memory per pod, split evenly over its containers (GetRecommendedPodResources).
- Histogram.Percentile (util/histogram.go) returns the END of the bucket where the cumulative
  weight reaches the percentile (the start of the last bucket when it is the last one).
The target becomes the request; a limit keeps its current ratio to the request, as the VPA
admission controller does (no current limit: none).
Differences, on purpose: the histograms are built from the stored window at once (VPA streams
samples and garbage-collects aggregates unseen for 8 days; with a 24h half-life that history
weighs next to nothing); the decay reference is the window's end (percentiles do not depend on it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from capplan.analysis.strategies.base import (
    MIB,
    History,
    Needs,
    StrategyParams,
    ceil_bytes,
    ceil_millicores,
    fmt_cpu,
    fmt_mem,
    needed,
    result_frame,
)

NEEDS = Needs(cpu_histogram=True, memory_peaks=True)

# Every value below is VPA's, from kubernetes/autoscaler vertical-pod-autoscaler/pkg/recommender:
HISTOGRAM_GROWTH = 0.05                 # model/aggregations_config.go: HistogramBucketSizeGrowth
CPU_FIRST_BUCKET_CORES = 0.01           # model/aggregations_config.go: first CPU bucket (0.001 in recent releases)
CPU_MAX_CORES = 1000.0                  # model/aggregations_config.go: maxCPU
MEMORY_FIRST_BUCKET_BYTES = 1e7         # model/aggregations_config.go: first memory bucket, 1e7 bytes
MEMORY_MAX_BYTES = 1e12                 # model/aggregations_config.go: maxMemory
HALF_LIFE_SECONDS = 24 * 3600.0         # model/aggregations_config.go: CPU/MemoryHistogramDecayHalfLife
MEMORY_INTERVAL_SECONDS = 24 * 3600.0   # model/aggregations_config.go: MemoryAggregationInterval
MIN_SAMPLE_WEIGHT = 0.1                 # model/aggregations_config.go: minSampleWeight
OOM_BUMP_RATIO = 1.2                    # model/container.go: OOMBumpUpRatio
OOM_MIN_BUMP_BYTES = 100 * MIB          # model/container.go: OOMMinBumpUp (100 MiB)
TARGET_PERCENTILE = 0.9                 # logic/recommender.go: targetCPUPercentile / targetMemoryPercentile
LOWER_PERCENTILE = 0.5                  # logic/recommender.go: lowerBoundCPUPercentile
UPPER_PERCENTILE = 0.95                 # logic/recommender.go: upperBoundCPUPercentile
SAFETY_MARGIN = 0.15                    # logic/recommender.go: --recommendation-margin-fraction default
POD_MIN_CPU_CORES = 0.025               # logic/recommender.go: --pod-recommendation-min-cpu-millicores 25
POD_MIN_MEMORY_BYTES = 250 * MIB        # logic/recommender.go: --pod-recommendation-min-memory-mb 250


@dataclass(frozen=True)
class ExponentialHistogram:
    """VPA's exponential histogram options (util/histogram_options.go)."""

    max_value: float
    first_bucket: float
    ratio: float = 1.0 + HISTOGRAM_GROWTH

    @property
    def num_buckets(self) -> int:
        """ceil(log_ratio(max * (ratio - 1) / first + 1)) + 1."""
        return int(math.ceil(math.log(self.max_value * (self.ratio - 1) / self.first_bucket + 1)
                             / math.log(self.ratio))) + 1

    def find_bucket(self, value: float) -> int:
        """The bucket index of `value` (FindBucket)."""
        if value < self.first_bucket:
            return 0
        bucket = int(math.log(value * (self.ratio - 1) / self.first_bucket + 1) / math.log(self.ratio))
        return min(bucket, self.num_buckets - 1)

    def find_buckets(self, values: np.ndarray) -> np.ndarray:
        """find_bucket for an array (the same float operations, vectorised)."""
        values = np.asarray(values, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            raw = np.log(values * (self.ratio - 1) / self.first_bucket + 1) / np.log(self.ratio)
        buckets = np.where(values < self.first_bucket, 0, np.trunc(np.nan_to_num(raw)))
        return np.minimum(buckets, self.num_buckets - 1).astype(np.int64)

    def bucket_start(self, bucket: int) -> float:
        """first * (ratio^bucket - 1) / (ratio - 1); 0 for the first bucket (GetBucketStart)."""
        if bucket == 0:
            return 0.0
        return self.first_bucket * (self.ratio ** bucket - 1) / (self.ratio - 1)

    def percentile(self, buckets: np.ndarray, weights: np.ndarray, q: float) -> float:
        """Histogram.Percentile: the end of the bucket where the cumulative weight first reaches
        q x total (util/histogram.go); 0 for an empty histogram."""
        dense = np.zeros(self.num_buckets)
        np.add.at(dense, buckets.astype(np.int64), weights)
        total = dense.sum()
        if total <= 0:
            return 0.0
        nonzero = np.nonzero(dense)[0]
        lo, hi = int(nonzero[0]), int(nonzero[-1])
        threshold = q * total
        partial = 0.0
        bucket = lo
        while bucket < hi:
            partial += dense[bucket]
            if partial >= threshold:
                break
            bucket += 1
        if bucket < self.num_buckets - 1:
            return self.bucket_start(bucket + 1)
        return self.bucket_start(bucket)


def percentiles_by_group(hist: pl.DataFrame, options: ExponentialHistogram, qs: tuple[float, ...]) -> pl.DataFrame:
    """ExponentialHistogram.percentile for every group at once: `hist` has group_id, bucket,
    weight (several rows per bucket allowed); one column p<q> per percentile."""
    dense = hist.group_by("group_id", "bucket").agg(pl.col("weight").sum()).filter(pl.col("weight") > 0).sort(
        "group_id", "bucket").with_columns(
        pl.col("weight").cum_sum().over("group_id").alias("cum"), pl.col("weight").sum().over("group_id").alias("total"))
    out = dense.select("group_id").unique()
    last = options.num_buckets - 1
    for q in qs:
        hit = dense.filter(pl.col("cum") >= q * pl.col("total")).group_by("group_id").agg(pl.col("bucket").min().alias("b"))
        # a group whose sum never reaches q x total (float rounding) ends in its last bucket, as the Go loop does
        top = dense.group_by("group_id").agg(pl.col("bucket").max().alias("top"))
        hit = top.join(hit, on="group_id", how="left").with_columns(pl.coalesce("b", "top").alias("b"))
        hit = hit.with_columns(pl.col("b").map_elements(
            lambda b: options.bucket_start(b + 1) if b < last else options.bucket_start(b), return_dtype=pl.Float64
        ).alias(f"p{q}")).select("group_id", f"p{q}")
        out = out.join(hit, on="group_id", how="left")
    return out


CPU_HISTOGRAM = ExponentialHistogram(CPU_MAX_CORES, CPU_FIRST_BUCKET_CORES)
MEMORY_HISTOGRAM = ExponentialHistogram(MEMORY_MAX_BYTES, MEMORY_FIRST_BUCKET_BYTES)


def decay_weight(age_seconds: np.ndarray | float, half_life_seconds: float = HALF_LIFE_SECONDS):
    """2^(-age / half-life): the weight of a sample `age` older than the reference."""
    return np.power(2.0, -np.asarray(age_seconds, dtype=float) / half_life_seconds)


def oom_peak(request_bytes: float | None, interval_peak_bytes: float | None) -> float:
    """The memory sample RecordOOM adds: max(used + 100Mi, used x 1.2), used = max(request, peak)."""
    used = max(request_bytes or 0.0, interval_peak_bytes or 0.0)
    return max(used + OOM_MIN_BUMP_BYTES, used * OOM_BUMP_RATIO)


def confidence(first_ts, last_ts, samples: int) -> float:
    """getConfidence (logic/estimator.go): min(span in days, samples / (60 x 24))."""
    span_days = (last_ts - first_ts).total_seconds() / 86400.0
    return min(span_days, samples / (60.0 * 24.0))


def bounds(base_low: float, base_target: float, base_up: float, conf: float, minimum: float) -> tuple[float, float, float]:
    """Lower bound, target, upper bound from the three percentiles: safety margin, confidence
    multipliers (upper x(1+1/c), lower x(1+0.001/c)^-2), then the per-container minimum."""
    low = base_low * (1 + SAFETY_MARGIN)
    target = base_target * (1 + SAFETY_MARGIN)
    up = base_up * (1 + SAFETY_MARGIN)
    if conf > 0:
        up *= (1 + 1.0 / conf) ** 1.0
        low *= (1 + 0.001 / conf) ** -2.0
    else:
        up, low = math.inf, 0.0
    return max(low, minimum), max(target, minimum), max(up, minimum)


def memory_peaks_with_ooms(peaks: pl.DataFrame, ooms: pl.DataFrame) -> pl.DataFrame:
    """The per-interval memory peaks after RecordOOM: an OOM in an interval raises that interval's
    peak to oom_peak(request, peak). Columns group_id, series_id, interval_end, peak_bytes."""
    if ooms.is_empty() or peaks.is_empty():
        return peaks.select("group_id", "series_id", "interval_index", "interval_end", "peak_bytes")
    first = peaks.group_by("series_id").agg(
        (pl.col("interval_end") - pl.duration(seconds=MEMORY_INTERVAL_SECONDS) * (pl.col("interval_index") + 1))
        .min().alias("first_ts"))
    o = ooms.join(first, on="series_id", how="inner").with_columns(
        ((pl.col("ts") - pl.col("first_ts")).dt.total_seconds() // MEMORY_INTERVAL_SECONDS).cast(pl.Int32).alias("interval_index"))
    table = peaks.select("group_id", "series_id", "interval_index", "interval_end", "peak_bytes").with_columns(
        pl.col("peak_bytes").cast(pl.Float64), pl.col("interval_index").cast(pl.Int32))
    # The usage-based peaks of the OOMs' intervals alone, and the bumps put on by a key column: a
    # dict of every interval's peak and a Python call per interval raised `recommend --strategy vpa
    # --window 90d`'s peak RSS at the bench's L (878,364 intervals, the year file) from 318 to 393
    # MiB while they ran (bench/RESULTS.md, SB).
    keys = ["series_id", "interval_index"]
    usage = table.join(o.select(keys).unique(), on=keys, how="semi")
    lookup = {(r["series_id"], r["interval_index"]): r["peak_bytes"] for r in usage.iter_rows(named=True)}
    bumped: dict[tuple[int, int], float] = {}
    for r in o.iter_rows(named=True):
        key = (r["series_id"], r["interval_index"])
        current = bumped.get(key, lookup.get(key))
        request = r["memory_request_bytes"] if r["memory_request_bytes"] is not None else r["memory_limit_bytes"]
        # RecordOOM uses the usage-based peak, not an earlier OOM peak
        bumped[key] = max(current or 0.0, oom_peak(request, lookup.get(key)))
    if not bumped:
        return table
    # one integer per (series, interval): ids and interval indexes are 32-bit (no overflow, no clash)
    packed = pl.col("series_id").cast(pl.Int64) * 2**32 + pl.col("interval_index").cast(pl.Int64)
    bump = packed.replace_strict([s * 2**32 + i for s, i in bumped], list(bumped.values()), default=None,
                                 return_dtype=pl.Float64)
    return table.with_columns(pl.max_horizontal("peak_bytes", bump).alias("peak_bytes"))


def _limit_like(current_request, current_limit, new_request):
    """Keep the limit's current proportion to the request (VPA's proportional limits)."""
    if current_limit is None or new_request is None:
        return None
    base = current_request if current_request not in (None, 0) else current_limit
    return new_request * current_limit / base if base else None


def recommend(history: History, params: StrategyParams) -> pl.DataFrame:
    """One row per group: VPA target as request, with lower/upper bounds."""
    groups = history.groups
    qs = (LOWER_PERCENTILE, TARGET_PERCENTILE, UPPER_PERCENTILE)
    cpu_p = percentiles_by_group(needed(history.cpu_histogram, "cpu_histogram"), CPU_HISTOGRAM, qs)
    peaks = memory_peaks_with_ooms(needed(history.memory_peaks, "memory_peaks"), history.ooms)
    mem_hist = peaks.select(
        "group_id",
        pl.Series("bucket", MEMORY_HISTOGRAM.find_buckets(peaks["peak_bytes"].to_numpy())),
        pl.Series("weight", decay_weight((history.end - peaks["interval_end"]).dt.total_seconds().to_numpy())),
    ) if not peaks.is_empty() else pl.DataFrame(schema={"group_id": pl.Int64, "bucket": pl.Int64, "weight": pl.Float64})
    mem_p = percentiles_by_group(mem_hist, MEMORY_HISTOGRAM, qs)
    cpu_by_group = {r["group_id"]: r for r in cpu_p.iter_rows(named=True)}
    mem_by_group = {r["group_id"]: r for r in mem_p.iter_rows(named=True)}
    ooms_by_group = history.ooms.group_by("group_id").len() if not history.ooms.is_empty() else None
    oom_counts = dict(ooms_by_group.iter_rows()) if ooms_by_group is not None else {}
    rows = []
    for g in groups.iter_rows(named=True):
        gid = g["group_id"]
        cpu, mem = cpu_by_group.get(gid), mem_by_group.get(gid)
        if cpu is None or mem is None:
            continue  # no usable samples of one resource: no recommendation rather than half of one
        per_container = 1.0 / max(1, g["containers_per_pod"] or 1)
        conf = confidence(g["first_ts"], g["last_ts"], g["samples"])
        q_low, q_target, q_up = (f"p{q}" for q in qs)
        cpu_low, cpu_target, cpu_up = bounds(cpu[q_low], cpu[q_target], cpu[q_up], conf, POD_MIN_CPU_CORES * per_container)
        mem_low, mem_target, mem_up = bounds(mem[q_low], mem[q_target], mem[q_up], conf, POD_MIN_MEMORY_BYTES * per_container)
        cpu_request = ceil_millicores(cpu_target)
        mem_request = ceil_bytes(mem_target)
        reason = (f"vpa: P90 of decaying histograms + 15%: cpu {fmt_cpu(cpu_request)}, memory {fmt_mem(mem_request)}; "
                  f"confidence {conf:.2f} days")
        if oom_counts.get(gid):
            reason += f"; {oom_counts[gid]} OOM kill(s) bumped memory peaks (x1.2, >= +100Mi)"
        rows.append({
            "group_id": gid,
            "cpu_request_cores": cpu_request,
            "cpu_limit_cores": ceil_millicores(_limit_like(g["cpu_request_cores"], g["cpu_limit_cores"], cpu_request)),
            "memory_request_bytes": mem_request,
            "memory_limit_bytes": ceil_bytes(_limit_like(g["memory_request_bytes"], g["memory_limit_bytes"], mem_request)),
            "reason": reason,
            "cpu_lower_bound_cores": cpu_low, "cpu_upper_bound_cores": cpu_up,
            "memory_lower_bound_bytes": mem_low, "memory_upper_bound_bytes": mem_up,
        })
    return result_frame(rows)
