"""Collector benchmark: a first run and the next hour, old commit against new, on one Prometheus.

    .venv/bin/python bench/collect_bench.py            # measure (and print the table)
    .venv/bin/python bench/collect_bench.py table      # print the last measured table

Data: bench/collect_bench's M cluster (`generate_cluster(copies=16, days=8)`: 944 pods, 1,184
containers; 14 days would hold 1,040 pods, as CronJob pods accumulate) over 8 days at the
generator's 5-minute resolution (the first run's 7 days, the next hour and a day to spare),
written as kube-state-metrics v2 + cAdvisor series by tests/promharness.py and backfilled once
into a cached TSDB (bench/work/collect-M-8d, ~7 minutes to build on 2 busy cores). One real Prometheus (Debian 2.42) serves it on
127.0.0.1; nothing else queries it.

Runs, each `capplan` command a child process (so wall time includes process start and peak RSS
is the collector's own, from os.wait4):
- first run: `collect --step 5m` of 7 days (start..end-1h), then `recommend` on that DB;
- next hour: `collect` without --start (from the high-water marks to end), then `recommend`.
Prometheus CPU is the rise of its own `process_cpu_seconds_total` over each run (read from its
/metrics before and after; the server is idle in between: the harness waits until it is), less
the server's background work: its idle CPU rate, measured over IDLE_SECONDS just before the run,
times the run's length (the raw rise and the idle rate are kept in bench/collect_results.json).
Both checkouts are byte-compiled first (as an installed package is).

Old = commit 7415b32 (the issue's baseline), measured from a checkout of it with its own venv:
`git worktree add /tmp/old 7415b32 && cd /tmp/old && python3 -m venv .venv && .venv/bin/pip install -e .`
(BENCH_COLLECT_OLD=/path overrides; without a checkout the old figures recorded in
bench/collect_results.json are shown again, with the commit and time they were measured).
Targets (issue 15): first run Prometheus CPU <= 15% of old and wall <= 35% of old; next hour
<= 1.5 s wall and <= 0.2 s Prometheus CPU; collector peak RSS <= 400 MiB.

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
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from capplan.sample import generate_cluster  # noqa: E402
from tests.promharness import PrometheusServer, build_cluster_tsdb, cached_tsdb, missing_binaries  # noqa: E402

WORK = ROOT / "bench" / "work"
RESULTS = ROOT / "bench" / "collect_results.json"
DAYS = 8           # data in the Prometheus: the first run's 7 days, the next hour, and a day to spare
COLLECT_DAYS = 7   # the first run's window (the issue's: 7 days)
STEP = "5m"
COPIES = {"S": 2, "M": 16, "L": 160}  # copies of the base cluster (~65 pods each)
OLD_COMMIT = "7415b32"
MiB = 2**20
# Seconds of idle server measured before each run: process_cpu_seconds_total moves in 10 ms steps
# and the idle server burns up to 20 ms/s (_wait_idle's bound), as much as a next-hour run's own
# queries over its few seconds.
IDLE_SECONDS = 8.0


def _build(size: str, days: int) -> tuple[Path, dict[str, Any], Any]:
    cluster = generate_cluster(seed=7, days=days, copies=COPIES[size])
    info: dict[str, Any] = {"pods": cluster.frames["pods"].height, "containers": cluster.frames["containers"].height}

    def build(path: Path) -> None:
        t0 = time.monotonic()
        # zero_series=False: kube-state-metrics' 0-valued phase/QoS series are left out to keep the
        # backfill to minutes (the collector filters them with `== 1` anyway)
        result = build_cluster_tsdb(cluster, path / "tsdb", cluster.start, cluster.end, window=timedelta(days=1),
                                    zero_series=False, node_labels=True)
        (path / "info.json").write_text(json.dumps({"series": result.series, "samples": result.samples,
                                                     "build_seconds": time.monotonic() - t0}))

    folder = cached_tsdb(WORK, f"collect-{size}-{days}d", build)
    info.update(json.loads((folder / "info.json").read_text()))
    return folder / "tsdb", info, cluster


def _own_metric(url: str, name: str) -> float:
    """One sample of the server's own /metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise RuntimeError(f"{url}/metrics has no {name}")


