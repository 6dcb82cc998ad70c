"""Load test of `capplan serve`: N concurrent clients request one path for a fixed time.

    python bench/serve_load.py --db demo.duckdb [--path /metrics] [--clients 16] [--seconds 30]

Starts `capplan serve --port 0 --max-staleness 0` on the database as a child process, requests
the path once to warm up (and to check it answers 200), then runs the clients (threads, each a
new HTTP connection per request, like a Prometheus scrape) and prints one JSON line: requests,
errors, requests/s, and the median, p95 and max latency in milliseconds. The server is stopped
with SIGTERM at the end. The figures in docs/serve.md come from this script.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path


def start(db: Path, extra: list[str]) -> tuple[subprocess.Popen[str], int]:
    """`capplan serve` on a free port; the port from its first line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "capplan", "serve", "--db", str(db), "--port", "0", "--host", "127.0.0.1",
         "--max-staleness", "0", "--termination-log", "/dev/null", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
    if not match:
        proc.kill()
        raise SystemExit(f"serve did not start: {line!r} {proc.communicate()[1]!r}")
    return proc, int(match.group(1))


def fetch(url: str) -> tuple[int, float]:
    """(status, seconds) of one GET on a new connection."""
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=120) as resp:
            resp.read()
            status = resp.status
    except urllib.error.HTTPError as err:
        status = err.code
    except OSError:
        status = 0
    return status, time.perf_counter() - started


def run(url: str, clients: int, seconds: float) -> dict[str, float | int]:
    """Hammer `url` with `clients` threads for `seconds`; latency figures in ms."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        while time.monotonic() < deadline:
            status, took = fetch(url)
            with lock:
                latencies.append(took)
                if status != 200:
                    errors[0] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    ordered = sorted(latencies)
    return {
        "clients": clients, "seconds": round(elapsed, 1), "requests": len(ordered), "errors": errors[0],
        "requests_per_second": round(len(ordered) / elapsed, 1),
        "median_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--path", default="/metrics")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("serve_args", nargs="*", help="extra `capplan serve` options (after --)")
    args = parser.parse_args()
    proc, port = start(args.db, args.serve_args)
    try:
        url = f"http://127.0.0.1:{port}{args.path}"
        status, warm = fetch(url)
        if status != 200:
            raise SystemExit(f"{args.path} answered {status}")
        result = run(url, args.clients, args.seconds)
        result["first_request_ms"] = round(warm * 1000, 1)
        print(json.dumps({"path": args.path, **result}))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


if __name__ == "__main__":
    main()
