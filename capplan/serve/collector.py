"""Scheduled collection for `capplan serve --collect-every`: one child `capplan collect` per tick.

Why a child process and not a thread: DuckDB refuses a read-only and a read-write connection to
one file within a process, and the collector opens the file per chunk it commits. The child is
the same command the CronJob runs, so it brings the collector's guarantees along: the
collection lock, whole-chunk commits with high-water marks, and SIGTERM = finish the chunk,
commit, record the run as interrupted, exit 0. It runs in its own session so that a Ctrl-C on
the terminal reaches it only through the service's orderly shutdown. The Prometheus URL goes to
it in $CAPPLAN_PROMETHEUS_URL, not in its argv: a password in the URL would show in `ps`.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading

from capplan.serve.state import ServiceState

log = logging.getLogger("capplan.serve")

LOCKED_EXIT = 5  # CONTRACT.md: another collection holds the database lock
URL_ENV = "CAPPLAN_PROMETHEUS_URL"  # what `capplan collect` reads when --prometheus-url is not given


def collect_command(db: str, args: list[str]) -> list[str]:
    """The child's command line."""
    return [sys.executable, "-m", "capplan", "collect", "--db", db, "--format", "json", *args]


def run_collection(state: ServiceState) -> str:
    """Run one collection to its end; returns ok, interrupted, busy (another collection holds the
    lock) or failed. A failure is logged; the API keeps serving committed data."""
    options = state.options
    cmd = collect_command(str(state.database.path), options.collect_args)
    env = dict(os.environ)
    if options.prometheus_url:
        env[URL_ENV] = options.prometheus_url
    try:
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 start_new_session=True, env=env)
    except OSError as exc:
        log.error("collection could not start: %s", exc.strerror or exc)
        return "failed"
    state.collect_child = child
    if state.stopping.is_set():  # shutdown began between the check and the start
        child.terminate()
    out, err = child.communicate()
    state.collect_child = None
    for line in err.splitlines():
        if line.strip():
            log.warning("collect: %s", line.removeprefix("capplan: "))
    if child.returncode == LOCKED_EXIT:
        log.info("collection skipped: another collection holds the lock")
        return "busy"
    if child.returncode != 0:
        log.error("collection failed (exit %d)", child.returncode)
        return "failed"
    try:
        summary = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    except json.JSONDecodeError:
        summary = {}
    status = summary.get("status", "ok")
    log.info("collection %s: %s samples, %s queries, %ss", status, summary.get("samples", 0),
             summary.get("queries", 0), summary.get("seconds", 0))
    return "interrupted" if status == "interrupted" else "ok"


class ScheduledCollection:
    """A thread that runs a collection every `collect_every` until the service stops."""

    def __init__(self, state: ServiceState) -> None:
        self.state = state
        self.thread = threading.Thread(target=self._loop, name="capplan-collect", daemon=True)

    def start(self) -> None:
        """Begin collecting (the first run starts at once)."""
        self.thread.start()

    def _loop(self) -> None:
        every = self.state.options.collect_every
        assert every is not None
        while not self.state.stopping.is_set():
            status = run_collection(self.state)
            self.state.collections[status] = self.state.collections.get(status, 0) + 1
            if self.state.stopping.wait(every.total_seconds()):
                break

    def interrupt(self) -> None:
        """Ask a running child to finish its chunk and stop (SIGTERM)."""
        child = self.state.collect_child
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    def join(self, timeout_seconds: float) -> bool:
        """Wait for the loop to end; past the timeout kill the child (committed chunks stay whole,
        the chunk in progress is rolled back and the next run resumes). True when it ended in time."""
        self.thread.join(max(0.0, timeout_seconds))
        if not self.thread.is_alive():
            return True
        child = self.state.collect_child
        if child is not None and child.poll() is None:
            child.kill()
        return False
