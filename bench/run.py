"""`make bench`: capplan's speed, memory and storage at real cluster sizes, against baselines.

Sizes (containers alive on average, 30 days at 5 minutes):
  S   ~100 containers   (~0.9 M samples)
  M   ~1,000            (~8.6 M samples)
  L   ~10,000           (~86 M samples)
Quick mode (default) runs S and M; `BENCH_SIZE=L` (or `BENCH_SIZE=S,M,L`) picks sizes.

Every measured step runs in its own child process, so each gets its own peak RSS (from
os.wait4's rusage) and nothing one step allocated flatters or burdens the next:
  generate  the synthetic cluster from capplan.sample (cached in bench/work/<size>/gen/, not timed)
  ingest    store.write_spec + store.write_usage, one transaction per day of samples, then
            what a writer does when it finishes (node sums, store.cluster_usage of the day before)
            and CHECKPOINT; samples/s counts only the writers and commits; raw bytes/sample =
            usage_raw's blocks after CHECKPOINT / samples (the storage target), beside the whole
            file's size / samples (which adds the node and namespace sums and the specs)
  analyses  recommend (each strategy), nodes, eviction, forecast and the whole report, called
            in-process from the library on the same DuckDB file (read-only)
  baseline  the per-workload design KRR uses: one query per container for its samples, then
            numpy percentile/max in Python (KRR's `simple` strategy), on the same file
  collect   (M) bench/collect_bench.py's run_collect_bench (real Prometheus) when present
  machine   a fixed piece of DuckDB work (a sort and an aggregate), before the imports and at the
            end of each size: the machine's speed of the moment, beside the figures it moves
A step whose module is not built yet reports "n/a (not built)".

Environment: BENCH_SIZE (S,M default), BENCH_WINDOW (analysis window, default 30d: all the
data), BENCH_REUSE=1 (reuse an ingested DB from bench/work and skip ingest), BENCH_STEPS
(comma list to run only some steps), BENCH_TIMEOUT (seconds per step, default 1800),
BENCH_SERVE_MEMORY_LIMIT (the limit `serve` is told, default deploy/deployment.yaml's),
BENCH_RUNS (default 1: how many times each timed analysis, year and import step runs; the table
shows the run of median wall time, the range of all runs, and the largest peak RSS of them).
Results: printed table and bench/results.json.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WORK = Path(os.environ.get("BENCH_WORK", BENCH / "work"))
RESULTS = Path(os.environ.get("BENCH_RESULTS", BENCH / "results.json"))
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# Before anything here imports polars (which exports its own allocator setting to the steps this
# process starts): the user's setting, for the steps to tell it from polars' (capplan.cli.allocators)
from capplan.cli.allocators import users_conf  # noqa: E402

users_conf()

SEED = 7
DAYS = 30
# Samples per base-cluster copy over 30 days / 8640 steps: about 61.8 containers alive on average.
BASE_ALIVE_CONTAINERS = 534_126 / 8_640
# Copies per generate_cluster call: the generator's restart pass holds (containers x all steps)
# float arrays, ~70 MB per copy over 30 days; batches keep generation under ~2 GiB.
COPIES_PER_BATCH = 27


@dataclass(frozen=True)
class Size:
    name: str
    containers: int

    @property
    def copies(self) -> int:
        return max(1, round(self.containers / BASE_ALIVE_CONTAINERS))


SIZES = {"S": Size("S", 100), "M": Size("M", 1_000), "L": Size("L", 10_000)}
STRATEGIES_DEFAULT = ("simple", "vpa", "max-target", "auto")

GiB = 2**30


# --- generation ------------------------------------------------------------------------------

def _gen_dir(size: Size) -> Path:
    return WORK / size.name / "gen"


def _generator_stamp(size: Size) -> str:
    sample_py = (ROOT / "capplan" / "sample.py").read_bytes()
    return hashlib.sha256(sample_py + f"{size.copies}/{DAYS}/{SEED}/{COPIES_PER_BATCH}".encode()).hexdigest()[:16]


def _suffix_names(frames: dict[str, Any], suffix: str) -> dict[str, Any]:
    """Append a batch suffix to every namespace and node name so batches do not collide."""
    import polars as pl

    out = {}
    for name, frame in frames.items():
        exprs = [pl.col(c) + suffix for c in ("namespace", "node") if c in frame.columns]
        out[name] = frame.with_columns(exprs) if exprs else frame
    return out


def child_generate(size_name: str) -> dict[str, Any]:
    """Generate the cluster for SIZE into bench/work/SIZE/gen/ (spec tables and one usage file a day)."""
    import polars as pl

    from capplan.sample import SampleCluster, generate_cluster, usage_frames

    size = SIZES[size_name]
    out = _gen_dir(size)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.parquet"):
        old.unlink()
    batches = []
    left, index = size.copies, 0
    while left > 0:
        take = min(left, COPIES_PER_BATCH)
        cluster = generate_cluster(seed=SEED + index, days=DAYS, copies=take)
        if size.copies > COPIES_PER_BATCH:
            suffix = f"-b{index + 1}"
            renamed = _suffix_names({**cluster.frames, "__models": cluster.models}, suffix)
            models = renamed.pop("__models")
            cluster = SampleCluster(frames=renamed, models=models, start=cluster.start, end=cluster.end,
                                    step=cluster.step, seed=cluster.seed)
        batches.append(cluster)
        left -= take
        index += 1
    for table in batches[0].frames:
        pl.concat([b.frames[table] for b in batches], how="diagonal_relaxed").write_parquet(out / f"{table}.parquet")
    samples = 0
    streams = [usage_frames(b, timedelta(days=1)) for b in batches]
    for day, parts in enumerate(zip(*streams, strict=True)):
        frame = pl.concat(parts)
        samples += frame.height
        frame.write_parquet(out / f"usage-{day:03d}.parquet", compression="lz4")
    models = sum(len(b.models) for b in batches)
    meta = {"stamp": _generator_stamp(size), "samples": samples, "modelled_containers": models,
            "copies": size.copies, "days": DAYS}
    (out / "meta.json").write_text(json.dumps(meta))
    return meta


def _generated(size: Size) -> dict[str, Any] | None:
    meta_path = _gen_dir(size) / "meta.json"
    if not meta_path.exists():
        return None
    meta = json.loads(meta_path.read_text())
    return meta if meta.get("stamp") == _generator_stamp(size) else None


# --- ingest ----------------------------------------------------------------------------------

def _db_path(size: Size) -> Path:
    return WORK / size.name / "bench.duckdb"


def child_ingest(size_name: str) -> dict[str, Any]:
    """Write the generated cluster into a fresh DuckDB file; time the writers only."""
    import polars as pl

    from capplan import store

    size = SIZES[size_name]
    gen = _gen_dir(size)
    db = _db_path(size)
    for p in (db, db.with_name(db.name + ".wal")):
        p.unlink(missing_ok=True)
    con = store.open_db(db)
    write_s = spec_s = 0.0
    samples = 0
    chunks = 0
    try:
        t0 = time.perf_counter()
        with store.transaction(con):
            for table in store.SPEC_TABLES:
                path = gen / f"{table}.parquet"
                if path.exists():
                    store.write_spec(con, table, pl.read_parquet(path))
            if (gen / "restarts.parquet").exists():
                store.write_restarts(con, pl.read_parquet(gen / "restarts.parquet"))
        spec_s = time.perf_counter() - t0
        checkpoint_s = 0.0
        chunk_seconds: list[float] = []
        write_cpu = node_s = node_cpu = cluster_s = cluster_cpu = 0.0
        clustered_days = 0
        for path in sorted(gen.glob("usage-*.parquet")):
            frame = pl.read_parquet(path)
            t0, cpu0 = time.perf_counter(), _cpu_seconds()
            with store.transaction(con):
                samples += store.write_usage(con, frame)
            t1 = time.perf_counter()
            write_cpu += _cpu_seconds() - cpu0
            # The collector closes the DB after each chunk, which checkpoints; do the same. Without it
            # the file keeps the blocks of the pre-checkpoint row groups free (21.5 vs 14 B/sample at M).
            # ... and its next open recomputes the node sums of the chunk's times (schema 006).
            cpu1 = _cpu_seconds()
            store.refresh_node_usage(con)
            node_s += time.perf_counter() - t1
            node_cpu += _cpu_seconds() - cpu1
            # ... and, as every writer does when it finishes (schema 009), puts the complete days it
            # appended to in the clustered order: a chunk is a UTC day, so each chunk completes the
            # day before it, which is rewritten once (the last day stays in time order, as a
            # collector's current day does)
            t_cluster, cpu_cluster = time.perf_counter(), _cpu_seconds()
            clustered_days += store.cluster_usage(con)
            t2 = time.perf_counter()
            cluster_s += t2 - t_cluster
            cluster_cpu += _cpu_seconds() - cpu_cluster
            con.execute("CHECKPOINT")
            write_s += t1 - t0
            chunk_seconds.append(round(t1 - t0, 3))
            checkpoint_s += time.perf_counter() - t2
            chunks += 1
        # blocks of 256 KiB holding the node sums (table node_sums since schema 010; shared partial
        # blocks make this approximate)
        node_bytes = con.execute(
            "SELECT count(DISTINCT block_id) * 262144 FROM pragma_storage_info('node_sums') WHERE persistent"
        ).fetchone()[0]
        node_rows = con.execute("SELECT count(*) FROM node_usage").fetchone()[0]
        # the raw samples alone (usage_raw's blocks, as node_bytes): what the storage target is about;
        # the file also holds what is derived from them (node and namespace sums) and the specs
        raw_bytes = con.execute(
            "SELECT count(DISTINCT block_id) * 262144 FROM pragma_storage_info('usage_raw') WHERE persistent"
        ).fetchone()[0]
        series = con.execute("SELECT count(*) FROM series").fetchone()[0]
    finally:
        con.close()
    file_bytes = db.stat().st_size + (db.with_name(db.name + ".wal").stat().st_size
                                      if db.with_name(db.name + ".wal").exists() else 0)
    return {
        "samples": samples, "series": series, "chunks": chunks, "spec_seconds": spec_s,
        "write_seconds": write_s, "checkpoint_seconds": checkpoint_s,
        "samples_per_second": samples / write_s if write_s else None,
        "samples_per_second_with_checkpoint": samples / (write_s + checkpoint_s) if write_s else None,
        "file_bytes": file_bytes, "bytes_per_sample": file_bytes / samples if samples else None,
        "raw_bytes": raw_bytes, "raw_bytes_per_sample": raw_bytes / samples if samples else None,
        "chunk_write_seconds": chunk_seconds, "write_cpu_seconds": write_cpu,
        "node_usage_seconds": node_s, "node_usage_cpu_seconds": node_cpu, "node_usage_rows": node_rows,
        "cluster_seconds": cluster_s, "cluster_cpu_seconds": cluster_cpu, "clustered_days": clustered_days,
        "node_usage_estimated_bytes": node_bytes,
    }


# --- analysis steps --------------------------------------------------------------------------

class NotBuilt(Exception):
    """The module behind a step is not there yet."""


def _window() -> timedelta:
    from capplan.quantity import parse_duration

    return parse_duration(os.environ.get("BENCH_WINDOW", f"{DAYS}d"))


def _module(name: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            raise NotBuilt(name) from exc
        raise


def _call(func: Callable, con, **kwargs: Any) -> Any:
    """Call a library entry point with the keyword arguments it accepts."""
    params = inspect.signature(func).parameters
    accepted = {k: v for k, v in kwargs.items() if k in params}
    return func(con, **accepted)


def _entry(module, names: tuple[str, ...]) -> Callable:
    for name in names:
        func = getattr(module, name, None)
        if callable(func):
            return func
    raise NotBuilt(f"{module.__name__} has none of {', '.join(names)}")


def _rows(result: Any) -> int | None:
    if hasattr(result, "height"):
        return int(result.height)
    if isinstance(result, list):
        return len(result)
    if hasattr(result, "frame"):
        return _rows(result.frame)
    return None


def step_nodes(con) -> Any:
    """`capplan nodes`: the per-node table with imbalance and memory-pressure risk."""
    from capplan.analysis.nodes_overview import nodes_overview

    return nodes_overview(con, _window())


def step_fit(con) -> Any:
    """`capplan fit --cpu 500m --memory 1Gi`."""
    module = _module("capplan.analysis.fit")
    func = _entry(module, ("fit_report",))
    return func(con, 0.5, float(2**30), window=_window())


def step_recommend(con, strategy: str, window: timedelta | None = None) -> Any:
    module = _module("capplan.analysis.recommend")
    func = _entry(module, ("recommend",))
    return _call(func, con, strategy=strategy, window=window or _window())


def step_eviction(con) -> Any:
    module = _module("capplan.analysis.eviction")
    func = _entry(module, ("eviction_report",))
    result = func(con, module.EvictionOptions(window=_window()))
    return getattr(result, "pods", result)


def step_forecast(con, window: timedelta | None = None) -> Any:
    module = _module("capplan.analysis.forecast")
    func = _entry(module, ("forecast_report",))
    return _call(func, con, window=window or _window())


# Steps on the year database (child_year): a window past the raw samples reads the rollups.
YEAR_STEPS: dict[str, Callable] = {
    "year_forecast_365d": lambda con: step_forecast(con, timedelta(days=365)),
    "year_recommend_vpa_90d": lambda con: step_recommend(con, "vpa", timedelta(days=90)),
    "year_recommend_auto_90d": lambda con: step_recommend(con, "auto", timedelta(days=90)),
}


def step_rollout(con) -> Any:
    module = _module("capplan.analysis.rollout")
    func = _entry(module, ("rollout_report",))
    return _call(func, con, window=_window())


def step_report(con) -> Any:
    from capplan.report import ReportOptions
    from capplan.report.compose import build_report

    return build_report(con, ReportOptions(window=_window()))


def step_baseline_simple(con) -> Any:
    """KRR's design on capplan's store: list the containers, then one query per container for its
    samples in the window, and numpy in Python: CPU p95 and memory max x 1.15 per container,
    the largest per workload container name (KRR's `simple` strategy)."""
    import numpy as np

    from capplan import store

    start, end = store.analysis_window(con, _window())
    containers = con.execute(
        """
        SELECT s.series_id, s.namespace, s.pod, s.container,
               coalesce(o.owner_name, p.owner_name, s.pod) AS workload
        FROM series AS s
        LEFT JOIN (SELECT namespace, pod, any_value(owner_kind) AS owner_kind, any_value(owner_name) AS owner_name
                   FROM pods GROUP BY ALL) AS p USING (namespace, pod)
        LEFT JOIN (SELECT namespace, kind, name, any_value(owner_name) AS owner_name FROM owners GROUP BY ALL) AS o
          ON o.namespace = s.namespace AND o.kind = p.owner_kind AND o.name = p.owner_name
        """
    ).fetchall()
    per_workload: dict[tuple[str, str, str], list[float]] = {}
    for series_id, namespace, _pod, container, workload in containers:
        cpu, mem = con.execute(
            "SELECT cpu_cores, memory_bytes FROM usage_samples WHERE series_id = ? AND ts BETWEEN ? AND ?",
            [series_id, start, end],
        ).fetchnumpy().values()
        if len(cpu) == 0:
            continue
        key = (namespace, workload, container)
        cpu_p95 = float(np.percentile(cpu.astype(np.float64), 95))
        mem_rec = float(np.max(mem)) * 1.15
        prev = per_workload.get(key)
        per_workload[key] = [max(prev[0], cpu_p95), max(prev[1], mem_rec)] if prev else [cpu_p95, mem_rec]
    return [(*k, v[0], v[1]) for k, v in per_workload.items()], len(containers)


def analysis_steps(strategies: tuple[str, ...]) -> dict[str, Callable]:
    steps: dict[str, Callable] = {f"recommend_{s}": (lambda con, s=s: step_recommend(con, s)) for s in strategies}
    steps.update({
        "nodes": step_nodes,
        "fit": step_fit,
        "eviction": step_eviction,
        "forecast": step_forecast,
        "rollout": step_rollout,
        "report": step_report,
        "baseline_simple": step_baseline_simple,
    })
    return steps


def _strategies() -> tuple[str, ...]:
    try:
        module = importlib.import_module("capplan.analysis.strategies")
    except ModuleNotFoundError:
        return STRATEGIES_DEFAULT
    found = getattr(module, "STRATEGIES", None)
    return tuple(found) if found else STRATEGIES_DEFAULT


def _cpu_seconds() -> float:
    """User + system CPU time of this process, all threads (DuckDB and polars run several)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child_step(size_name: str, step: str) -> dict[str, Any]:
    """Run one analysis step in this process against the size's DB (read-only), timed."""
    from capplan.cli import allocators

    # as `capplan COMMAND` sets it, before polars loads (the steps are named after their commands)
    allocators.configure(next((c for c in ("recommend", "forecast") if c in step), step))
    from capplan import store

    size = SIZES[size_name]
    steps = {**analysis_steps(_strategies()), **YEAR_STEPS}
    con = store.open_db(_year_db_path(size) if step in YEAR_STEPS else _db_path(size), read_only=True)
    try:
        t0, cpu0 = time.perf_counter(), _cpu_seconds()
        try:
            result = steps[step](con)
        except NotBuilt as exc:
            return {"status": "n/a (not built)", "detail": str(exc)}
        seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
        if step == "baseline_simple":
            # for the answer check only, after the clock: workloads an HPA scales on CPU
            hpa_cpu = set(con.execute(
                "SELECT DISTINCT namespace, target_name FROM hpas WHERE metric_name = 'cpu'").fetchall())
            result = (*result, hpa_cpu)
    finally:
        con.close()
    out: dict[str, Any] = {"status": "ok", "seconds": seconds, "cpu_seconds": cpu}
    if step == "baseline_simple":
        rows, queries, hpa_cpu = result
        out.update(rows=len(rows), queries=queries,
                   cpu_request_sum_cores=sum(r[3] for r in rows if (r[0], r[1]) not in hpa_cpu),
                   memory_request_sum_bytes=sum(r[4] for r in rows))
    else:
        out["rows"] = _rows(result)
    if step == "recommend_simple" and hasattr(result, "columns") and "cpu_request_recommended" in result.columns:
        # the same sums as the baseline's, to show both designs give the same answer; CPU leaves out
        # workloads an HPA scales on CPU (capplan keeps their request on purpose, KRR does not know)
        import polars as pl

        hpa_cpu = (pl.col("hpa_metrics").fill_null("").str.contains("cpu") if "hpa_metrics" in result.columns
                   else pl.lit(False))
        out["cpu_request_sum_cores"] = float(result.filter(~hpa_cpu)["cpu_request_recommended"].fill_null(0).sum())
        out["memory_request_sum_bytes"] = float(result["memory_request_recommended"].fill_null(0).sum())
    return out


def child_collect(size_name: str) -> dict[str, Any]:
    """The collection benchmark of the collector's engineer (bench/collect_bench.py), if present."""
    path = BENCH / "collect_bench.py"
    if not path.exists():
        return {"status": "n/a (not built)", "detail": "bench/collect_bench.py is missing"}
    sys.path.insert(0, str(BENCH))
    sys.path.insert(0, str(ROOT / "tests"))
    module = importlib.import_module("collect_bench")
    days = int(os.environ.get("BENCH_COLLECT_DAYS", "1"))
    result = module.run_collect_bench(size_name, days=days)
    return {"status": "ok", **result} if "status" not in result else result


# Days of the generated data in the long-format files `capplan import` reads (Parquet, CSV):
# enough rows that the command's fixed start-up cost is a small part of the figure.
IMPORT_DAYS = {"parquet": 10, "csv": 2}


def _long_format_file(size: Size, kind: str) -> Path:
    """The generated usage as one long-format file (CONTRACT.md columns), written once per size."""
    import polars as pl

    gen = _gen_dir(size)
    out = WORK / size.name / "long" / f"usage-{IMPORT_DAYS[kind]}d-{_generator_stamp(size)}.{kind}"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    for old in out.parent.glob(f"*.{kind}"):
        old.unlink()
    days = sorted(gen.glob("usage-*.parquet"))[: IMPORT_DAYS[kind]]
    frame = pl.concat([pl.read_parquet(d) for d in days]).rename({"ts": "timestamp"})
    tmp = out.with_name(out.name + ".tmp")
    if kind == "parquet":
        frame.write_parquet(tmp)
    else:
        frame.with_columns(pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%SZ")).write_csv(tmp)
    tmp.rename(out)
    return out


def child_long_file(size_name: str, kind: str) -> dict[str, Any]:
    """Write the long-format file child_import reads, in a child of its own: the polars frame it is
    written from (2.4 GiB at L) is then not counted in the import's peak RSS."""
    return {"status": "ok", "path": str(_long_format_file(SIZES[size_name], kind))}


def child_import(size_name: str, kind: str) -> dict[str, Any]:
    """`capplan import FILE` of a long-format Parquet or CSV (the user's path: the CLI, its
    validation and writers) into a fresh database; rows/s over the whole command."""
    size = SIZES[size_name]
    path = _long_format_file(size, kind)
    db = WORK / size.name / f"import-{kind}.duckdb"
    for p in (db, db.with_name(db.name + ".wal")):
        p.unlink(missing_ok=True)
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-m", "capplan", "import", str(path), "--db", str(db)],
                          capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # user + system CPU of the command, all threads: what a shared machine's load does not inflate
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if done.returncode != 0:
        return {"status": f"failed (exit {done.returncode}): {done.stderr.strip()[:200]}"}
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute("SELECT count(*) FROM usage_samples").fetchone()[0]
    finally:
        con.close()
    file_bytes = db.stat().st_size
    db.unlink(missing_ok=True)
    return {"status": "ok", "seconds": seconds, "cpu_seconds": cpu, "rows": rows, "rows_per_second": rows / seconds,
            "rows_per_cpu_second": rows / cpu if cpu else None, "db_bytes_per_sample": file_bytes / rows if rows else None}


def child_help() -> dict[str, Any]:
    """`capplan --help` wall time: the fixed start-up cost every command pays; the best and the
    median of 7 runs (the machine is shared: the best is the uncontended figure)."""
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "capplan", "--help"], capture_output=True, check=True, cwd=ROOT)
        times.append(time.perf_counter() - t0)
    times.sort()
    return {"status": "ok", "seconds": times[len(times) // 2], "best_seconds": times[0]}


ROLLUP_DAYS = 3          # days of raw samples the rollup step summarises (its figures are per day)
YEAR_RAW_DAYS = 35       # capplan.rollup.DEFAULT_RAW_RETENTION
YEAR_DAYS = 365


def child_rollup(size_name: str) -> dict[str, Any]:
    """Hourly rollups of the first ROLLUP_DAYS days of the size's DB (queries/rollup_hourly.sql, what
    `capplan prune --compact` runs), written a day at a time into a fresh file: seconds per day of
    samples, bytes per hourly row, and the projected size of a year (35 days raw at the measured
    bytes/sample, 330 days hourly at the measured bytes/row and rows/day)."""
    import duckdb

    from capplan import rollup, store

    size = SIZES[size_name]
    src = _db_path(size)
    out = WORK / size.name / "rollup.duckdb"
    for p in (out, out.with_name(out.name + ".wal")):
        p.unlink(missing_ok=True)
    store.open_db(out).close()
    empty_bytes = out.stat().st_size
    con = duckdb.connect(str(out))
    try:
        con.execute(f"ATTACH '{src}' AS src (READ_ONLY)")
        start = con.execute("SELECT CAST(min(ts) AS TIMESTAMP) FROM src.usage_raw").fetchone()[0]
        raw_samples = 0
        seconds = 0.0
        con.execute("USE src")
        for day in range(ROLLUP_DAYS):
            lo, hi = start + timedelta(days=day), start + timedelta(days=day + 1)
            t0 = time.perf_counter()
            # the compaction of one day: rows before `hi` not rolled up yet (those before `lo` are)
            con.execute(
                f"INSERT INTO {out.stem}.usage_hourly SELECT * FROM ({store.load_sql('rollup_hourly')}) "
                "WHERE hour >= CAST($lo AS TIMESTAMP_S)",
                {"cutoff": hi, "lo": lo, "first_bucket_mcores": rollup.CPU_FIRST_BUCKET_CORES * store.CPU_UNITS_PER_CORE,
                 "ratio": rollup.CPU_BUCKET_RATIO, "num_buckets": rollup.CPU_NUM_BUCKETS},
            )
            con.execute(f"CHECKPOINT {out.stem}")
            seconds += time.perf_counter() - t0
        con.execute(f"USE {out.stem}")
        rows, samples = con.execute("SELECT count(*), sum(samples) FROM usage_hourly").fetchone()
        raw_samples = int(samples)
        raw_per_day = con.execute("SELECT count(*) / (epoch(max(ts)) - epoch(min(ts)) + 300) * 86400 "
                                  "FROM src.usage_raw").fetchone()[0]
    finally:
        con.close()
    rollup_bytes = out.stat().st_size - empty_bytes
    out.unlink(missing_ok=True)
    return {"status": "ok", "days": ROLLUP_DAYS, "seconds": seconds, "seconds_per_day": seconds / ROLLUP_DAYS,
            "hourly_rows": rows, "samples_rolled": raw_samples, "hourly_rows_per_day": rows / ROLLUP_DAYS,
            "raw_samples_per_day": raw_per_day, "bytes_per_hourly_row": rollup_bytes / rows if rows else None}


def child_serve(size_name: str) -> dict[str, Any]:
    """`capplan serve` on the size's DB: every endpoint listed at /api/v1, then /api/v1/report,
    /metrics and /report.html, once each, one after another; the server's peak RSS (VmHWM) is
    what its pod's memory limit must hold (deploy/deployment.yaml, docs/serve.md)."""
    import signal
    import socket
    import urllib.request

    size = SIZES[size_name]
    # BENCH_SERVE_MEMORY_LIMIT (e.g. 1Gi) measures it told another limit than deploy/'s (docs/serve.md)
    told = os.environ.get("BENCH_SERVE_MEMORY_LIMIT", SERVE_LIMIT_TEXT)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "capplan", "serve", "--db", str(_db_path(size)),
                               "--host", "127.0.0.1", "--port", str(port), "--window", os.environ.get("BENCH_WINDOW", f"{DAYS}d"),
                               "--termination-log", os.devnull],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              # as in its pod: the Deployment tells capplan its memory limit (DuckDB gets 40%)
                              env={**os.environ, "CAPPLAN_MEMORY_LIMIT": told})
    base = f"http://127.0.0.1:{port}"
    timings: dict[str, float] = {}
    statuses: dict[str, int] = {}

    # one request may take long at L on a busy machine (the report: minutes); past this it counts
    # as failed (status 504 here) and the next one is asked, so the peak RSS is still read
    request_timeout = float(os.environ.get("BENCH_SERVE_REQUEST_TIMEOUT", "1800"))

    def get(path: str, timeout: float = request_timeout) -> bytes:
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(base + path, timeout=timeout) as answer:
                body = answer.read()
                statuses[path] = answer.status
        except urllib.error.HTTPError as err:
            body = err.read()
            statuses[path] = err.code
        except TimeoutError:
            body = b"{}"
            statuses[path] = 504
        timings[path] = time.perf_counter() - t0
        return body

    def hwm() -> int:
        for line in Path(f"/proc/{server.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return 0

    def reset_hwm() -> bool:
        try:
            Path(f"/proc/{server.pid}/clear_refs").write_text("5")
            return True
        except OSError:
            return False

    peaks: dict[str, int] = {}

    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                get("/healthz", 10)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    return {"status": f"failed: serve did not start: {(server.stderr.read() if server.stderr else '')[:200]}"}
                time.sleep(0.2)
        idle = hwm()
        endpoints = json.loads(get("/api/v1"))
        # fit has required parameters: ask it what the `fit` step asks (--cpu 500m --memory 1Gi)
        needs = {"/api/v1/fit": "?cpu=500m&memory=1Gi"}
        paths = ([e["path"] + needs.get(e["path"], "") for e in endpoints.values()]
                 + ["/api/v1/report", "/metrics", "/report.html"])
        peak = max(idle, hwm())
        for path in paths:
            # each endpoint's own peak: Linux resets VmHWM to the current RSS on "5" (proc(5),
            # clear_refs), so what holds the overall peak shows (the overall is their maximum)
            reset = reset_hwm()
            get(path)
            peaks[path] = hwm()
            peak = max(peak, peaks[path])
            if not reset:
                peaks.pop(path)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    failed = {p: s for p, s in statuses.items() if s >= 500}
    return {"status": "ok" if not failed else f"failed: {failed}", "seconds": sum(timings.values()),
            "idle_rss_bytes": idle, "peak_rss_bytes_server": peak, "timings": timings, "statuses": statuses,
            "peak_rss_bytes_by_path": peaks,
            "memory_limit": told}


def _year_db_path(size: Size) -> Path:
    return WORK / size.name / "year.duckdb"


def child_year(size_name: str) -> dict[str, Any]:
    """A year of the size on disk: the bench DB (30 days raw) plus 336 days of hourly rollups before
    it, made from the rollups of its first ROLLUP_DAYS days copied back in time (the same series and
    values, shifted by whole multiples of ROLLUP_DAYS). Measures the file, not a projection."""
    import shutil

    import duckdb

    from capplan import rollup, store

    size = SIZES[size_name]
    year = _year_db_path(size)
    for p in (year, year.with_name(year.name + ".wal")):
        p.unlink(missing_ok=True)
    shutil.copy(_db_path(size), year)
    t0 = time.perf_counter()
    con = duckdb.connect(str(year))
    try:
        start = con.execute("SELECT CAST(min(ts) AS TIMESTAMP) FROM usage_raw").fetchone()[0]
        con.execute(
            f"CREATE TEMP TABLE _first AS SELECT * FROM ({store.load_sql('rollup_hourly')}) ORDER BY hour, series_id",
            {"cutoff": start + timedelta(days=ROLLUP_DAYS),
             "first_bucket_mcores": rollup.CPU_FIRST_BUCKET_CORES * store.CPU_UNITS_PER_CORE,
             "ratio": rollup.CPU_BUCKET_RATIO, "num_buckets": rollup.CPU_NUM_BUCKETS})
        copies = -(-(YEAR_DAYS - DAYS) // ROLLUP_DAYS)
        for k in range(copies, 0, -1):  # oldest first: the table stays in time order
            con.execute(
                "INSERT INTO usage_hourly SELECT * REPLACE (CAST(CAST(hour AS TIMESTAMP) - to_days($shift) AS TIMESTAMP_S) AS hour) "
                "FROM _first", {"shift": k * ROLLUP_DAYS})
            if k % 10 == 0:
                con.execute("CHECKPOINT")
        con.execute("CHECKPOINT")
        hourly_rows = con.execute("SELECT count(*) FROM usage_hourly").fetchone()[0]
        oldest = con.execute("SELECT CAST(min(hour) AS TIMESTAMP) FROM usage_hourly").fetchone()[0]
    finally:
        con.close()
    return {"status": "ok", "seconds": time.perf_counter() - t0, "file_bytes": year.stat().st_size,
            "hourly_rows": hourly_rows, "days": (start - oldest).days + DAYS}


def child_lake_export(size_name: str) -> dict[str, Any]:
    """`capplan export-lake` of the size's database (bench/lake_bench.py)."""
    from bench import lake_bench

    return lake_bench.child_lake_export(_db_path(SIZES[size_name]), lake_bench.lake_dir(WORK, size_name))


def child_engine(size_name: str, engine: str, analysis: str) -> dict[str, Any]:
    """One analysis on one engine, DuckDB or Spark over the lake (bench/lake_bench.py)."""
    from bench import lake_bench

    return lake_bench.child_engine(_db_path(SIZES[size_name]), lake_bench.lake_dir(WORK, size_name), engine, analysis,
                                   _window())


# The machine check: the same DuckDB work every time, of the kinds `capplan import` spends its CPU
# on (a sorted insert of MACHINE_SORT_ROWS rows, as a day's write; an aggregate of MACHINE_GROUP_ROWS
# rows into MACHINE_GROUPS groups, as a day's node sums), on DuckDB's default threads. On one afternoon
# this machine ran the same import in 9.7-12.4 CPU-s (bench/RESULTS.md, table of record at c9c7258);
# this figure, taken before the imports and at the end of each size, tells a slow half hour from a
# slower change.
MACHINE_SORT_ROWS = 5_000_000
MACHINE_GROUP_ROWS = 20_000_000
MACHINE_GROUPS = 373_000
MACHINE_RUNS = 3


def child_machine() -> dict[str, Any]:
    import duckdb

    con = duckdb.connect()  # in memory: the same work whatever the databases on disk
    try:
        # (made untimed: DuckDB's range() runs on one thread; the timed work reads the table on all)
        con.execute(f"CREATE TEMP TABLE numbers AS SELECT i, hash(i) AS h FROM range({MACHINE_GROUP_ROWS}) t(i)")
        runs = []
        for _ in range(MACHINE_RUNS):
            before, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            # (an ORDER BY in a subquery may be dropped; a table made in that order keeps it)
            con.execute(f"CREATE OR REPLACE TEMP TABLE sorted AS SELECT h, i FROM numbers WHERE i < {MACHINE_SORT_ROWS} "
                        "ORDER BY h")
            con.execute(f"CREATE OR REPLACE TEMP TABLE grouped AS SELECT h % {MACHINE_GROUPS} AS g, sum(i) AS total "
                        "FROM numbers GROUP BY g")
            seconds = time.perf_counter() - t0
            after = resource.getrusage(resource.RUSAGE_SELF)
            runs.append(((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), seconds))
        row = con.execute("SELECT count(*) FROM grouped").fetchone()
        groups = row[0] if row else 0
    finally:
        con.close()
    if groups != MACHINE_GROUPS:
        return {"status": f"failed: {groups} groups, not {MACHINE_GROUPS}"}
    cpu, seconds = sorted(runs)[len(runs) // 2]  # the run of median CPU time: one stalled run does not count
    return {"status": "ok", "seconds": seconds, "cpu_seconds": cpu, "cpu_seconds_runs": [r[0] for r in runs]}


CHILDREN = {"generate": child_generate, "ingest": child_ingest, "step": child_step, "collect": child_collect,
            "import": child_import, "long_file": child_long_file, "help": child_help, "rollup": child_rollup, "serve": child_serve,
            "year": child_year, "lake_export": child_lake_export, "engine": child_engine,
            "machine": child_machine}


# --- parent: run children, measure, tabulate -------------------------------------------------

def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def run_child(args: list[str], timeout: float) -> dict[str, Any]:
    """Run `run.py _child ARGS` and return its JSON answer plus wall seconds and peak RSS.

    A child whose RSS passes BENCH_RSS_KILL (default 8 GiB) is killed, so one runaway step cannot
    push a shared machine into the OOM killer."""
    rss_kill = float(os.environ.get("BENCH_RSS_KILL_GIB", "8")) * GiB
    cmd = [sys.executable, str(Path(__file__).resolve()), "_child", *args]
    load_before = round(os.getloadavg()[0], 2)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = t0 + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            return {"status": f"timeout after {timeout:.0f} s", "wall_seconds": time.perf_counter() - t0}
        rss = _rss_bytes(proc.pid)
        if rss > rss_kill:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            return {"status": f"killed: RSS over {rss_kill / GiB:.0f} GiB", "wall_seconds": time.perf_counter() - t0,
                    "peak_rss_bytes": usage.ru_maxrss * 1024, "load_average_before": load_before}
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    out_text = proc.stdout.read() if proc.stdout else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    peak_rss = usage.ru_maxrss * 1024  # kilobytes on Linux
    if proc.returncode != 0:
        return {"status": f"failed (exit {proc.returncode})", "wall_seconds": wall, "peak_rss_bytes": peak_rss}
    lines = [line for line in out_text.splitlines() if line.startswith("{")]
    answer = json.loads(lines[-1]) if lines else {"status": "failed (no answer)"}
    answer["wall_seconds"] = wall
    answer["load_average_before"] = load_before
    answer["peak_rss_bytes"] = peak_rss
    return answer


def _runs() -> int:
    """BENCH_RUNS: each timed step's runs (at least 1)."""
    return max(1, int(os.environ.get("BENCH_RUNS", "1")))


def run_repeated(args: list[str], timeout: float) -> dict[str, Any]:
    """run_child BENCH_RUNS times. On a shared machine one run can stall (bench L at c957345:
    `recommend auto` 37.9 s wall for 13.4 CPU-s, 5.4 s for 9.0 two minutes later), so the verdict
    takes the run of median wall time, with the range of all runs beside it; peak RSS is the largest
    of the runs (memory targets are not eased by repeating). A run that fails is the answer."""
    answers = []
    for _ in range(_runs()):
        answer = run_child(args, timeout)
        if answer.get("status") != "ok":
            return answer
        answers.append(answer)
    if len(answers) == 1:
        return answers[0]
    ordered = sorted(answers, key=lambda a: a["seconds"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["runs"] = len(answers)
    chosen["seconds_runs"] = [a["seconds"] for a in answers]
    chosen["load_averages_before"] = [a["load_average_before"] for a in answers]
    chosen["peak_rss_bytes"] = max(a["peak_rss_bytes"] for a in answers)
    return chosen


def _log(text: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {text}", file=sys.stderr, flush=True)


def bench_size(size: Size, steps_wanted: set[str] | None, timeout: float) -> dict[str, Any]:
    result: dict[str, Any] = {"size": size.name, "copies": size.copies, "days": DAYS, "commit": _git_commit(),
                              "measured_at": datetime.now(UTC).isoformat(timespec="seconds")}
    gen = _generated(size)
    reuse = os.environ.get("BENCH_REUSE") == "1" and _db_path(size).exists()
    # `capplan --help` and the import steps read no bench database: asked for alone, they skip the
    # ingest (tens of minutes at L) and keep its earlier figures
    only_cli = bool(steps_wanted) and steps_wanted <= {"help", "import_parquet", "import_csv"}
    if gen is None and not reuse:
        _log(f"{size.name}: generating {size.copies} copies of the sample cluster over {DAYS} days")
        answer = run_child(["generate", size.name], timeout)
        if answer.get("stamp") is None:
            raise SystemExit(f"generation failed for {size.name}: {answer}")
        gen = answer
    result["generate"] = gen
    if reuse or only_cli:
        _log(f"{size.name}: reusing {_db_path(size)} (BENCH_REUSE=1)" if reuse else f"{size.name}: no ingest (only {sorted(steps_wanted or ())})")
        previous = _previous_results().get(size.name, {})
        result["ingest"] = {**previous.get("ingest", {}), "reused": True}
    else:
        _log(f"{size.name}: ingest")
        result["ingest"] = run_child(["ingest", size.name], timeout)
        _log(f"{size.name}: ingest {result['ingest']}")
    previous = _previous_results().get(size.name, {})
    result["imports"] = dict(previous.get("imports", {}))
    if not steps_wanted or "help" in steps_wanted:
        _log(f"{size.name}: capplan --help")
        result["help"] = run_child(["help"], timeout)
    elif previous.get("help"):
        result["help"] = previous["help"]
    _log(f"{size.name}: machine check")
    result["machine"] = {"before_imports": run_child(["machine"], timeout)}
    for kind in IMPORT_DAYS:
        name = f"import_{kind}"
        if steps_wanted and name not in steps_wanted:
            continue
        _log(f"{size.name}: {name}")
        run_child(["long_file", size.name, kind], timeout)
        result.setdefault("imports", {})[kind] = {**run_repeated(["import", size.name, kind], timeout),
                                                  "commit": result["commit"]}
        _log(f"{size.name}: {name} {result['imports'][kind]}")
    if not steps_wanted or "rollup" in steps_wanted:
        _log(f"{size.name}: rollup")
        result["rollup"] = {**run_child(["rollup", size.name], timeout), "commit": result["commit"]}
        _log(f"{size.name}: rollup {result['rollup']}")
    elif previous.get("rollup"):
        result["rollup"] = previous["rollup"]
    steps = list(analysis_steps(_strategies()))
    # with BENCH_REUSE, steps not run now keep their earlier figures (each step records its commit)
    # (and so do they when only some steps are asked for: the DB is rebuilt from the same data)
    result["steps"] = (dict(_previous_results().get(size.name, {}).get("steps", {}))
                       if reuse or steps_wanted else {})
    for step in steps:
        if steps_wanted and step not in steps_wanted:
            continue
        _log(f"{size.name}: {step}")
        # (the per-container baseline runs once: ~2 minutes at L, and no target of its own)
        runner = run_child if step.startswith("baseline") else run_repeated
        result["steps"][step] = {**runner(["step", size.name, step], timeout), "commit": result["commit"]}
        _log(f"{size.name}: {step} {result['steps'][step]}")
    if not steps_wanted or "year" in steps_wanted:
        _log(f"{size.name}: year")
        result["year"] = {**run_child(["year", size.name], timeout), "commit": result["commit"]}
        _log(f"{size.name}: year {result['year']}")
    elif previous.get("year"):
        result["year"] = previous["year"]
    for step in YEAR_STEPS:
        if (steps_wanted and step not in steps_wanted) or not _year_db_path(size).exists():
            continue
        _log(f"{size.name}: {step}")
        result["steps"][step] = {**run_repeated(["step", size.name, step], timeout), "commit": result["commit"]}
        _log(f"{size.name}: {step} {result['steps'][step]}")
    if not steps_wanted or "serve" in steps_wanted:
        _log(f"{size.name}: serve")
        result["serve"] = {**run_child(["serve", size.name], timeout), "commit": result["commit"]}
        _log(f"{size.name}: serve {result['serve']}")
    elif previous.get("serve"):
        result["serve"] = previous["serve"]
    # issue 21: the lake and both engines, only when asked for (BENCH_STEPS=lake): Spark takes a while to start
    if steps_wanted and "lake" in steps_wanted:
        from bench import lake_bench

        _log(f"{size.name}: lake export")
        lake_result: dict[str, Any] = {"commit": result["commit"], "engines": {}}
        lake_result["export"] = run_child(["lake_export", size.name], timeout)
        _log(f"{size.name}: lake export {lake_result['export']}")
        for analysis in lake_bench.ANALYSES:
            for engine in lake_bench.ENGINES:
                _log(f"{size.name}: {analysis} on {engine}")
                lake_result["engines"][f"{engine}:{analysis}"] = run_child(["engine", size.name, engine, analysis], timeout)
                _log(f"{size.name}: {analysis} on {engine} {lake_result['engines'][f'{engine}:{analysis}']}")
        result["lake"] = lake_result
    elif previous.get("lake"):
        result["lake"] = previous["lake"]
    if size.name == "M" and (not steps_wanted or "collect" in steps_wanted):
        _log(f"{size.name}: collect")
        result["collect"] = {**run_child(["collect", size.name], timeout * 2), "commit": result["commit"]}
        _log(f"{size.name}: collect {result['collect']}")
    elif size.name == "M" and _previous_results().get("M", {}).get("collect"):
        result["collect"] = _previous_results()["M"]["collect"]
    result["machine"]["end"] = run_child(["machine"], timeout)
    _log(f"{size.name}: machine check {result['machine']}")
    return result


def _previous_results() -> dict[str, Any]:
    if RESULTS.exists():
        try:
            return json.loads(RESULTS.read_text()).get("sizes", {})
        except json.JSONDecodeError:
            return {}
    return {}


def _git_commit() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "capplan", "queries", "bench/run.py"],
                               cwd=ROOT, capture_output=True, text=True).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# --- the table -------------------------------------------------------------------------------

def _fmt_seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"


def _fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value / 1e6:.2f} M/s"


def _fmt_bytes(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f} MiB"


def _step_seconds(size_result: dict[str, Any], step: str) -> float | str | None:
    entry = size_result.get("steps", {}).get(step)
    if entry is None:
        return None
    if entry.get("status") != "ok":
        return entry.get("status")
    if entry.get("cpu_seconds") is not None:
        return f"{_fmt_seconds(entry['seconds'])} (cpu {entry['cpu_seconds']:.1f}){_runs_range(entry)}"
    return entry["seconds"]


def _machine_check(r: dict[str, Any]) -> str | None:
    """The machine check's CPU seconds (child_machine) before the imports and at the end of the
    size, with their wall seconds; None when the size's run had none."""
    checks = r.get("machine") or {}
    shown = []
    for when in ("before_imports", "end"):
        entry = checks.get(when) or {}
        if entry.get("status") != "ok":
            shown.append(str(entry.get("status", "-")))
            continue
        shown.append(f"{entry['cpu_seconds']:.2f} ({entry['seconds']:.2f} s)")
    return " / ".join(shown) if checks else None


def _runs_range(entry: dict[str, Any]) -> str:
    """' median of N, A-B s' for an entry of several runs (run_repeated), else nothing."""
    seconds = entry.get("seconds_runs")
    if not seconds:
        return ""
    return f" median of {len(seconds)}, {min(seconds):.1f}-{max(seconds):.1f} s"


def _step_value(size_result: dict[str, Any], step: str) -> float | None:
    entry = size_result.get("steps", {}).get(step) or {}
    return entry.get("seconds") if entry.get("status") == "ok" else None


def derived(size_result: dict[str, Any]) -> dict[str, Any]:
    """Ratios and maxima computed from one size's raw results."""
    out: dict[str, Any] = {}
    base = _step_value(size_result, "baseline_simple")
    simple = _step_value(size_result, "recommend_simple")
    if isinstance(base, float) and isinstance(simple, float) and simple > 0:
        out["baseline_ratio"] = base / simple
    steps = size_result.get("steps", {})
    b, c = steps.get("baseline_simple", {}), steps.get("recommend_simple", {})
    for key in ("cpu_request_sum_cores", "memory_request_sum_bytes"):
        if b.get(key) and c.get(key):
            out[f"baseline_vs_capplan_{key}"] = b[key] / c[key]
    rss = [e.get("peak_rss_bytes") for name, e in size_result.get("steps", {}).items()
           if name != "baseline_simple" and e.get("peak_rss_bytes") and not str(e.get("status")).startswith("n/a")]
    if rss:
        out["analysis_peak_rss_bytes"] = max(rss)
    rss = [e.get("peak_rss_bytes") for name, e in size_result.get("steps", {}).items()
           if name.startswith("recommend_") and e.get("status") == "ok" and e.get("peak_rss_bytes")]
    if rss:
        out["recommend_peak_rss_bytes"] = max(rss)
    roll, ingest = size_result.get("rollup") or {}, size_result.get("ingest") or {}
    if roll.get("status") == "ok" and ingest.get("bytes_per_sample") and roll.get("bytes_per_hourly_row"):
        out["year_bytes"] = (ingest["bytes_per_sample"] * roll["raw_samples_per_day"] * YEAR_RAW_DAYS
                             + roll["bytes_per_hourly_row"] * roll["hourly_rows_per_day"] * (YEAR_DAYS - YEAR_RAW_DAYS))
    collect = size_result.get("collect") or {}
    if collect.get("status") == "ok":
        full, floor, incr = (collect.get(k) for k in ("full_seconds", "floor_seconds", "incremental_seconds"))
        if full and floor:
            out["collect_vs_floor"] = full / floor
        if full and incr:
            out["full_vs_incremental"] = full / incr
    return out


def _load_range(size_result: dict[str, Any]) -> str | None:
    entries = [size_result.get("ingest") or {}, *size_result.get("steps", {}).values(),
               *(size_result.get("imports") or {}).values()]
    loads = [load for e in entries for load in (e.get("load_averages_before") or [e.get("load_average_before")])
             if load is not None]
    return f"{min(loads):.1f}-{max(loads):.1f}" if loads else None


# Targets of issue 14 (every command at L on a quiet 2-core machine), per step: (seconds, peak RSS).
COMMAND_TARGETS: dict[str, tuple[float | None, float | None]] = {
    "report": (30, 2 * GiB),
    "eviction": (10, 2 * GiB),
    "forecast": (10, 2 * GiB),
    "nodes": (5, 2 * GiB),
    "recommend_auto": (5, 1 * GiB),
    "recommend_vpa": (5, 1 * GiB),
    "recommend_simple": (3, 1 * GiB),
    "recommend_max-target": (None, 1 * GiB),
    "fit": (None, 2 * GiB),
    "rollout": (None, 2 * GiB),
    "year_forecast_365d": (10, 2 * GiB),
    "year_recommend_vpa_90d": (10, 2 * GiB),
    "year_recommend_auto_90d": (10, 2 * GiB),
}
# Peak RSS at L may be at most this multiple of M's for every command (memory must not grow with samples).
RSS_GROWTH_LIMIT = 1.5
STORAGE_TARGET_BYTES = 6.0       # raw bytes per sample on disk
HELP_TARGET_SECONDS = 0.3        # `capplan --help`
IMPORT_TARGETS = {"parquet": 5e6, "csv": 1e6}  # `capplan import` rows/s
YEAR_TARGET_BYTES = 4 * GiB      # a year of L: raw for the retention, rollups before


def _deployment_memory_limit() -> tuple[str, float]:
    """The memory limit deploy/deployment.yaml declares for `capplan serve`."""
    import re

    text = (ROOT / "deploy" / "deployment.yaml").read_text()
    found = re.search(r"limits:\s*\{[^}]*memory:\s*([0-9.]+)(Mi|Gi)", text)
    if not found:
        return "?", float("inf")
    return found.group(1) + found.group(2), float(found.group(1)) * (2**20 if found.group(2) == "Mi" else GiB)


SERVE_LIMIT_TEXT, SERVE_LIMIT_BYTES = _deployment_memory_limit()


def _fmt_gib_target(limit: float) -> str:
    return f"<= {limit / GiB:.0f} GiB"


def _rss_ratio(results: dict[str, Any], step: str) -> float | None:
    """Peak RSS of STEP at L over that at M (memory must not grow with samples)."""
    sizes = results.get("sizes", {})
    m, l_ = ((sizes.get(s, {}).get("steps", {}).get(step) or {}) for s in ("M", "L"))
    if m.get("status") == "ok" and l_.get("status") == "ok" and m.get("peak_rss_bytes"):
        return l_["peak_rss_bytes"] / m["peak_rss_bytes"]
    return None


# (label, getter, formatter, target text, check(value) -> bool[, numeric getter for the check])
def _import_cpu(kind: str):
    def get(r: dict[str, Any]) -> str | None:
        entry = (r.get("imports") or {}).get(kind) or {}
        if entry.get("status") != "ok" or entry.get("cpu_seconds") is None:
            return None
        return f"{_fmt_rate(entry['rows'] / entry['cpu_seconds'])} (cpu {entry['cpu_seconds']:.1f} s){_runs_range(entry)}"
    return get


def _import_rss_ratio(kind: str):
    return lambda r: (r.get("import_rss_vs_M") or {}).get(kind)


def table_rows(strategies: tuple[str, ...]):
    def ingest(key):
        return lambda r: (r.get("ingest") or {}).get(key)

    def step(name):
        return lambda r: _step_seconds(r, name)

    def rss(name):  # only of a step that finished: a failed one's peak says nothing about the target
        return lambda r: (((r.get("steps") or {}).get(name) or {}).get("peak_rss_bytes")
                          if ((r.get("steps") or {}).get(name) or {}).get("status") == "ok" else None)

    def der(key):
        return lambda r: derived(r).get(key)

    def coll(key):
        return lambda r: ((r.get("collect") or {}).get(key) if (r.get("collect") or {}).get("status") == "ok"
                          else (r.get("collect") or {}).get("status"))

    def imp(kind, key):
        def get(r):
            entry = (r.get("imports") or {}).get(kind) or {}
            return entry.get(key) if entry.get("status") == "ok" else entry.get("status")
        return get

    rows = [
        ("measured on commit", lambda r: r.get("commit"), str, "", None),
        ("load average at step starts (2 cpus)", _load_range, str, "", None),
        ("machine check: fixed DuckDB work, CPU s (before imports / end)", _machine_check, str, "", None),
        ("containers (series)", ingest("series"), lambda v: f"{v:,}", "", None),
        ("samples", ingest("samples"), lambda v: f"{v / 1e6:.2f} M", "", None),
        ("capplan --help (median of 7)", lambda r: (r.get("help") or {}).get("seconds"), _fmt_seconds,
         f"<= {HELP_TARGET_SECONDS} s", lambda v: v <= HELP_TARGET_SECONDS),
        ("capplan --help (best of 7)", lambda r: (r.get("help") or {}).get("best_seconds"), _fmt_seconds, "", None),
        # (how the bench loads its own data, store.write_usage: issue 14 sets the 5 M samples/s on
        # the user's path, `capplan import` of a Parquet file, the import rows below)
        ("ingest samples/s (the bench's writer, write_usage)", ingest("samples_per_second"), _fmt_rate, "", None),
        ("ingest incl. CHECKPOINT", ingest("samples_per_second_with_checkpoint"), _fmt_rate, "", None),
        ("ingest peak RSS", lambda r: (r.get("ingest") or {}).get("peak_rss_bytes"), _fmt_bytes, "", None),
        ("  ingest: clustering complete days (cpu s)", ingest("cluster_cpu_seconds"),
         lambda v: f"{v:.1f} s", "", None),
        ("bytes/sample on disk (raw samples: usage_raw)", ingest("raw_bytes_per_sample"), lambda v: f"{v:.2f} B",
         f"<= {STORAGE_TARGET_BYTES:g} B", lambda v: v <= STORAGE_TARGET_BYTES),
        ("  whole file per sample (+ node/namespace sums, specs)", ingest("bytes_per_sample"),
         lambda v: f"{v:.2f} B", "", None),
    ]
    for kind, days in IMPORT_DAYS.items():
        target = IMPORT_TARGETS[kind]
        rows += [
            (f"capplan import {kind} ({days} d), rows/s", imp(kind, "rows_per_second"), _fmt_rate,
             f">= {target / 1e6:g} M/s", lambda v, target=target: v >= target),
            # on 2 cores the quiet wall time is at least cpu / 2: rows per CPU-second x 2 bounds the rate
            (f"  import {kind}: rows per CPU-second (cpu s)", _import_cpu(kind), str, "", None),
            (f"capplan import {kind} ({days} d), peak RSS",
             lambda r, kind=kind: ((r.get("imports") or {}).get(kind) or {}).get("peak_rss_bytes"), _fmt_bytes, "", None),
            (f"  import {kind}: peak RSS L / M", _import_rss_ratio(kind), lambda v: f"{v:.2f}x",
             f"<= {RSS_GROWTH_LIMIT:g}x", lambda v: v <= RSS_GROWTH_LIMIT),
        ]
    def roll(key):
        return lambda r: ((r.get("rollup") or {}).get(key) if (r.get("rollup") or {}).get("status") == "ok"
                          else (r.get("rollup") or {}).get("status"))

    rows += [
        (f"one year on disk ({YEAR_RAW_DAYS} d raw + {YEAR_DAYS - YEAR_RAW_DAYS} d hourly, projected)", der("year_bytes"),
         lambda v: f"{v / GiB:.2f} GiB", _fmt_gib_target(YEAR_TARGET_BYTES), lambda v: v <= YEAR_TARGET_BYTES),
        ("one year on disk, measured (30 d raw + 336 d hourly)",
         lambda r: (r.get("year") or {}).get("file_bytes") if (r.get("year") or {}).get("status") == "ok"
         else (r.get("year") or {}).get("status"), lambda v: f"{v / GiB:.2f} GiB",
         _fmt_gib_target(YEAR_TARGET_BYTES), lambda v: v <= YEAR_TARGET_BYTES),
        ("  hourly rollup bytes/row", roll("bytes_per_hourly_row"), lambda v: f"{v:.1f} B", "", None),
        ("  hourly rows per day", roll("hourly_rows_per_day"), lambda v: f"{v:,.0f}", "", None),
        ("  rollup seconds per day of samples", roll("seconds_per_day"), _fmt_seconds, "", None),
    ]
    ordered = [f"recommend_{s}" for s in strategies] + ["nodes", "fit", "eviction", "forecast", "rollout", "report",
                                                        *YEAR_STEPS]
    labels = {"fit": "fit --cpu 500m --memory 1Gi", "report": "report (all sections)",
              "year_forecast_365d": "year: forecast --window 365d", "year_recommend_vpa_90d": "year: recommend vpa --window 90d",
              "year_recommend_auto_90d": "year: recommend auto --window 90d"}
    for name in ordered:
        label = labels.get(name, name.replace("_", " "))
        seconds_target, rss_target = COMMAND_TARGETS.get(name, (None, None))
        rows.append((label, step(name), _fmt_seconds,
                     f"<= {seconds_target:g} s" if seconds_target else "",
                     (lambda v, s=seconds_target: v <= s) if seconds_target else None,
                     lambda r, n=name: _step_value(r, n)))
        rows.append((f"  {label}: peak RSS", rss(name), _fmt_bytes,
                     _fmt_gib_target(rss_target) if rss_target else "",
                     (lambda v, s=rss_target: v <= s) if rss_target else None))
        rows.append((f"  {label}: peak RSS L / M", lambda r, n=name: (r.get("rss_vs_M") or {}).get(n),
                     lambda v: f"{v:.2f}x", f"<= {RSS_GROWTH_LIMIT}x", lambda v: v <= RSS_GROWTH_LIMIT))
    def serve(key):
        return lambda r: ((r.get("serve") or {}).get(key) if (r.get("serve") or {}).get("status") == "ok"
                          else (r.get("serve") or {}).get("status"))

    rows += [
        ("serve: every endpoint once, total", serve("seconds"), _fmt_seconds, "", None),
        ("  serve: peak RSS (VmHWM) -> pod memory limit", serve("peak_rss_bytes_server"), _fmt_bytes,
         f"<= {SERVE_LIMIT_TEXT} (deploy/)", lambda v: v <= SERVE_LIMIT_BYTES),
        ("  serve: RSS idle after start", serve("idle_rss_bytes"), _fmt_bytes, "", None),
    ]
    rows += [
        ("baseline simple (1 query/container)", step("baseline_simple"), _fmt_seconds, "", None),
        ("baseline / capplan simple", der("baseline_ratio"), lambda v: f"{v:.1f}x", ">= 20x", lambda v: v >= 20),
        ("  same answer? sum cpu req baseline/capplan", der("baseline_vs_capplan_cpu_request_sum_cores"),
         lambda v: f"{v:.3f}", "", None),
        ("  same answer? sum mem req baseline/capplan", der("baseline_vs_capplan_memory_request_sum_bytes"),
         lambda v: f"{v:.3f}", "", None),
        ("baseline peak RSS", rss("baseline_simple"), _fmt_bytes, "", None),
        ("collect full (M)", coll("full_seconds"), _fmt_seconds, "", None),
        ("collect queries", coll("queries"), lambda v: f"{v}", "", None),
        ("Prometheus floor, same queries", coll("floor_seconds"), _fmt_seconds, "", None),
        ("collect / floor", der("collect_vs_floor"), lambda v: f"{v:.2f}x", "<= 2x", lambda v: v <= 2),
        ("collect incremental +1h", coll("incremental_seconds"), _fmt_seconds, "", None),
        # issue 8's ">= 100x" compared a 30-day first collection at M (105.9 s) with the next hour;
        # bench/collect_bench.py's first run is 7 days (issue 15's), so that target does not apply:
        # issue 15's own targets (first run, next hour <= 1.5 s) are in bench/collect_results.json
        ("collect first run (7 d) / next hour", der("full_vs_incremental"), lambda v: f"{v:.0f}x", "", None),
    ]
    from bench import lake_bench

    rows += lake_bench.table_rows(_fmt_seconds, _fmt_bytes)
    return rows


def render_table(results: dict[str, Any]) -> str:
    sizes = [s for s in ("S", "M", "L") if s in results["sizes"]]
    if "L" in results["sizes"]:
        results["sizes"]["L"]["rss_vs_M"] = {name: ratio for name in COMMAND_TARGETS
                                             if (ratio := _rss_ratio(results, name)) is not None}
        if "M" in results["sizes"]:
            peaks = {size: {kind: entry.get("peak_rss_bytes") for kind, entry in
                            (results["sizes"][size].get("imports") or {}).items()} for size in ("M", "L")}
            results["sizes"]["L"]["import_rss_vs_M"] = {
                kind: peaks["L"][kind] / peaks["M"][kind] for kind in IMPORT_DAYS
                if peaks["L"].get(kind) and peaks["M"].get(kind)}
    rows = table_rows(tuple(results.get("strategies", STRATEGIES_DEFAULT)))
    header = ["metric", *sizes, "target", "verdict"]
    lines = []
    for label, getter, fmt, target, check, *numeric in rows:
        judged = numeric[0] if numeric else getter
        cells = [label]
        verdict = ""
        for s in sizes:
            value = getter(results["sizes"][s])
            if value is None:
                cells.append("-")
            elif isinstance(value, str):
                cells.append(value)
            else:
                cells.append(fmt(value))
        if check is not None:
            # judged at the largest size measured (the targets are stated for L)
            for s in reversed(sizes):
                value = judged(results["sizes"][s])
                if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
                    verdict = ("pass" if check(value) else "MISS") + ("" if s == "L" else f" (at {s})")
                    break
            else:
                verdict = "n/a"
        cells += [target, verdict]
        lines.append(cells)
    widths = [max(len(str(row[i])) for row in [header, *lines]) for i in range(len(header))]
    def fmt_line(row: list[Any]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
    out = [fmt_line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [fmt_line(r) for r in lines]
    return "\n".join(out)


def main() -> int:
    wanted = [s.strip().upper() for s in os.environ.get("BENCH_SIZE", "S,M").split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SIZES]
    if unknown:
        print(f"bench: unknown size(s) {', '.join(unknown)}; use S, M, L", file=sys.stderr)
        return 2
    steps_env = os.environ.get("BENCH_STEPS")
    steps_wanted = {s.strip() for s in steps_env.split(",")} if steps_env else None
    timeout = float(os.environ.get("BENCH_TIMEOUT", "1800"))
    results: dict[str, Any] = {
        "commit": _git_commit(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "window": os.environ.get("BENCH_WINDOW", f"{DAYS}d"),
        "strategies": list(_strategies()),
        "sizes_this_run": wanted,
        "sizes": {},
    }
    WORK.mkdir(parents=True, exist_ok=True)
    for name in wanted:
        size_result = bench_size(SIZES[name], steps_wanted, timeout)
        size_result["derived"] = derived(size_result)
        # keep sizes measured by earlier runs (e.g. L from a separate run) so the table shows S, M
        # and L; read them now, not at the start, since another bench run may have written since
        merged = {**_previous_results(), name: size_result}
        results["sizes"] = {k: merged[k] for k in ("S", "M", "L") if k in merged}
        RESULTS.write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(f"capplan bench  commit {results['commit']}  {results['machine']['cpus']} cpus  "
          f"window {results['window']}  sizes run now: {','.join(wanted)}")
    print(render_table(results))
    print(f"results: {RESULTS}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "_child":
        answer = CHILDREN[sys.argv[2]](*sys.argv[3:])
        print(json.dumps(answer, default=str))
        sys.exit(0)
    if len(sys.argv) >= 2 and sys.argv[1] == "table":  # re-print the table of bench/results.json
        print(render_table(json.loads(RESULTS.read_text())))
        sys.exit(0)
    sys.exit(main())
