"""Scheduled collection for `capplan serve --collect-every`: one child `capplan collect` per tick.

Why a child process and not a thread: see capplan/service.py (DuckDB refuses read-only and
read-write connections to one file within a process, and the collector opens the file per chunk).
The child is the same command the CronJob runs, so it brings the collector's guarantees along:
the collection lock, whole-chunk commits with high-water marks, and SIGTERM = finish the chunk,
commit, record the run as interrupted, exit 0. It runs in its own session so that a Ctrl-C on the
terminal reaches it only through the service's orderly shutdown.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from capplan.service import Service

LOCKED_EXIT = 5
URL_ENV = "CAPPLAN_PROMETHEUS_URL"  # what `capplan collect` reads when --prometheus-url is not given


def collect_command(db: str, args: list[str]) -> list[str]:
    """The child's command line."""
    return [sys.executable, "-m", "capplan", "collect", "--db", db, "--format", "json", *args]


def run_collection(service: Service, args: list[str], prometheus_url: str | None = None) -> str:
    """Run one collection to its end; returns ok, interrupted, busy (another collection holds the
    lock) or failed. A failure is one line on stderr; the API keeps serving committed data."""
    cmd = collect_command(str(service.database.path), args)
    env = dict(os.environ)
    if prometheus_url:
        env[URL_ENV] = prometheus_url
    try:
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 start_new_session=True, env=env)
    except OSError as exc:
        _log(f"collection could not start: {exc.strerror or exc}")
        return "failed"
    service.collect_child = child
    if service.stopping.is_set():  # shutdown began between the check and the start
        child.terminate()
    out, err = child.communicate()
    service.collect_child = None
    for line in err.splitlines():
        if line.strip():
            _log(f"collect: {line.removeprefix('capplan: ')}")
    if child.returncode == LOCKED_EXIT:
        return "busy"
    if child.returncode != 0:
        _log(f"collection failed (exit {child.returncode})")
        return "failed"
    try:
        summary = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    except json.JSONDecodeError:
        summary = {}
    status = summary.get("status", "ok")
    _log(f"collection {status}: {summary.get('samples', 0)} samples, {summary.get('queries', 0)} queries, "
         f"{summary.get('seconds', 0)}s")
    return "interrupted" if status == "interrupted" else "ok"


def _log(text: str) -> None:
    print(f"capplan serve: {text}", file=sys.stderr, flush=True)
