"""Where `capplan import FILE` spends its CPU: the stages of one import, in this process.

    .venv/bin/python bench/import_stages.py FILE DB

imports FILE (a long-format .parquet or .csv) into a new database DB (removed first) through
capplan.importer.import_long_format, and prints per stage (the checks' summary of the file, the
spec frames, the write, the node sums, the namespace sums and daily figures, the clustering, the
CHECKPOINT) the CPU seconds of the whole process (user + system, every DuckDB thread), the wall
seconds, the busiest thread's CPU seconds (CPU / busiest near 2 on two cores: the stage ran on both)
and the peak RSS so far; then every statement over 0.04 CPU-s. CPU seconds are what a loaded
machine changes little; the load average is printed with the total. bench/RESULTS.md has figures.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from capplan import file_ingest, importer, store  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def thread_seconds() -> dict[str, float]:
    """CPU seconds of each thread of this process (/proc/self/task/*/stat: utime + stime)."""
    out = {}
    for task in os.listdir("/proc/self/task"):
        try:
            fields = Path(f"/proc/self/task/{task}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a thread that ended meanwhile
        out[task] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return out


def busiest(before: dict[str, float]) -> float:
    after = thread_seconds()
    return max((after[t] - before.get(t, 0.0) for t in after), default=0.0)


def peak_rss_mib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


class Timed:
    """One stage's or statement's figures."""

    def __init__(self, label: str) -> None:
        self.label = label

    def __enter__(self) -> Timed:
        self.cpu, self.wall, self.threads = cpu_seconds(), time.perf_counter(), thread_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu = cpu_seconds() - self.cpu
        self.wall = time.perf_counter() - self.wall
        self.busiest = busiest(self.threads)
        self.rss = peak_rss_mib()

    def line(self) -> str:
        return (f"{self.label:58s} cpu {self.cpu:6.2f}  wall {self.wall:6.2f}  busiest thread {self.busiest:5.2f}"
                f"  peak RSS {self.rss:4d} MiB")


STAGES = ((file_ingest, "check_and_stage", "checks: the summary of the file"),
          (file_ingest, "spec_frames", "spec frames"),
          (file_ingest, "write_staged", "write (series, usage_raw; one transaction)"),
          (store, "_refresh_node_sums", "node sums (node_usage)"),
          (store, "refresh_scope_usage", "namespace sums and daily figures"),
          (store, "cluster_usage", "clustering complete days"))


def main(path: Path, db: Path) -> None:
    stages: list[Timed] = []
    statements: list[Timed] = []

    def timed(function: Callable[..., Any], label: str) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            with Timed(label) as t:
                try:
                    return function(*args, **kwargs)
                finally:
                    stages.append(t)
        return run

    for module, name, label in STAGES:
        setattr(module, name, timed(getattr(module, name), label))

    connect = store._connect

    class Connection:
        """The import's connection, timing each statement."""

        def __init__(self, con: Any) -> None:
            self._con = con

        def __getattr__(self, name: str) -> Any:
            return getattr(self._con, name)

        def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
            first = next((line.strip() for line in sql.splitlines()
                          if line.strip() and not line.strip().startswith("--")), "")
            with Timed("  " + first[:56]) as t:
                result = self._con.execute(sql, *args, **kwargs)
            if t.cpu > 0.04:
                statements.append(t)
            return result

    store._connect = lambda *a, **k: Connection(connect(*a, **k))  # type: ignore[assignment]
    for leftover in (db, db.with_name(db.name + ".wal")):
        leftover.unlink(missing_ok=True)
    with Timed("TOTAL (import_long_format)") as total:
        summary = importer.import_long_format(path, db)
    for stage in stages:
        if stage.cpu >= 0.01 or stage.wall >= 0.01:  # (the refresh at open finds nothing pending)
            print(stage.line())
    print(total.line(), f" rows {summary.samples_read:,}  load {os.getloadavg()[0]:.1f}")
    print("statements over 0.04 CPU-s:")
    for statement in statements:
        print(statement.line())


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
