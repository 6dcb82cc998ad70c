"""`capplan recommend`: right-sized requests and limits per workload and container.

Flow: load_history() aggregates the window in DuckDB (queries/recommend_*.sql: per-series
percentiles and peaks, the VPA CPU histogram, daily memory peaks) and rolls series up to
workloads (pod -> ReplicaSet -> Deployment, Job -> CronJob, StatefulSet, DaemonSet, bare pods
by name); a strategy (capplan.analysis.strategies) turns that History into sizes; build_rows()
adds what users act on: HPA guard, too-little-history guard, severity (KRR's thresholds), QoS
before/after, change x pods, savings.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime, timedelta

import duckdb
import numpy as np
import polars as pl

from capplan import store
from capplan.analysis import real_quantiles
from capplan.analysis.qos import qos_class
from capplan.analysis.rollup_span import raw_only, rollup_span, stored_bounds
from capplan.analysis.series_parts import PERCENTILE_SAMPLES_PER_PART, owned, run_parts, samples_summary
from capplan.analysis.strategies import DEFAULT_STRATEGY, get_strategy
from capplan.analysis.strategies import vpa as vpa_strategy
from capplan.analysis.strategies.base import GIB, MIB, History, Needs, StrategyParams
from capplan.errors import NoDataError

GROUP_KEYS = ["namespace", "owner_kind", "owner_name", "container"]
WORKLOAD_KEYS = ["namespace", "owner_kind", "owner_name"]
ALIVE_TOLERANCE = timedelta(minutes=15)
# The VPA histogram looks the bucket of a CPU value up in a list of one entry per millicore up to the
# window's largest value (queries/recommend_cpu_histogram_stored.sql); DuckDB copies that list for
# every chunk of 2,048 rows, so it stops at 64 cores (128 KiB; bench L's largest value, 8.6 cores,
# took 2.8 s against 4.5 s for the formula per sample, and a list to 1,000 cores 30 s); values above
# take the formula.
LUT_MAX_MCORES = 65_535
# DuckDB's memory limit while recommend aggregates (store.bounded_memory): its hash tables are small
# (per series, per series and VPA bucket, per series and day of a day's slice) and the percentiles'
# states live outside DuckDB's limit, so what the limit bounds is mostly the pool of blocks already
# read. 48 MiB instead of the store's 128: peak RSS at the bench's L simple 604-615 -> 505-513 MiB,
# vpa 479 -> 411, auto 623 -> 598, at M 17-26 MiB less, no load ran out of it (each strategy at M and
# L, the year file's 90 days; bench/RESULTS.md, issue 14, RS). Running out would only run the load
# again at the full limit (store.bounded_memory).
MEMORY_LIMIT_BYTES = 48 * 2**20
STALE_DAYS = 1.0  # a workload last seen this long before the window's end is flagged

# CONTRACT.md `recommend` columns, in order; more follow.
CONTRACT_COLUMNS = [
    "namespace", "owner_kind", "owner_name", "container", "pods",
    "cpu_request_current", "cpu_request_recommended", "cpu_limit_current", "cpu_limit_recommended",
    "memory_request_current", "memory_request_recommended", "memory_limit_current", "memory_limit_recommended",
    "severity", "reason",
]
EXTRA_COLUMNS = [
    "strategy", "qos_class_current", "qos_class_recommended", "cpu_request_change_cores",
    "memory_request_change_bytes", "cpu_savings_cores", "memory_savings_gib", "savings_per_hour",
    "history_days", "samples", "confidence_days", "hpa_metrics",
]
SEVERITY_ORDER = {"critical": 4, "warning": 3, "ok": 2, "good": 1, "unknown": 0}


# --- loading -------------------------------------------------------------------------------

def series_map(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime,
                namespaces: list[str] | None) -> pl.DataFrame:
    """The workload container series seen in [start, end] (of `namespaces`, when given): the
    identity a recommendation and a backtest's judged plan are keyed by."""
    frame = store.query(con, "recommend_series", {"start": start, "end": end})
    if namespaces:
        frame = frame.filter(pl.col("namespace").is_in(namespaces))
    return frame


