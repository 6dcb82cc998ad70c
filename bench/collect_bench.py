"""Collector benchmark: `capplan collect` of a ~1,000-pod, 14-day cluster from a local Prometheus.

    .venv/bin/python bench/collect_bench.py [S|M|L]          # default M (~1,000 pods)

Builds (once, cached in bench/work/collect-<size>/tsdb) the kube-state-metrics v2 + cAdvisor
series of `generate_cluster(copies=k)` over 14 days (BENCH_COLLECT_DAYS) at the generator's
5-minute resolution with tests/promharness.py (without kube-state-metrics' 0-valued phase/QoS
series, to keep the backfill short), starts a real Prometheus on its own copy, and measures:

- full: a first `capplan collect --step 5m` of the whole window, in a child process so its peak
  RSS is the collector's alone (Prometheus and promtool are other processes);
- floor: the same range queries sent with plain `requests` at the same concurrency and bodies
  read but not parsed or stored: what the Prometheus and the HTTP transfer cost by themselves;
- incremental: the next hourly run (the last hour of the window).

`run_collect_bench(size) -> dict` is what bench/run.py calls.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from capplan.collect.run import CollectOptions, plan_queries  # noqa: E402
from capplan.collect.queries import epoch  # noqa: E402
from capplan.sample import generate_cluster  # noqa: E402
from tests.promharness import PrometheusServer, build_cluster_tsdb, cached_tsdb, missing_binaries  # noqa: E402

WORK = ROOT / "bench" / "work"
DAYS = int(os.environ.get("BENCH_COLLECT_DAYS", "14"))
STEP = "5m"
CONCURRENCY = 2
# copies of the base cluster (~65 pods and ~62 live containers each)
COPIES = {"S": 2, "M": 16, "L": 160}


def _build(size: str, days: int) -> tuple[Path, dict[str, Any], Any]:
    cluster = generate_cluster(seed=7, days=days, copies=COPIES[size])
    info: dict[str, Any] = {"pods": cluster.frames["pods"].height, "containers": cluster.frames["containers"].height}

    def build(path: Path) -> None:
        t0 = time.monotonic()
        # zero_series=False: kube-state-metrics' 0-valued phase/QoS series are left out to keep the
        # backfill to minutes (the collector filters them with `== 1` anyway)
        result = build_cluster_tsdb(cluster, path / "tsdb", cluster.start, cluster.end, window=timedelta(days=1),
                                    zero_series=False)
        (path / "info.json").write_text(json.dumps({"series": result.series, "samples": result.samples,
                                                     "build_seconds": time.monotonic() - t0}))

    folder = cached_tsdb(WORK, f"collect-{size}-{days}d", build)
    info.update(json.loads((folder / "info.json").read_text()))
    return folder / "tsdb", info, cluster


def _child_collect(url: str, db: Path, *args: str) -> tuple[dict[str, Any], float, int]:
    """`capplan collect` in a child process: its JSON summary, wall seconds, and its own peak RSS
    (os.wait4's rusage of that child; capplan starts no processes of its own)."""
    cmd = [sys.executable, "-m", "capplan", "collect", "--prometheus-url", url, "--db", str(db), "--step", STEP,
           "--concurrency", str(CONCURRENCY), "--format", "json", *args]
    out_path, err_path = db.with_suffix(".out"), db.with_suffix(".err")
    t0 = time.perf_counter()
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"collect failed ({code}): {err_path.read_text().strip()[-400:]}")
    return json.loads(out_path.read_text().strip().splitlines()[-1]), wall, usage.ru_maxrss * 1024


def _floor(url: str, start, end) -> tuple[float, int, int]:
    """The collector's range queries, plain HTTP, bodies read and dropped."""
    import requests

    plan = plan_queries(CollectOptions(url=url, start=start, end=end, step_seconds=300, concurrency=CONCURRENCY))
    session = requests.Session()
    headers = {"Accept-Encoding": "identity"}

    def fetch(job) -> int:
        _key, promql, lo, hi, step = job
        resp = session.get(f"{url}/api/v1/query_range", headers=headers,
                           params={"query": promql, "start": epoch(lo), "end": epoch(hi), "step": step}, timeout=600)
        resp.raise_for_status()
        return len(resp.content)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        sizes = list(pool.map(fetch, plan.jobs))
    return time.perf_counter() - t0, len(plan.jobs) + plan.planning_queries, sum(sizes)


def run_collect_bench(size: str = "M", days: int = DAYS) -> dict[str, Any]:
    """Build (cached) and collect; returns the figures (seconds, samples/s, queries, peak RSS...)."""
    reason = missing_binaries()
    if reason:
        return {"status": f"n/a ({reason})"}
    t0 = time.perf_counter()
    tsdb, info, cluster = _build(size, days)
    build_wall = time.perf_counter() - t0
    # a private folder: two benchmark processes must not share (or delete) each other's DB
    db_dir = Path(tempfile.mkdtemp(prefix=f"collect-{size}-run-", dir=WORK))
    db = db_dir / "collect.duckdb"
    start = cluster.start
    last_hour = cluster.end - timedelta(hours=1)
    with PrometheusServer(tsdb) as prom:
        full, full_wall, rss = _child_collect(prom.url, db, "--start", start.isoformat(), "--end", last_hour.isoformat())
        incr, incr_wall, _ = _child_collect(prom.url, db, "--end", cluster.end.isoformat())
        floor_seconds, floor_queries, floor_bytes = _floor(prom.url, start, last_hour)
    db_bytes = db.stat().st_size
    shutil.rmtree(db_dir, ignore_errors=True)
    return {
        "size": size, "days": days, "step": STEP, "concurrency": CONCURRENCY,
        "pods": info["pods"], "containers": info["containers"],
        "prometheus_series": info["series"], "prometheus_samples": info["samples"],
        "tsdb_build_seconds": info["build_seconds"], "setup_wall_seconds": build_wall,
        "full_seconds": full["seconds"], "full_wall_seconds": full_wall,
        "samples": full["samples"], "series": full["series"], "spec_rows": full["spec_rows"],
        "samples_per_second": full["samples"] / full["seconds"] if full["seconds"] else None,
        "queries": full["queries"], "chunks": full["chunks"],
        "collect_peak_rss_bytes": rss,
        "floor_seconds": floor_seconds, "floor_queries": floor_queries, "floor_bytes": floor_bytes,
        "incremental_seconds": incr["seconds"], "incremental_samples": incr["samples"],
        "incremental_queries": incr["queries"], "db_bytes": db_bytes,
    }


if __name__ == "__main__":
    result = run_collect_bench(sys.argv[1] if len(sys.argv) > 1 else "M")
    print(json.dumps(result, indent=1, default=str))
