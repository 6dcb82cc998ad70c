"""Faults: unreachable, 401 (not retried, token never shown), 5xx retried then exit 3, garbage
(exit 4), stalls (timeout), the DB lock (exit 5 / --wait), a killed run resumes, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from capplan import store
from capplan.cli import app
from tests.collect.conftest import WINDOW_END, WINDOW_START
from tests.collect.test_collect import stored_usage, table

ROOT = Path(__file__).resolve().parents[2]


def cli(runner, *args: str):
    return runner.invoke(app, ["collect", *args])


def test_unreachable_url_exits_3_with_one_line(runner, db: Path) -> None:
    result = cli(runner, "--prometheus-url", "http://127.0.0.1:1/prom", "--db", str(db), "--retries", "1")
    assert result.exit_code == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "http://127.0.0.1:1/prom" in lines[0] and "cannot connect" in lines[0]
    assert not db.exists()  # nothing was created for a run that never reached its source


def test_401_is_not_retried_and_the_token_never_shows(prom, fault_proxy, runner, db: Path, tmp_path: Path) -> None:
    proxy = fault_proxy(upstream=prom.url, token="right-token")
    wrong = tmp_path / "wrong"
    wrong.write_text("s3cr3t-wrong-token\n")
    result = cli(runner, "--prometheus-url", proxy.url, "--db", str(db), "--token-file", str(wrong),
                 "--retries", "3", "--step", "5m", "--start", WINDOW_START.isoformat(), "--end", WINDOW_END.isoformat())
    assert result.exit_code == 3
    assert proxy.count() == 1  # refused once, not retried
    assert proxy.auth_seen == ["Bearer s3cr3t-wrong-token"]
    assert "401" in result.stderr and proxy.url in result.stderr and "s3cr3t" not in result.output + result.stderr
    # the right token from the environment gets through the same proxy
    env_run = runner.invoke(app, ["collect", "--prometheus-url", proxy.url, "--db", str(db), "--step", "5m",
                                  "--start", WINDOW_START.isoformat(),
                                  "--end", (WINDOW_START + timedelta(hours=1)).isoformat()],
                            env={"CAPPLAN_PROMETHEUS_TOKEN": "right-token"})
    assert env_run.exit_code == 0, env_run.stderr
    con = store.open_db(db, read_only=True)
    try:
        stored = " ".join(str(v) for t in ("collection_runs", "high_water_marks")
                          for row in con.execute(f"SELECT * FROM {t}").fetchall() for v in row)
    finally:
        con.close()
    assert "right-token" not in stored and "s3cr3t" not in stored


def test_5xx_is_retried_with_backoff_then_exits_3(fault_proxy, runner, db: Path) -> None:
    proxy = fault_proxy(mode="status", status=503)
    started = time.monotonic()
    result = cli(runner, "--prometheus-url", proxy.url, "--db", str(db), "--retries", "2")
    assert result.exit_code == 3
    assert proxy.count() == 3  # one try and two retries
    assert time.monotonic() - started >= 0.5 + 1.0  # backoff 0.5 s, then 1 s
    line = result.stderr.strip()
    assert "\n" not in line and "HTTP 503" in line and "injected 503" in line and "3 attempts" in line


def test_garbage_answer_exits_4(fault_proxy, runner, db: Path) -> None:
    proxy = fault_proxy(mode="garbage")
    result = cli(runner, "--prometheus-url", proxy.url, "--db", str(db))
    assert result.exit_code == 4
    assert "malformed" in result.stderr and proxy.url in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_stall_times_out_and_exits_3(fault_proxy, runner, db: Path) -> None:
    proxy = fault_proxy(mode="stall", delay=3.0)
    started = time.monotonic()
    result = cli(runner, "--prometheus-url", proxy.url, "--db", str(db), "--timeout", "1s", "--retries", "1")
    assert result.exit_code == 3
    assert "timed out after 1s" in result.stderr
    assert time.monotonic() - started < 6


def test_bad_options_exit_2(runner, db: Path, tmp_path: Path) -> None:
    assert cli(runner, "--db", str(db)).exit_code == 2  # no URL anywhere
    assert cli(runner, "--prometheus-url", "ftp://x", "--db", str(db)).exit_code == 2
    assert cli(runner, "--prometheus-url", "http://x", "--db", str(db), "--step", "1500ms").exit_code == 2
    assert cli(runner, "--prometheus-url", "http://x", "--db", str(db), "--ca-file", str(tmp_path / "none")).exit_code == 2
    assert cli(runner, "--prometheus-url", "http://x", "--db", str(db), "--start", "yesterday").exit_code == 2
    assert not db.exists()


def _spawn(url: str, db: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "capplan", "collect", "--prometheus-url", url, "--db", str(db), "--step", "5m",
         "--start", WINDOW_START.isoformat(), "--end", WINDOW_END.isoformat(), "--chunk", "3h", "--concurrency", "1",
         *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )


def _wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def _committed(db: Path, prom_url: str):
    try:
        con = store.open_db(db, read_only=True, wait_seconds=0.5)
    except Exception:
        return None
    try:
        return store.high_water_mark(con, prom_url, "container_cpu_usage_seconds_total")
    finally:
        con.close()


@pytest.mark.slow
def test_two_concurrent_runs_one_exits_5_and_wait_queues(prom, fault_proxy, db: Path) -> None:
    slow = fault_proxy(upstream=prom.url, delay=0.05)
    first = _spawn(slow.url, db)
    _wait_for(lambda: slow.count("/api/v1/query_range") > 0)  # it holds the lock now
    second = _spawn(prom.url, db)
    out, err = second.communicate(timeout=30)
    slow.delay = 0
    assert second.returncode == 5, err
    assert "another collection holds the lock" in err and "--wait" in err and len(err.strip().splitlines()) == 1
    queued = _spawn(prom.url, db, "--wait")
    assert first.wait(timeout=60) == 0, first.stderr.read()
    out, err = queued.communicate(timeout=60)
    assert queued.returncode == 0, err
    runs = table(db, "collection_runs")
    assert runs["status"].to_list() == ["ok", "ok"]


@pytest.mark.slow
def test_a_killed_run_resumes_without_gaps_or_duplicates(prom, fault_proxy, db: Path, sample_usage_window) -> None:
    slow = fault_proxy(upstream=prom.url, delay=0.05)
    proc = _spawn(slow.url, db)
    _wait_for(lambda: (_committed(db, slow.url) or WINDOW_START) >= WINDOW_START + timedelta(hours=3), timeout=60)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    mark = _committed(db, slow.url)
    partial = stored_usage(db)
    slow.delay = 0
    # whole chunks only: exactly the sample's rows up to the committed mark
    assert mark < WINDOW_END
    assert partial.height == sample_usage_window.filter(pl.col("ts") <= mark).height
    # the next run (no --start: from the high-water mark) completes the window
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "capplan", "collect", "--prometheus-url", slow.url, "--db", str(db), "--step", "5m",
         "--end", WINDOW_END.isoformat(), "--format", "json"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    got = stored_usage(db)
    assert got.height == sample_usage_window.height
    assert got.height == got.unique(["namespace", "pod", "container", "node", "ts"]).height
    statuses = table(db, "collection_runs").sort("run_id")["status"].to_list()
    assert statuses == ["killed", "ok"]  # the killed run could not record its end; the next one marks it


def test_sigterm_finishes_the_chunk_commits_and_exits_0(prom, fault_proxy, db: Path, sample_usage_window) -> None:
    slow = fault_proxy(upstream=prom.url, delay=0.05)
    proc = _spawn(slow.url, db)
    _wait_for(lambda: slow.count("/api/v1/query_range") >= 3)  # inside the first chunk
    proc.send_signal(signal.SIGTERM)
    slow.delay = 0
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "interrupted" in out
    mark = _committed(db, slow.url)
    assert WINDOW_START < mark < WINDOW_END
    assert stored_usage(db).height == sample_usage_window.filter(pl.col("ts") <= mark).height
    runs = table(db, "collection_runs")
    assert runs["status"].to_list() == ["interrupted"] and runs["window_end"][0] == mark