def _query(con: duckdb.DuckDBPyConnection, name: str, params: dict) -> pl.DataFrame:
    """Run the per-sample aggregate `name`: on DuckDB its `_stored` twin (the same columns and
    values, read from the stored integer units instead of the usage_samples view); another engine
    (Spark, over the lake) runs `name` itself."""
    if store.engine_for(name) is not None:
        return store.query(con, name, _used(name, params))
    if name in REAL_PERCENTILES:
        return _real_percentiles(con, name, params)
    stored = f"{name}_stored"
    return store.query(con, stored, _used(stored, {**params, **stored_bounds(params["start"], params["end"])}))


# The per-series percentile aggregates whose `_stored` twin returns integer quantiles of millicores
# (cpu_values, cpu_levels) for capplan.analysis.real_quantiles to turn into the view's REAL ones:
# the REAL column each gives and its quantile levels.
REAL_PERCENTILES: dict[str, tuple[str, Callable[[dict], list[float]]]] = {
    "recommend_series_stats": ("cpu_q", lambda p: [p["cpu_q"], 0.90, 0.95, 0.99]),
    "recommend_series_percentile": ("cpu_pq_cores", lambda p: [p["cpu_q"]]),
}
# Their one `_stored` twin: integer quantiles at the levels asked, the rest the same for both.
REAL_PERCENTILES_STORED = "recommend_series_stats_stored"


def _real_percentiles(con: duckdb.DuckDBPyConnection, name: str, params: dict) -> pl.DataFrame:
    """`name`'s frame from the `_stored` twin's integer quantiles (REAL_PERCENTILES_STORED), the REAL
    percentiles exactly what quantile_cont of the view's REAL cores gives; a series they cannot be
    told exactly for (real_quantiles: more than ~500,000 samples, huge values) takes them from the
    view-based `name` itself."""
    column, qs_of = REAL_PERCENTILES[name]
    qs = qs_of(params)
    # each level asked once: auto's $cpu_q is one of p90, p95, p99 (12 levels -> 9: bench L, the
    # percentile parts' CPU 2.3 -> 2.1 s); every answer is an order statistic, whatever else is asked
    distinct = list(dict.fromkeys(qs))
    stored = REAL_PERCENTILES_STORED
    frame = store.query(con, stored, _used(stored, {
        **params, **stored_bounds(params["start"], params["end"]), "levels": real_quantiles.levels(distinct)}))
    width = 3 * len(distinct)
    answers = np.column_stack([frame["cpu_levels"].list.get(i, null_on_oob=True).cast(pl.Float64)
                               .fill_null(np.nan).to_numpy() for i in range(width)]) if frame.height else np.zeros((0, width))
    real, ok = real_quantiles.from_integer(frame["cpu_values"].to_numpy(), answers, distinct)
    real = real[:, [distinct.index(q) for q in qs]]
    # (a 2-D array becomes an Array column, cast to the List the view-based query gives: the same
    # values as from real.tolist(), which built one Series per row, 0.12-0.27 s at the bench's L)
    values = (pl.Series(column, real).cast(pl.List(pl.Float32)) if len(qs) > 1
              else pl.Series(column, real[:, 0], dtype=pl.Float32))
    has_values = frame["cpu_values"] > 0
    out = frame.with_columns(pl.when(has_values).then(values).alias(column)).select(
        "series_id", "samples", "first_ts", "last_ts", column, "cpu_max_cores", "memory_max_bytes")
    if not ok.all():
        inexact = frame.filter(pl.Series(~ok))["series_id"]
        # the view-based query takes every `parts`-th series, not this part's range: each of those
        # parts in turn (memory bounded as before), keeping this part's inexact series
        direct = pl.concat([store.query(con, name, _used(name, {**params, "part": part})).filter(
            pl.col("series_id").is_in(inexact.implode())) for part in range(params.get("parts", 1))])
        out = out.update(direct.select("series_id", column), on="series_id")
    return out


def _used(name: str, params: dict) -> dict:
    """The parameters queries/NAME.sql uses (DuckDB refuses the others)."""
    code = re.sub(r"--[^\n]*", "", store.load_sql(name))
    return {k: v for k, v in params.items() if re.search(rf"\${k}\b", code)}