def prometheus_cpu_seconds(url: str) -> float:
    """The server's own process_cpu_seconds_total."""
    return _own_metric(url, "process_cpu_seconds_total")


def _wait_first_compaction(url: str, timeout: float = 150.0) -> None:
    """Until the TSDB's first compaction cycle has run. Prometheus starts it a minute after
    start-up, and on the cached TSDB it merges the backfill's overlapping blocks: ~1.2 s of server
    CPU (a Go CPU profile of the server during a first run: tsdb.(*DB).Compact), which landed in
    whichever run was going then (the old side's first run, or the new side's when the old one was
    skipped). _wait_idle then waits for it to end."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _own_metric(url, "prometheus_tsdb_compactions_triggered_total") >= 1:
            return
        time.sleep(1.0)


def _idle_rate(url: str, seconds: float = IDLE_SECONDS) -> float:
    """The server's CPU seconds per second while nobody queries it (head maintenance, Go's GC and
    runtime): measured over `seconds` just before a run, to subtract from the run's rise."""
    cpu0, t0 = prometheus_cpu_seconds(url), time.monotonic()
    time.sleep(seconds)
    return (prometheus_cpu_seconds(url) - cpu0) / (time.monotonic() - t0)


def _wait_idle(url: str, timeout: float = 300.0) -> None:
    """Until the server burns < 20 ms of CPU per second (start-up, compaction and the last run's
    garbage collection are over), so a run's CPU is its own."""
    deadline = time.monotonic() + timeout
    before = prometheus_cpu_seconds(url)
    while time.monotonic() < deadline:
        time.sleep(2.0)
        now = prometheus_cpu_seconds(url)
        if now - before < 0.04:
            return
        before = now


# Peak RSS is read by a tiny wrapper process: Linux keeps a process's RSS high-water mark across
# fork and exec, so a child forked straight from this benchmark (which holds the generated cluster)
# would report at least this process's size.
_WRAP = ("import os, subprocess, sys; p = subprocess.Popen(sys.argv[2:]); _, s, ru = os.wait4(p.pid, 0); "
         "open(sys.argv[1], 'w').write(str(ru.ru_maxrss * 1024)); sys.exit(os.waitstatus_to_exitcode(s))")


