"""`capplan backtest --splits` on the Bitbrains month (issue 20: "well under a minute").

Converts the trace (capplan.bitbrains), imports it into a fresh store, then runs the default
multi-split backtest (all strategies, 16 splits of 7d/14d/21d x 7d/14d every 3 days) in a child
process and reports its wall time, CPU time (user + system: the better guide on a shared
machine) and peak RSS against the target.

    python bench/backtest_bench.py [TRACE.parquet]
        (default tests/data/realdata/bitbrains_rnd_2013-07.parquet)

Prints one JSON line with the figures, the target and a verdict.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_TRACE = ROOT / "tests" / "data" / "realdata" / "bitbrains_rnd_2013-07.parquet"
# "well under a minute": half a minute of CPU, i.e. under a minute even on one free core
TARGET_CPU_SECONDS = 30.0
TARGET_RSS_BYTES = 2**30


def main(argv: list[str]) -> int:
    trace = Path(argv[0]) if argv else DEFAULT_TRACE
    if not trace.exists():
        print(f"no Bitbrains trace at {trace}: pass its path", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="capplan-bt-bench-") as tmp:
        frame, db = Path(tmp) / "bb.parquet", Path(tmp) / "bb.duckdb"
        # in children, so this process stays small (a forked child's peak RSS counts its parent's)
        subprocess.run([sys.executable, "-m", "capplan.bitbrains", str(trace), str(frame)], check=True,
                       capture_output=True)
        subprocess.run([sys.executable, "-m", "capplan", "import", str(frame), "--db", str(db)], check=True,
                       capture_output=True)
        out = Path(tmp) / "out.csv"
        started = time.monotonic()
        with out.open("w") as sink, open(Path(tmp) / "err.txt", "w") as err:
            child = subprocess.Popen([sys.executable, "-m", "capplan", "backtest", "--splits", "--db", str(db),
                                      "--format", "csv"], stdout=sink, stderr=err)
            _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage
        wall = time.monotonic() - started
        text = out.read_text()
        if os.waitstatus_to_exitcode(status) != 0:
            print((Path(tmp) / "err.txt").read_text(), file=sys.stderr)
            return 1
    cpu = usage.ru_utime + usage.ru_stime
    rss = usage.ru_maxrss * 1024  # kilobytes on Linux
    policies = max(0, len(text.strip().splitlines()) - 1)
    ok = cpu <= TARGET_CPU_SECONDS and rss <= TARGET_RSS_BYTES
    print(json.dumps({"bench": "backtest --splits (Bitbrains 2013-07)", "policies": policies,
                      "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
                      "peak_rss_bytes": rss, "target_cpu_seconds": TARGET_CPU_SECONDS,
                      "target_rss_bytes": TARGET_RSS_BYTES, "verdict": "met" if ok else "missed"}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