def _interval_stats(con: duckdb.DuckDBPyConnection, name: str, start: datetime, end: datetime,
                    origin: datetime) -> pl.DataFrame:
    """The per-series, per-interval aggregate `name` (recommend_memory_peaks, recommend_daily_stats)
    over [start, end], with _rec_first registered. On DuckDB its `_stored` twin runs one interval
    length of time at a time, slices aligned to `origin` (the earliest first sample): a slice holds
    at most two intervals of each series, and the hash table of ~2 groups per series stays small,
    where the whole window's (a group per series and day) made this the costliest part of `vpa`
    (bench L: 5.5 s of CPU). The slices' peaks, sums and counts are merged to the same columns
    (the mean CPU is the sum over the count, as DuckDB's avg). A slice without rolled-up samples
    reads usage_raw alone (store.query's raw, capplan.analysis.rollup_span)."""
    interval_s = vpa_strategy.MEMORY_INTERVAL_SECONDS
    if store.engine_for(name) is not None:
        return store.query(con, name, {"start": start, "end": end, "interval_s": interval_s})
    bounds = stored_bounds(start, end)
    interval = timedelta(seconds=interval_s)
    step = math.floor((bounds["lo"] - origin) / interval)
    rollups = rollup_span(con, bounds["lo"], bounds["hi"])
    frames = []
    while origin + step * interval <= bounds["hi"]:
        lo = max(bounds["lo"], origin + step * interval)
        hi = min(bounds["hi"], origin + (step + 1) * interval - timedelta(seconds=1))
        frames.append(owned(store.query(con, f"{name}_stored", {"lo": lo, "hi": hi, "interval_s": interval_s},
                                         raw=raw_only(rollups, lo, hi))))
        step += 1
    # what DuckDB's allocator kept of the slices' hash tables goes back before the merge (bench L,
    # auto: peak RSS 326-328 -> 312-319 MiB)
    store.give_back_freed(con)
    return _merge_slices(pl.concat(frames))


def _merge_slices(rows: pl.DataFrame) -> pl.DataFrame:
    """_interval_stats' slices (`rows`, all of them) merged per series and interval, sorted by both:
    the peak is the largest (NULL: none), the mean CPU the summed CPU over the summed count (NULL
    without a CPU value, as DuckDB's avg). In numpy, sorted: a polars group_by of the bench's L month
    (305,000 slice rows) raised recommend auto's RSS by ~80 MiB (265 -> 345 MiB), which polars'
    allocator then kept for the rest of the run (peak 319 MiB this way); numpy's arrays go back to
    the OS when freed. An interval is as long as a slice, so it spans at most two slices: a sum is
    of at most two values, the same in any order."""
    ids = rows["series_id"].to_numpy()
    index = rows["interval_index"].to_numpy()
    order = np.lexsort((index, ids))
    ids, index = ids[order], index[order]
    # the first row of each (series, interval); none without rows
    starts = np.flatnonzero(np.concatenate(([ids.size > 0], (ids[1:] != ids[:-1]) | (index[1:] != index[:-1]))))
    no_peak = -1  # peaks are bytes, never negative
    peak: np.ndarray = (np.maximum.reduceat(rows["peak_bytes"].fill_null(no_peak).to_numpy()[order], starts)
                        if starts.size else np.zeros(0, dtype=np.int64))
    merged = pl.DataFrame({"series_id": ids[starts], "interval_index": index[starts]}).with_columns(
        pl.Series("peak_bytes", peak, dtype=rows.schema["peak_bytes"]))
    merged = merged.with_columns(pl.when(pl.col("peak_bytes") != no_peak).then("peak_bytes").alias("peak_bytes"))
    if "cpu_sum_cores" in rows.columns:
        cpu_sum = rows["cpu_sum_cores"].fill_null(0.0).to_numpy()[order]
        cpu_samples = rows["cpu_samples"].to_numpy()[order]
        with np.errstate(divide="ignore", invalid="ignore"):
            mean: np.ndarray = (np.add.reduceat(cpu_sum, starts) / np.add.reduceat(cpu_samples, starts)
                                if starts.size else np.zeros(0))
        # no CPU value in the interval: avg is NULL, not 0/0
        merged = merged.with_columns(pl.Series("cpu_mean_cores", mean, dtype=pl.Float64)).with_columns(
            pl.when(pl.col("cpu_mean_cores").is_finite()).then("cpu_mean_cores").alias("cpu_mean_cores"))
    return merged


