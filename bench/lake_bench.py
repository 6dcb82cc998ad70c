"""The `lake` step of bench/run.py (issue 21): `capplan export-lake` of the size's database, and
the per-sample aggregates of `recommend` and `nodes` on both engines (DuckDB on the database,
Spark in local mode over the lake), each in its own child process.

    BENCH_SIZE=L BENCH_STEPS=lake .venv/bin/python bench/run.py

Figures per engine and analysis: wall time of the analysis (for Spark: with the session already
started, and the session start on its own), and peak RSS: the Python process's (os.wait4) and,
for Spark, the JVM's own peak (VmHWM of the driver JVM, which in local mode also runs the
executors); the row `peak RSS` adds both. Spark runs with `local[N]` (N = the machine's cores,
BENCH_SPARK_MASTER overrides) and BENCH_SPARK_DRIVER_MEMORY (default 2g) of heap.
"""

from __future__ import annotations

import os
import shutil
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

GiB = 2**30
ANALYSES = ("recommend_simple", "recommend_auto", "nodes")
ENGINES = ("duckdb", "spark")


def lake_dir(work: Path, size_name: str) -> Path:
    return work / size_name / "lake"


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def child_lake_export(db: Path, directory: Path) -> dict[str, Any]:
    """A fresh full export, then a rerun with nothing changed (the incremental floor)."""
    from capplan import lake, store

    shutil.rmtree(directory, ignore_errors=True)
    con = store.open_db(db, read_only=True)
    try:
        t0 = time.perf_counter()
        first = lake.export_lake(con, directory)
        full = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = lake.export_lake(con, directory)
        rerun = time.perf_counter() - t0
    finally:
        con.close()
    return {"status": "ok", "seconds": full, "rerun_seconds": rerun, "partitions": first.written,
            "rows": first.rows_written, "rerun_written": again.written, "lake_bytes": _du(directory),
            "db_bytes": db.stat().st_size}


