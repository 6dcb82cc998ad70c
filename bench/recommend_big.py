"""Time `recommend` per strategy on a synthetic 86.4 M-sample store (10,000 series x 30 days at 5 min).

    .venv/bin/python bench/recommend_big.py /tmp/big.duckdb [strategy ...]

The store is built once in DuckDB itself (about 2 minutes); each strategy then runs in its own
process so its peak RSS is its own. Prints wall seconds, CPU seconds and peak RSS per strategy.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERIES, STEPS = 10_000, 8_640


def build(path: Path) -> None:
    """10,000 single-container pods in Deployments of five, with sine-shaped CPU and noisy memory."""
    sys.path.insert(0, str(ROOT))
    from capplan import store

    con = store.open_db(path)
    try:  # every row in the cluster 'default' (schema 005: the cluster column comes last)
        con.execute(f"INSERT INTO series SELECT i, 'ns' || (i % 20), 'pod-' || i, 'app', 'node-' || (i % 100), 'default' "
                    f"FROM range(1, {SERIES} + 1) t(i)")
        con.execute(f"INSERT INTO pods SELECT 'ns' || (i % 20), 'pod-' || i, TIMESTAMP '2024-01-01', "
                    f"TIMESTAMP '2024-01-31', 'node-' || (i % 100), 'ReplicaSet', 'rs-' || (i // 5), NULL, NULL, "
                    f"'Running', NULL, NULL, 'default' FROM range(1, {SERIES} + 1) t(i)")
        con.execute(f"INSERT INTO owners SELECT DISTINCT 'ns' || (i % 20), 'ReplicaSet', 'rs-' || (i // 5), "
                    f"TIMESTAMP '2024-01-01', TIMESTAMP '2024-01-31', 'Deployment', 'dep-' || (i // 5), 'default' "
                    f"FROM range(1, {SERIES} + 1) t(i)")
        con.execute(f"INSERT INTO containers SELECT 'ns' || (i % 20), 'pod-' || i, 'app', TIMESTAMP '2024-01-01', "
                    f"TIMESTAMP '2024-01-31', false, false, NULL, 0.5, NULL, 536870912, 1073741824, 'default' "
                    f"FROM range(1, {SERIES} + 1) t(i)")
        # one day per statement, in time order, as the collector and the importer write
        for day in range(STEPS // 288):
            con.execute(f"""
                INSERT INTO usage_raw
                SELECT s, (TIMESTAMP '2024-01-01' + to_seconds(k * 300))::TIMESTAMP_S,
                       round((0.1 + 0.1 * sin(k / 50.0 + s) + random() * 0.05) * 1000)::INTEGER,
                       round((200000000 + (s % 97) * 1000000 + k * 1000 + random() * 5e7) / 1024)::INTEGER
                FROM range({day * 288}, {(day + 1) * 288}) b(k), range(1, {SERIES} + 1) a(s)""")
        con.execute("CHECKPOINT")
    finally:
        con.close()


def child(path: str, strategy: str) -> None:
    sys.path.insert(0, str(ROOT))
    from datetime import timedelta

    from capplan import store
    from capplan.analysis.recommend import recommend

    con = store.open_db(path, read_only=True)
    started = time.monotonic()
    frame = recommend(con, strategy, timedelta(days=30))
    print(f"{strategy}: {frame.height} rows in {time.monotonic() - started:.2f}s")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "_child":
        child(sys.argv[2], sys.argv[3])
        return
    path = Path(sys.argv[1])
    if not path.exists():
        started = time.monotonic()
        build(path)
        print(f"built {path} in {time.monotonic() - started:.0f}s")
    for strategy in sys.argv[2:] or ["simple", "vpa", "max-target", "auto"]:
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, __file__, "_child", str(path), strategy])
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        print(f"  {strategy}: wall {wall:.1f}s (process), cpu {usage.ru_utime + usage.ru_stime:.1f}s, "
              f"peak RSS {usage.ru_maxrss / 2**20:.2f} GiB, exit {os.waitstatus_to_exitcode(status)}, "
              f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