def _in_parts(con: duckdb.DuckDBPyConnection, name: str, params: dict) -> pl.DataFrame:
    """Run a per-series percentile query over parts of the series, one after another: an exact
    percentile keeps every value of a group in memory, so parts bound the peak memory (about
    PERCENTILE_SAMPLES_PER_PART values at a time; series_parts.run_parts). On DuckDB a part is a
    range of series ids cut at the stored blocks of series (series_parts.id_ranges), whose row
    groups the zone maps let each scan read alone; the view-based queries (the check of inexact REAL percentiles, tests) take
    every `parts`-th series instead: each way, the parts cover every series once."""
    if store.engine_for(name) is not None:  # another engine (Spark) bounds its own memory: one run
        return store.query(con, name, {**params, "parts": 1, "part": 0})
    return run_parts(con, params["start"], params["end"], lambda part: _query(con, name, {**params, **part._asdict()}),
                     PERCENTILE_SAMPLES_PER_PART)


def load_history(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, needs: Needs,
                 params: StrategyParams, namespaces: list[str] | None = None) -> History:
    """Aggregate [start, end] into a History for the strategies (all heavy lifting in SQL)."""
    smap = series_map(con, start, end, namespaces)
    cpu_hist = None
    if needs.cpu_histogram:
        # one scan: the histogram per series and bucket also gives each series' count and span
        hist = vpa_strategy.CPU_HISTOGRAM
        cpu_hist = _query(con, "recommend_cpu_histogram", {
            "start": start, "end": end, "first_bucket": hist.first_bucket, "ratio": hist.ratio,
            "num_buckets": hist.num_buckets, "half_life_s": vpa_strategy.HALF_LIFE_SECONDS,
            "cap_mcores": min(samples_summary(con, start, end)[1], LUT_MAX_MCORES)})
        stats = cpu_hist.group_by("series_id").agg(
            pl.col("samples").sum(), pl.col("first_ts").min(), pl.col("last_ts").max(),
            pl.col("cpu_max_cores").max(), pl.lit(None, pl.Float64).alias("memory_max_bytes"))
    elif needs.full_stats:
        stats = _in_parts(con, "recommend_series_stats", {
            "start": start, "end": end, "cpu_q": params.cpu_percentile / 100.0})
        stats = stats.with_columns(
            pl.col("cpu_q").list.get(0).alias("cpu_pq_cores"), pl.col("cpu_q").list.get(1).alias("cpu_p90_cores"),
            pl.col("cpu_q").list.get(2).alias("cpu_p95_cores"), pl.col("cpu_q").list.get(3).alias("cpu_p99_cores"),
        ).drop("cpu_q")
    elif needs.cpu_percentile:
        stats = _in_parts(con, "recommend_series_percentile", {
            "start": start, "end": end, "cpu_q": params.cpu_percentile / 100.0})
    else:
        stats = _query(con, "recommend_series_stats_light", {"start": start, "end": end})
    series = smap.join(stats, on="series_id", how="inner").with_columns(
        pl.col("series_id").cast(pl.Int64), pl.col("memory_max_bytes").cast(pl.Float64))
    if series.is_empty():
        raise NoDataError(f"no usage samples between {start:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M}"
                          + (f" in namespace(s) {', '.join(namespaces)}" if namespaces else ""))
    groups_keys = series.select(GROUP_KEYS).unique().sort(GROUP_KEYS).with_row_index("group_id").with_columns(
        pl.col("group_id").cast(pl.Int64))
    series = series.join(groups_keys, on=GROUP_KEYS, how="left")
    per_workload = series.filter(~pl.col("init_container") | pl.col("restartable")).group_by(WORKLOAD_KEYS).agg(
        pl.col("container").n_unique().alias("containers_per_pod"))
    alive_from = end - ALIVE_TOLERANCE
    groups = series.sort("last_ts").group_by("group_id").agg(
        *[pl.col(k).first() for k in GROUP_KEYS],
        pl.col("samples").sum(), pl.col("first_ts").min(), pl.col("last_ts").max(),
        pl.col("pod").n_unique().alias("pods_seen"),
        pl.col("pod").filter((pl.col("pod_seen_to") >= alive_from) & (pl.col("last_ts") >= alive_from))
        .n_unique().alias("pods_alive"),
        (pl.col("last_ts") - pl.col("first_ts")).dt.total_seconds().sum().alias("_pod_seconds"),
        pl.col("init_container").last(), pl.col("restartable").last(),
        pl.col("spec_known").last() if "spec_known" in series.columns else pl.lit(True).alias("spec_known"),
        # current spec: the most recently seen pod's
        pl.col("cpu_request_cores").last(), pl.col("cpu_limit_cores").last(),
        pl.col("memory_request_bytes").last().cast(pl.Float64), pl.col("memory_limit_bytes").last().cast(pl.Float64),
    ).join(per_workload, on=WORKLOAD_KEYS, how="left").with_columns(
        pl.col("containers_per_pod").fill_null(1),
        # replicas: the pods running at the end; none (a CronJob between runs): mean concurrency
        pl.when(pl.col("pods_alive") > 0).then(pl.col("pods_alive").cast(pl.Float64))
        .when((pl.col("last_ts") - pl.col("first_ts")).dt.total_seconds() > 0).then(
            (pl.col("_pod_seconds") / (pl.col("last_ts") - pl.col("first_ts")).dt.total_seconds()).ceil())
        .otherwise(1.0).clip(1.0, None).cast(pl.Int64).alias("pods"),
    ).drop("_pod_seconds").sort("group_id")
    history = History(start=start, end=end, groups=groups, series=series)
    history.ooms = _ooms(con, start, end, series)
    if cpu_hist is not None:
        weights = series.select("series_id", "group_id", pl.max_horizontal(
            pl.col("cpu_request_cores").fill_null(0.0), pl.lit(vpa_strategy.MIN_SAMPLE_WEIGHT)).alias("cpu_weight"))
        history.cpu_histogram = cpu_hist.with_columns(pl.col("series_id").cast(pl.Int64)).join(
            weights, on="series_id", how="inner").group_by("group_id", "bucket").agg(
            (pl.col("decayed") * pl.col("cpu_weight")).sum().alias("weight")).sort("group_id", "bucket")
    if needs.memory_peaks:
        first = series.select("series_id", "first_ts")
        origin = first["first_ts"].min()
        assert isinstance(origin, datetime)  # series is never empty here (NoDataError above)
        # staged without pyarrow (store.staged_table): `recommend` need not import it
        # series_id as the store's INTEGER: the join with the samples then casts no key (bench L,
        # auto's daily statistics over 5 days: 0.92 -> 0.81 CPU-s)
        with store.staged_table(con, "_rec_first", first.select(
                pl.col("series_id").cast(pl.Int32),
                (pl.col("first_ts").dt.epoch("us").cast(pl.Float64) / 1e6).alias("first_s"))):
            peaks = _interval_stats(con, "recommend_daily_stats" if needs.daily_cpu else "recommend_memory_peaks",
                                    start, end, origin)
        history.memory_peaks = _with_series(peaks, series, timedelta(seconds=vpa_strategy.MEMORY_INTERVAL_SECONDS))
        del peaks
        if cpu_hist is not None:  # the histogram scan has no memory: take the peak of the peaks
            peak = history.memory_peaks.group_by("series_id").agg(pl.col("peak_bytes").max().cast(pl.Float64))
            history.series = series.drop("memory_max_bytes").join(peak, on="series_id", how="left").rename(
                {"peak_bytes": "memory_max_bytes"})
    return history


