"""Test-side helpers: the fork server client, spawning real `capplan` processes, DB snapshots."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Run:
    """A finished run: exit code (negative = killed by that signal), stdout, stderr, seconds."""

    code: int
    out: str
    err: str
    seconds: float


class ForkServer:
    """Client of _forkserver.py: start `capplan ARGS` runs in forked children."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.jobs = 0
        env = {**os.environ, "PYTHONPATH": str(ROOT), "CAPPLAN_DEBUG": ""}
        env.pop("CAPPLAN_PROMETHEUS_TOKEN", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability._forkserver"], cwd=ROOT, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        self.cond = threading.Condition()
        self.start_lock = threading.Lock()
        self.pids: list[int] = []
        self.exits: dict[int, tuple[int, float]] = {}  # pid -> (exit code, when it ended)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout
        for line in self.proc.stdout:
            parts = line.split()
            with self.cond:
                if parts[0] == "pid":
                    self.pids.append(int(parts[1]))
                elif parts[0] == "exit":
                    self.exits[int(parts[1])] = (int(parts[2]), time.monotonic())
                self.cond.notify_all()

    def start(self, args: list[str], env: dict[str, str] | None = None, **limits) -> Child:
        """Start a run; returns at once with its pid. `fsize=` (RLIMIT_FSIZE bytes) and `uid=`
        (run as that user) apply to the child only."""
        self.jobs += 1
        out, err = self.workdir / f"job{self.jobs}.out", self.workdir / f"job{self.jobs}.err"
        assert self.proc.stdin and self.proc.stdout
        # One start at a time: pids come back in the order the jobs were written.
        with self.start_lock, self.cond:
            self.proc.stdin.write(json.dumps({"args": args, "out": str(out), "err": str(err), "env": env or {}, **limits}) + "\n")
            self.proc.stdin.flush()
            assert self.cond.wait_for(lambda: self.pids, timeout=30), "the fork server did not answer"
            pid = self.pids.pop(0)
        return Child(self, pid, out, err, time.monotonic())

    def run(self, args: list[str], env: dict[str, str] | None = None, **limits) -> Run:
        """Run to the end."""
        return self.start(args, env, **limits).wait()

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin
            self.proc.stdin.close()
            self.proc.wait(30)


@dataclass
class Child:
    server: ForkServer
    pid: int
    out: Path
    err: Path
    started: float

    def kill(self, sig: int = signal.SIGKILL) -> None:
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float = 300) -> Run:
        with self.server.cond:
            assert self.server.cond.wait_for(lambda: self.pid in self.server.exits, timeout=timeout), (
                f"capplan run {self.pid} did not end in {timeout}s")
            code, ended = self.server.exits.pop(self.pid)
        return Run(code, self.out.read_text(), self.err.read_text(), ended - self.started)


def spawn(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """A real `python -m capplan ARGS` process (for start-up instants and cross-process locks)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "CAPPLAN_DEBUG": ""}
    full_env.pop("CAPPLAN_PROMETHEUS_TOKEN", None)
    full_env.update(env or {})
    return subprocess.Popen([sys.executable, "-m", "capplan", *args], cwd=ROOT, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# Natural keys: series ids may be numbered differently by different histories of runs.
SNAPSHOT_SQL = {
    "usage": "SELECT s.namespace, s.pod, s.container, s.node, u.ts, u.cpu_cores, u.memory_bytes "
             "FROM usage_samples u JOIN series s USING (series_id) ORDER BY ALL",
    "nodes": "SELECT * FROM nodes ORDER BY ALL",
    "pods": "SELECT * FROM pods ORDER BY ALL",
    "containers": "SELECT * FROM containers ORDER BY ALL",
    "owners": "SELECT * FROM owners ORDER BY ALL",
    "workloads": "SELECT * FROM workloads ORDER BY ALL",
    "hpas": "SELECT * FROM hpas ORDER BY ALL",
    "resource_quotas": "SELECT * FROM resource_quotas ORDER BY ALL",
    "restarts": "SELECT * FROM restarts ORDER BY ALL",
    "high_water_marks": "SELECT metric, ts FROM high_water_marks ORDER BY ALL",
}


def snapshot(db: Path) -> dict[str, list[tuple]]:
    """Every data table by natural key (collection_runs, a log, is left out)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {name: con.execute(sql).fetchall() for name, sql in SNAPSHOT_SQL.items()}
    finally:
        con.close()


def integrity(db: Path) -> dict[str, int]:
    """Counts that must be zero in any state: duplicate (series_id, ts), duplicate series keys,
    samples of unknown series."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        def one(sql: str) -> int:
            return int(con.execute(sql).fetchone()[0])
        return {
            "duplicate_samples": one("SELECT count(*) FROM (SELECT series_id, ts FROM usage_samples "
                                     "GROUP BY ALL HAVING count(*) > 1)"),
            "duplicate_series": one("SELECT count(*) FROM (SELECT namespace, pod, container, node FROM series "
                                    "GROUP BY ALL HAVING count(*) > 1)"),
            "orphan_samples": one("SELECT count(*) FROM usage_samples u ANTI JOIN series s USING (series_id)"),
        }
    finally:
        con.close()