def _capplan(root: Path, python: str, args: list[str], out: Path) -> tuple[float, int, str]:
    """One `capplan` command from checkout `root`: wall seconds, peak RSS bytes, stdout."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    rss_file = out.with_suffix(".rss")
    t0 = time.perf_counter()
    with open(out, "w") as fh, open(out.with_suffix(".err"), "w") as err:
        code = subprocess.call(["/usr/bin/python3", "-S", "-c", _WRAP, str(rss_file), python, "-m", "capplan", *args],
                               stdout=fh, stderr=err, cwd=root, env=env)
    wall = time.perf_counter() - t0
    if code != 0:
        raise RuntimeError(f"capplan {args[0]} ({root}) failed ({code}): {out.with_suffix('.err').read_text()[-600:]}")
    return wall, int(rss_file.read_text()), out.read_text()


def _precompile(root: Path, python: str) -> None:
    """Byte-compile the checkout's capplan, as `pip install` does for an installed package: with
    PYTHONDONTWRITEBYTECODE set (as in this machine's shells and the Dockerfile) an editable
    checkout would otherwise compile every module it imports from source in every process
    (~0.07 s of CPU per `capplan` process, `python -X importtime`)."""
    subprocess.run([python, "-m", "compileall", "-q", str(root / "capplan")], check=False, capture_output=True)


def _measure(root: Path, python: str, url: str, start: datetime, first_end: datetime, next_end: datetime,
             folder: Path) -> dict[str, Any]:
    """First run and next hour from one checkout; figures per run."""
    db = folder / "collect.duckdb"
    out: dict[str, Any] = {}
    _precompile(root, python)
    for run, extra in (("first", ["--start", start.isoformat(), "--end", first_end.isoformat()]),
                       ("next_hour", ["--end", next_end.isoformat()])):
        _wait_idle(url)
        idle_rate = _idle_rate(url)
        cpu0, t0 = prometheus_cpu_seconds(url), time.monotonic()
        wall_c, rss_c, text = _capplan(root, python, ["collect", "--prometheus-url", url, "--db", str(db), "--step", STEP,
                                                      "--format", "json", *extra], folder / f"{run}-collect.out")
        summary = json.loads(text.strip().splitlines()[-1])
        wall_r, rss_r, _ = _capplan(root, python, ["recommend", "--db", str(db), "--format", "csv", "-o",
                                                   str(folder / f"{run}-recommend.csv")], folder / f"{run}-recommend.out")
        time.sleep(0.5)  # the server finishes accounting the last answers
        cpu1, t1 = prometheus_cpu_seconds(url), time.monotonic()
        background = idle_rate * (t1 - t0)
        out[run] = {"wall_seconds": wall_c + wall_r, "collect_wall_seconds": wall_c, "recommend_wall_seconds": wall_r,
                    "prometheus_cpu_seconds": cpu1 - cpu0 - background, "prometheus_cpu_raw_seconds": cpu1 - cpu0,
                    "prometheus_idle_cpu_per_second": idle_rate, "queries": summary.get("queries"),
                    "samples": summary.get("samples"), "collect_peak_rss_bytes": rss_c,
                    "recommend_peak_rss_bytes": rss_r}
    return out


def _commit_of(root: Path) -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def run_collect_bench(size: str = "M", days: int = DAYS) -> dict[str, Any]:
    """Measure new (this checkout) and, when a checkout of the old commit exists, old; returns and
    records the figures in bench/collect_results.json."""
    reason = missing_binaries()
    if reason:
        return {"status": f"n/a ({reason})"}
    days = max(days, DAYS)  # bench/run.py passes BENCH_COLLECT_DAYS (1 by default); the first run needs 7 days + 1 h
    tsdb, info, cluster = _build(size, days)
    old_root = Path(os.environ.get("BENCH_COLLECT_OLD", "/tmp/old"))
    old_python = old_root / ".venv" / "bin" / "python"
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    next_end = cluster.end
    first_end = next_end - timedelta(hours=1)
    start = first_end - timedelta(days=COLLECT_DAYS)
    WORK.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "size": size, "days_in_prometheus": days, "collect_days": COLLECT_DAYS, "step": STEP,
        "pods": info["pods"], "containers": info["containers"], "prometheus_series": info["series"],
        "prometheus_samples": info["samples"],
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_before": os.getloadavg()[0],
    }
    # --storage.tsdb.max-block-duration: the backfilled 1-day blocks stay as they are, so no
    # compaction runs while a measurement does
    with PrometheusServer(tsdb, extra_args=["--storage.tsdb.max-block-duration=1d"]) as prom:
        _wait_first_compaction(prom.url)
        folder = Path(tempfile.mkdtemp(prefix="collect-bench-", dir=WORK))
        try:
            if old_python.exists():
                (folder / "old").mkdir()
                result["old"] = {"commit": _commit_of(old_root),
                                 **_measure(old_root, str(old_python), prom.url, start, first_end, next_end, folder / "old")}
            elif previous.get("old"):
                result["old"] = {**previous["old"], "reused_from": previous.get("measured_at")}
            (folder / "new").mkdir()
            result["new"] = {"commit": _commit_of(ROOT),
                             **_measure(ROOT, sys.executable, prom.url, start, first_end, next_end, folder / "new")}
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    result["load_average_after"] = os.getloadavg()[0]
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    new = result["new"]
    # the keys bench/run.py's table shows
    return {**result, "full_seconds": new["first"]["collect_wall_seconds"], "queries": new["first"]["queries"],
            "incremental_seconds": new["next_hour"]["collect_wall_seconds"],
            "collect_peak_rss_bytes": new["first"]["collect_peak_rss_bytes"]}


def table(result: dict[str, Any]) -> str:
    """Old vs new with targets and verdicts."""
    old, new = result.get("old") or {}, result["new"]

    def get(side: dict[str, Any], run: str, key: str) -> Any:
        return (side.get(run) or {}).get(key)

    rows = []

    def row(label: str, run: str, key: str, fmt, target: str, check) -> None:
        o, n = get(old, run, key), get(new, run, key)
        verdict = "" if check is None or n is None else ("pass" if check(o, n) else "MISS")
        rows.append([label, fmt(o) if o is not None else "-", fmt(n) if n is not None else "-", target, verdict])

    def secs(v):
        return f"{v:.2f} s"
    def mib(v):
        return f"{v / MiB:.0f} MiB"
    row("first run wall (collect 7 d + recommend)", "first", "wall_seconds", secs, "<= 35% of old",
        lambda o, n: o is not None and n <= 0.35 * o)
    row("first run Prometheus CPU", "first", "prometheus_cpu_seconds", secs, "<= 15% of old",
        lambda o, n: o is not None and n <= 0.15 * o)
    row("first run queries", "first", "queries", str, "", None)
    row("first run collect peak RSS", "first", "collect_peak_rss_bytes", mib, "<= 400 MiB", lambda o, n: n <= 400 * MiB)
    row("next hour wall (collect + recommend)", "next_hour", "wall_seconds", secs, "<= 1.5 s", lambda o, n: n <= 1.5)
    row("  of which collect", "next_hour", "collect_wall_seconds", secs, "", None)
    row("  of which recommend", "next_hour", "recommend_wall_seconds", secs, "", None)
    row("next hour Prometheus CPU", "next_hour", "prometheus_cpu_seconds", secs, "<= 0.2 s", lambda o, n: n <= 0.2)
    row("next hour queries", "next_hour", "queries", str, "", None)
    for run, label in (("first", "first run"), ("next_hour", "next hour")):
        o, n = get(old, run, "prometheus_cpu_seconds"), get(new, run, "prometheus_cpu_seconds")
        if o and n is not None:
            rows.append([f"  {label}: new / old Prometheus CPU", "", f"{n / o:.0%}", "", ""])
        o, n = get(old, run, "wall_seconds"), get(new, run, "wall_seconds")
        if o and n is not None:
            rows.append([f"  {label}: new / old wall", "", f"{n / o:.0%}", "", ""])
    header = [f"collector ({result.get('size', 'M')}: {result.get('pods', 0):,} pods, {result.get('collect_days', 7)} d at 5 m)", f"old {old.get('commit', '-')}", f"new {new.get('commit')}",
              "target", "verdict"]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    def line(r):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
    idle = [get(side, run, "prometheus_idle_cpu_per_second") for side in (old, new) for run in ("first", "next_hour")]
    idle = [v for v in idle if v is not None]
    note = ((f"Prometheus CPU: its process_cpu_seconds_total over each run less its idle rate measured over "
             f"{IDLE_SECONDS:g} s before it ({min(idle) * 1000:.1f}-{max(idle) * 1000:.1f} ms/s) times the run's length\n"
             if idle else "")
            + f"measured {result.get('measured_at')}, load average {result.get('load_average_before', 0):.2f} before, "
            f"{result.get('load_average_after', 0):.2f} after (2 cpus)"
            + (f"; old figures reused from {old['reused_from']}" if old.get("reused_from") else ""))
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows), note])


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "table":
        if not RESULTS.exists():
            print("bench/collect_results.json: not measured yet (run bench/collect_bench.py)")
            sys.exit(0)
        print(table(json.loads(RESULTS.read_text())))
        sys.exit(0)
    outcome = run_collect_bench(sys.argv[1] if len(sys.argv) > 1 else "M")
    if "new" in outcome:
        print(table(outcome))
    else:
        print(json.dumps(outcome))