def _with_series(peaks: pl.DataFrame, series: pl.DataFrame, interval: timedelta) -> pl.DataFrame:
    """The intervals of `peaks` (series_id, interval_index, peak_bytes, ...; those with a peak) of
    the series in `series`, in their order, with the series' group_id and interval_end = its
    first_ts + (interval_index + 1) intervals: looked up by series id in numpy arrays. A polars join
    held its hash table and both sides' gathered columns besides the output (bench L year, vpa
    --window 90d: RSS +54 MiB while it ran, the run's peak)."""
    peaks = peaks.filter(pl.col("peak_bytes").is_not_null())
    ids = peaks["series_id"].to_numpy()
    known = series["series_id"].to_numpy()
    size = int(max(ids.max(initial=0), known.max(initial=0))) + 1
    group_of = np.full(size, -1, dtype=np.int64)
    group_of[known] = series["group_id"].to_numpy()
    first_us_of = np.zeros(size, dtype=np.int64)
    first_us_of[known] = series["first_ts"].dt.epoch("us").to_numpy()
    groups = group_of[ids]
    kept = groups >= 0
    if not kept.all():  # (a series the window's map left out: not in the History)
        peaks, ids, groups = peaks.filter(pl.Series(kept)), ids[kept], groups[kept]
    interval_us = interval // timedelta(microseconds=1)
    ends = first_us_of[ids] + interval_us * (peaks["interval_index"].to_numpy().astype(np.int64) + 1)
    return peaks.with_columns(pl.col("series_id").cast(pl.Int64), pl.Series("group_id", groups),
                              pl.Series("interval_end", ends).cast(pl.Datetime("us")).cast(series.schema["first_ts"]))