def _jvm_peak_rss(session: Any) -> int:
    """VmHWM of the Spark driver JVM this process started (local mode: the executors too)."""
    pid = _jvm_pid(session)
    if pid is None:
        return 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def _cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of this process (all threads), or of process `pid` (the JVM)."""
    if pid is None:
        import resource

        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def _jvm_pid(session: Any) -> int | None:
    proc = getattr(session.sparkContext._gateway, "proc", None)  # the JVM pyspark launched
    return proc.pid if proc is not None else None


# Columns summed into `answer`: both engines must give the same sums (the tests compare row for row).
ANSWER_COLUMNS = {
    "nodes": ("cpu_usage_p95_cores", "cpu_usage_max_cores", "memory_usage_p95_bytes", "memory_usage_max_bytes"),
    "recommend": ("cpu_request_recommended", "memory_request_recommended", "memory_limit_recommended"),
}


def _run(con: Any, analysis: str, window: timedelta) -> tuple[int, dict[str, float]]:
    if analysis == "nodes":
        from capplan.analysis.nodes_overview import nodes_overview

        table = nodes_overview(con, window)
    else:
        from capplan.analysis.recommend import recommend
        from capplan.analysis.strategies import StrategyParams

        table = recommend(con, analysis.removeprefix("recommend_").replace("_", "-"), window, None, StrategyParams())
    columns = ANSWER_COLUMNS["nodes" if analysis == "nodes" else "recommend"]
    return table.height, {c: float(table[c].fill_null(0).sum()) for c in columns}


def child_engine(db: Path, directory: Path, engine: str, analysis: str, window: timedelta) -> dict[str, Any]:
    """One analysis on one engine, timed; for Spark the session start is timed apart."""
    from capplan import store

    con = store.open_db(db, read_only=True)
    out: dict[str, Any] = {"status": "ok"}
    try:
        if engine == "duckdb":
            t0, cpu0 = time.perf_counter(), _cpu_seconds()
            out["rows"], out["answer"] = _run(con, analysis, window)
            out["seconds"], out["cpu_seconds"] = time.perf_counter() - t0, _cpu_seconds() - cpu0
            return out
        from capplan.engines.spark import SparkEngine, spark_session

        t0 = time.perf_counter()
        session = spark_session(os.environ.get("BENCH_SPARK_MASTER", f"local[{os.cpu_count()}]"), {
            "spark.driver.memory": os.environ.get("BENCH_SPARK_DRIVER_MEMORY", "2g"),
            "spark.ui.enabled": "false"})
        out["session_seconds"] = time.perf_counter() - t0
        try:
            jvm = _jvm_pid(session)
            t0, cpu0, jvm0 = time.perf_counter(), _cpu_seconds(), _cpu_seconds(jvm) if jvm else 0.0
            with store.using_engine(SparkEngine(str(directory), session)):
                out["rows"], out["answer"] = _run(con, analysis, window)
            out["seconds"] = time.perf_counter() - t0
            out["cpu_seconds"] = _cpu_seconds() - cpu0 + ((_cpu_seconds(jvm) - jvm0) if jvm else 0.0)
            out["jvm_peak_rss_bytes"] = _jvm_peak_rss(session)
        finally:
            session.stop()
    finally:
        con.close()
    return out


def table_rows(fmt_seconds: Any, fmt_bytes: Any) -> list[tuple]:
    """Rows for bench/run.py's table: (label, getter, formatter, target, check)."""
    def lake_value(key: str) -> Any:
        return lambda r: ((r.get("lake") or {}).get("export") or {}).get(key)

    def engine_value(engine: str, analysis: str, key: str) -> Any:
        def get(r: dict[str, Any]) -> Any:
            entry = ((r.get("lake") or {}).get("engines") or {}).get(f"{engine}:{analysis}") or {}
            if entry.get("status") != "ok":
                return entry.get("status")
            if key == "peak_rss_bytes":
                return (entry.get("peak_rss_bytes") or 0) + (entry.get("jvm_peak_rss_bytes") or 0)
            return entry.get(key)
        return get

    rows: list[tuple] = [
        ("lake: export-lake, full", lake_value("seconds"), fmt_seconds, "", None),
        ("  lake: export-lake rerun, nothing changed", lake_value("rerun_seconds"), fmt_seconds, "", None),
        ("  lake: size on disk (database file)", lambda r: (lake_value("lake_bytes")(r), lake_value("db_bytes")(r))
         if lake_value("lake_bytes")(r) else None, lambda v: f"{fmt_bytes(v[0])} ({fmt_bytes(v[1])})", "", None),
    ]
    for analysis in ANALYSES:
        label = analysis.replace("_", " ")
        for engine, text in (("duckdb", "duckdb"), ("spark", "spark (session started)")):
            rows.append((f"lake: {label}, {text}", engine_value(engine, analysis, "seconds"), fmt_seconds, "", None))
            rows.append((f"  lake: {label}, {engine} CPU" + (" (python + JVM)" if engine == "spark" else ""),
                         engine_value(engine, analysis, "cpu_seconds"),
                         fmt_seconds, "", None))
        rows.append((f"  lake: {label}, peak RSS duckdb", engine_value("duckdb", analysis, "peak_rss_bytes"), fmt_bytes,
                     "", None))
        rows.append((f"  lake: {label}, peak RSS spark (python + JVM)", engine_value("spark", analysis, "peak_rss_bytes"),
                     fmt_bytes, "", None))
    def same_answer(r: dict[str, Any]) -> Any:
        engines = (r.get("lake") or {}).get("engines") or {}
        pairs = [((engines.get(f"duckdb:{a}") or {}).get("answer"), (engines.get(f"spark:{a}") or {}).get("answer"))
                 for a in ANALYSES]
        pairs = [(d, sp) for d, sp in pairs if d and sp]
        if not pairs:
            return None
        worst = max(abs(sp[k] - d[k]) / max(abs(d[k]), 1e-300) for d, sp in pairs for k in d)
        return f"yes ({len(pairs)} analyses, sums within {worst:.0e})" if worst <= 1e-9 else f"NO: {worst:.1e}"

    rows.append(("lake: same answer on both engines?", same_answer, str, "", None))
    rows.append(("  lake: spark session start", engine_value("spark", "nodes", "session_seconds"), fmt_seconds, "", None))
    return rows