def _ooms(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, series: pl.DataFrame) -> pl.DataFrame:
    raw = store.query(con, "recommend_ooms", {"start": start, "end": end})
    schema = pl.Schema({"series_id": pl.Int64(), "group_id": pl.Int64(), "ts": pl.Datetime("us"),
                        "memory_request_bytes": pl.Float64(), "memory_limit_bytes": pl.Float64()})
    if raw.is_empty():
        return pl.DataFrame(schema=schema)
    one = series.sort("last_ts").group_by("namespace", "pod", "container").agg(
        pl.col("series_id").last(), pl.col("group_id").last(),
        pl.col("memory_request_bytes").last().cast(pl.Float64), pl.col("memory_limit_bytes").last().cast(pl.Float64))
    return raw.join(one, on=["namespace", "pod", "container"], how="inner").select(
        pl.col("series_id"), pl.col("group_id"), pl.col("ts").cast(pl.Datetime("us")),
        "memory_request_bytes", "memory_limit_bytes")


def fit(history: History, strategy: str, params: StrategyParams) -> pl.DataFrame:
    """Run a strategy on a History: group keys + recommended sizes + reason."""
    result = get_strategy(strategy).recommend(history, params)
    return history.groups.select("group_id", *GROUP_KEYS).join(result, on="group_id", how="left")


# --- rows users act on -----------------------------------------------------------------------

def krr_severity(current: float | None, recommended: float | None, resource: str) -> str:
    """KRR's default severity of one value (robusta_krr/core/models/severity.py): unset on one
    side only is a warning; else |difference| >= 0.5/0.25/0.1 cores (CPU) or 500/250/100 MiB
    (memory) is critical/warning/ok, below is good."""
    if current is None and recommended is None:
        return "good"
    if current is None or recommended is None:
        return "warning"
    diff = abs(current - recommended)
    if resource == "memory":
        diff /= MIB
        steps: tuple[float, float, float] = (500, 250, 100)
    else:
        steps = (0.5, 0.25, 0.1)
    diff += 1e-9  # 1.0 - 0.9 is 0.0999...: float noise must not cross a threshold
    if diff >= steps[0]:
        return "critical"
    if diff >= steps[1]:
        return "warning"
    if diff >= steps[2]:
        return "ok"
    return "good"


def _none(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def build_rows(history: History, fitted: pl.DataFrame, params: StrategyParams, strategy: str,
               hpas: pl.DataFrame | None = None, cpu_cost: float | None = None,
               memory_cost: float | None = None) -> pl.DataFrame:
    """The `recommend` table: CONTRACT columns then extras, one row per workload container.

    `hpas` (namespace, target_kind, target_name, metric_name) keeps the request of a resource
    an HPA scales on, unless params.allow_hpa. Groups with less history than params.min_history
    get empty recommendations and say so.
    """
    hpa_metrics: dict[tuple, set] = {}
    if hpas is not None:
        for r in hpas.iter_rows(named=True):
            hpa_metrics.setdefault((r["namespace"], r["target_kind"], r["target_name"]), set()).add(r["metric_name"])
    info = history.groups.join(fitted.drop(GROUP_KEYS), on="group_id", how="left")
    rows = []
    for g in info.iter_rows(named=True):
        cur = {k: _none(g[k]) for k in ("cpu_request_cores", "cpu_limit_cores", "memory_request_bytes", "memory_limit_bytes")}
        history_days = (g["last_ts"] - g["first_ts"]).total_seconds() / 86400.0
        reasons = []
        metrics = hpa_metrics.get((g["namespace"], g["owner_kind"], g["owner_name"]), set())
        if history_days < params.min_history.total_seconds() / 86400.0:
            rec = None
            reasons.append(f"only {history_days * 24:.1f}h of history (< --min-history "
                           f"{params.min_history.total_seconds() / 3600:g}h): no recommendation")
        elif g["reason_new"] is None:
            rec = None
            reasons.append("no usable usage samples in the window: no recommendation")
        else:
            rec = {k: _none(g[f"{k}_new"]) for k in cur}
            reasons.append(g["reason_new"] or "")
            for resource, unit in (("cpu", "cores"), ("memory", "bytes")):
                if resource in metrics:
                    key = f"{resource}_request_{unit}"
                    if params.allow_hpa:
                        reasons.append(f"HPA scales on {resource}: request changed anyway (--allow-hpa)")
                    else:
                        rec[key] = cur[key]
                        reasons.append(f"HPA scales on {resource}: {resource} request kept (the HPA's "
                                       f"utilisation target is relative to it; --allow-hpa to change it)")
            for resource, unit in (("cpu", "cores"), ("memory", "bytes")):
                request, limit = rec[f"{resource}_request_{unit}"], rec[f"{resource}_limit_{unit}"]
                if request is not None and limit is not None and limit < request:
                    # the apiserver rejects a limit below the request
                    rec[f"{resource}_limit_{unit}"] = request
                    reasons.append(f"{resource} limit raised to the request")
        stale_days = (history.end - g["last_ts"]).total_seconds() / 86400.0
        if stale_days >= STALE_DAYS and rec is not None:
            reasons.append(f"last sample {stale_days:.1f} days before the window's end: sized from old history")
        rows.append({**{k: g[k] for k in GROUP_KEYS}, "group_id": g["group_id"],
                     "pods": int(g["pods"]), "cur": cur, "rec": rec, "spec_known": g.get("spec_known") is not False,
                     "reason": "; ".join(r for r in reasons if r), "history_days": history_days,
                     "samples": int(g["samples"]),
                     "confidence_days": vpa_strategy.confidence(g["first_ts"], g["last_ts"], int(g["samples"])),
                     "hpa_metrics": ",".join(sorted(metrics)) or None,
                     "init_container": bool(g["init_container"]) and not bool(g["restartable"])})
    qos_before, qos_after = _qos(rows)
    out = []
    for r in rows:
        cur, rec = r["cur"], r["rec"]
        pods = r["pods"] or 0
        w = tuple(r[k] for k in WORKLOAD_KEYS)
        row = {k: r[k] for k in GROUP_KEYS}
        row["pods"] = r["pods"]
        for resource, unit in (("cpu", "cores"), ("memory", "bytes")):
            for kind in ("request", "limit"):
                key = f"{resource}_{kind}_{unit}"
                row[f"{resource}_{kind}_current"] = cur[key]
                row[f"{resource}_{kind}_recommended"] = rec[key] if rec else None
        if rec is None:
            severity = "unknown"
        else:
            levels = [krr_severity(cur[f"{res}_{kind}_{unit}"], rec[f"{res}_{kind}_{unit}"], res)
                      for res, unit in (("cpu", "cores"), ("memory", "bytes")) for kind in ("request", "limit")]
            severity = max(levels, key=lambda s: SEVERITY_ORDER[s])
        row["severity"] = severity
        row["reason"] = r["reason"]
        row["strategy"] = strategy
        row["qos_class_current"] = qos_before.get(w)
        row["qos_class_recommended"] = qos_after.get(w)
        if rec is not None:
            cpu_change = ((rec["cpu_request_cores"] or 0.0) - (cur["cpu_request_cores"] or 0.0)) * pods
            mem_change = ((rec["memory_request_bytes"] or 0.0) - (cur["memory_request_bytes"] or 0.0)) * pods
        else:
            cpu_change = mem_change = None
        row["cpu_request_change_cores"] = cpu_change
        row["memory_request_change_bytes"] = mem_change
        row["cpu_savings_cores"] = -cpu_change if cpu_change is not None else None
        row["memory_savings_gib"] = -mem_change / GIB if mem_change is not None else None
        if rec is not None and (cpu_cost is not None or memory_cost is not None):
            row["savings_per_hour"] = row["cpu_savings_cores"] * (cpu_cost or 0.0) + row["memory_savings_gib"] * (memory_cost or 0.0)
        else:
            row["savings_per_hour"] = None
        row["history_days"] = r["history_days"]
        row["samples"] = r["samples"]
        row["confidence_days"] = r["confidence_days"]
        row["hpa_metrics"] = r["hpa_metrics"]
        out.append(row)
    schema = {
        "namespace": pl.Utf8, "owner_kind": pl.Utf8, "owner_name": pl.Utf8, "container": pl.Utf8, "pods": pl.Int64,
        "cpu_request_current": pl.Float64, "cpu_request_recommended": pl.Float64,
        "cpu_limit_current": pl.Float64, "cpu_limit_recommended": pl.Float64,
        "memory_request_current": pl.Float64, "memory_request_recommended": pl.Float64,
        "memory_limit_current": pl.Float64, "memory_limit_recommended": pl.Float64,
        "severity": pl.Utf8, "reason": pl.Utf8, "strategy": pl.Utf8,
        "qos_class_current": pl.Utf8, "qos_class_recommended": pl.Utf8,
        "cpu_request_change_cores": pl.Float64, "memory_request_change_bytes": pl.Float64,
        "cpu_savings_cores": pl.Float64, "memory_savings_gib": pl.Float64, "savings_per_hour": pl.Float64,
        "history_days": pl.Float64, "samples": pl.Int64, "confidence_days": pl.Float64, "hpa_metrics": pl.Utf8,
    }
    frame = pl.DataFrame(out, schema=schema).with_columns(
        pl.col("cpu_request_change_cores", "cpu_savings_cores").round(6),
        pl.col("memory_savings_gib", "savings_per_hour", "history_days", "confidence_days").round(4))
    # memory in whole bytes (CONTRACT: integers)
    frame = frame.with_columns(
        *[pl.col(c).round(0).cast(pl.Int64) for c in schema if c.startswith("memory_") and not c.endswith("_gib")])
    return frame.sort(GROUP_KEYS)


def _qos(rows: list[dict]) -> tuple[dict, dict]:
    """QoS class per workload before and after (GetPodQOS over all its containers)."""
    before: dict[tuple, list] = {}
    after: dict[tuple, list] = {}
    unknown: set[tuple] = set()
    unknown_after: set[tuple] = set()
    for r in rows:
        w = tuple(r[k] for k in WORKLOAD_KEYS)
        before.setdefault(w, []).append(r["cur"])
        after.setdefault(w, []).append(r["rec"] if r["rec"] is not None else r["cur"])
        if not r.get("spec_known", True):
            unknown.add(w)  # no spec stored: the current QoS is unknown, not BestEffort
            if r["rec"] is None:
                unknown_after.add(w)
    return ({w: None if w in unknown else qos_class(c) for w, c in before.items()},
            {w: None if w in unknown_after else qos_class(c) for w, c in after.items()})


# --- library entry -----------------------------------------------------------------------------

def rows_from_history(history: History, strategy: str, params: StrategyParams, hpas: pl.DataFrame | None = None,
                      cpu_cost: float | None = None, memory_cost: float | None = None) -> pl.DataFrame:
    """The `recommend` table of one strategy on an already loaded History (the backtest loads a
    window once and fits every strategy and risk level on it)."""
    fitted = fit(history, strategy, params).rename({
        "cpu_request_cores": "cpu_request_cores_new", "cpu_limit_cores": "cpu_limit_cores_new",
        "memory_request_bytes": "memory_request_bytes_new", "memory_limit_bytes": "memory_limit_bytes_new",
        "reason": "reason_new"})
    return build_rows(history, fitted, params, strategy, hpas, cpu_cost, memory_cost)


def recommend_window(con: duckdb.DuckDBPyConnection, strategy: str, start: datetime, end: datetime,
                     params: StrategyParams | None = None, namespaces: list[str] | None = None,
                     cpu_cost: float | None = None, memory_cost: float | None = None) -> pl.DataFrame:
    """Recommendations from the history in [start, end] (the backtest fits this way)."""
    params = params or StrategyParams()
    module = get_strategy(strategy)
    params.auto_knobs()  # an unknown risk level is a usage error before any work
    # per-series aggregates: DuckDB needs little memory, and keeps no more of the blocks already read
    history = store.bounded_memory(con, lambda: load_history(con, start, end, module.NEEDS, params, namespaces),
                                   MEMORY_LIMIT_BYTES)
    hpas = store.query(con, "recommend_hpas", {"start": start, "end": end})
    # the blocks the loads left in DuckDB's pool are not read again: the strategy's work goes on
    # without them
    store.release_memory(con)
    return rows_from_history(history, strategy, params, hpas, cpu_cost, memory_cost)


def recommend(con: duckdb.DuckDBPyConnection, strategy: str = DEFAULT_STRATEGY,
              window: timedelta = timedelta(days=14), namespaces: list[str] | None = None,
              params: StrategyParams | None = None, cpu_cost: float | None = None,
              memory_cost: float | None = None) -> pl.DataFrame:
    """Right-sizing per workload container over `window` ending at the newest sample
    (CONTRACT `recommend` columns first)."""
    get_strategy(strategy)
    start, end = store.analysis_window(con, window)
    return recommend_window(con, strategy, start, end, params, namespaces, cpu_cost, memory_cost)
