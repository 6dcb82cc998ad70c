"""The data source misbehaving: down, 5xx, 429 with Retry-After, 401/403, garbage or wrong-shape
JSON, a truncated body, a reset connection, a stall longer than --timeout, a Prometheus restart
mid-collection. Each ends with bounded retries (or none), exit 3 or 4 and one line naming the
URL and the cause; the DB keeps whole chunks only and a later normal run loses nothing.
"""

from __future__ import annotations

import random
import re
import shutil
import time
from itertools import pairwise

import pytest

from tests.reliability import _prom
from tests.reliability._faultserver import Fault, FaultServer
from tests.reliability._runner import integrity, snapshot
from tests.reliability.conftest import W_START, collect_args
from tests.reliability.test_kill import _check_after_kill, _check_equal

RETRIES = 2

# (id, fault, exit code(s), retried?, words the one line must hold)
FAULTS = [
    ("http-500", Fault("status", 500), {3}, True, ["HTTP 500"]),
    ("http-503", Fault("status", 503), {3}, True, ["HTTP 503"]),
    ("http-429-retry-after", Fault("status", 429, retry_after="1"), {3}, True, ["429"]),
    ("http-401", Fault("status", 401), {3}, False, ["401"]),
    ("http-403", Fault("status", 403), {3}, False, ["403"]),
    ("garbage-json", Fault("garbage"), {4}, False, ["malformed"]),
    ("wrong-shape-json", Fault("shape"), {4}, False, ["malformed"]),
    ("truncated-body", Fault("truncate"), {3, 4}, None, []),
    ("connection-reset", Fault("reset"), {3}, True, []),
    ("stall-past-timeout", Fault("stall", stall_seconds=2.5), {3}, True, ["timed out"]),
]


def _id(case) -> str:
    return case.values[0] if hasattr(case, "values") else case[0]


def _one_line(run, url: str, words: list[str], label: str) -> str:
    lines = [line for line in run.err.splitlines() if line.strip()]
    assert "Traceback" not in run.err, f"{label}: {run.err}"
    assert len(lines) == 1, f"{label}: expected one line, got {run.err!r}"
    line = lines[0]
    assert line.startswith("capplan: ") and url in line, f"{label}: {line!r} does not name {url}"
    for word in words:
        assert word in line, f"{label}: {line!r} lacks {word!r}"
    return line


def _attempts_of_first_call(server: FaultServer) -> int:
    """Requests for the first API path before any other path was asked."""
    seen = server.api_seen()
    first = seen[0].path
    n = 0
    for s in seen:
        if s.path != first:
            break
        n += 1
    return n


@pytest.mark.slow
@pytest.mark.parametrize(("name", "fault", "codes", "retried", "words"), FAULTS, ids=[_id(f) for f in FAULTS])
def test_fault_at_the_first_request_leaves_the_db_unchanged(name, fault, codes, retried, words, rel_prom,
                                                            forkserver, half_db, reference, tmp_path) -> None:
    db = tmp_path / "db.duckdb"
    shutil.copy(half_db, db)
    before_bytes, before = db.read_bytes(), snapshot(db)
    with FaultServer(rel_prom.url, fault) as server:
        run = forkserver.run(collect_args(server.url, db, "--retries", str(RETRIES), "--timeout", "1s"))
        assert run.code in codes, f"{name}: exit {run.code}: {run.err}"
        _one_line(run, server.url, words, name)
        attempts = _attempts_of_first_call(server)
        if retried is True:
            assert attempts == RETRIES + 1, f"{name}: {attempts} attempts, expected {RETRIES + 1}"
        elif retried is False:
            assert attempts == 1, f"{name}: retried a fault that will not heal ({attempts} attempts)"
        else:
            assert 1 <= attempts <= RETRIES + 1
        if fault.retry_after:
            gaps = [b.at - a.at for a, b in pairwise(server.api_seen())]
            assert min(gaps) >= float(fault.retry_after) * 0.95, f"Retry-After not honoured: gaps {gaps}"
    assert snapshot(db) == before, f"{name}: data changed"
    assert db.read_bytes() == before_bytes, f"{name}: the DB file changed"


# Two full runs through the proxy each (about 10 s): a retried 5xx (exit 3) and malformed JSON (exit 4).
MID = [f for f in FAULTS if _id(f) in ("http-500", "garbage-json")]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "fault", "codes", "retried", "words"), MID, ids=[_id(f) for f in MID])
def test_fault_mid_collection_keeps_whole_chunks_and_the_next_run_loses_nothing(
        name, fault, codes, retried, words, rel_prom, forkserver, reference, tmp_path) -> None:
    db = tmp_path / "db.duckdb"
    # After a seeded number of forwarded requests: inside the run (the uninterrupted reference run
    # sent `queries` + its few index lookups), past some commits.
    queries = int(re.search(r"([\d,]+) queries", reference["summary"])[1].replace(",", ""))
    after = random.Random(name).randint(queries // 4, queries * 3 // 4)
    mid = Fault(**{**fault.__dict__, "after": after})
    with FaultServer(rel_prom.url, mid) as server:
        run = forkserver.run(collect_args(server.url, db, "--start", W_START.isoformat(), "--retries", str(RETRIES),
                                          "--timeout", "1s"))
        assert run.code in codes, f"{name}: exit {run.code}: {run.err}"
        _one_line(run, server.url, words, name)
        _check_after_kill(db, reference, name)
        # The source heals; the next cron run completes the window, nothing lost or doubled.
        server.fault = Fault()
        again = forkserver.run(collect_args(server.url, db))
        assert again.code == 0, again.err
    _check_equal(db, reference, name)


def test_prometheus_down_is_exit_3_and_creates_no_db(forkserver, tmp_path) -> None:
    db = tmp_path / "db.duckdb"
    port = _prom.free_port()  # nothing listens there
    run = forkserver.run(collect_args(f"http://127.0.0.1:{port}", db, "--retries", "1"))
    assert run.code == 3
    _one_line(run, f"http://127.0.0.1:{port}", ["cannot connect"], "down")
    assert not db.exists()


@pytest.mark.slow
def test_prometheus_restart_mid_collection(rel_tsdb, forkserver, reference, tmp_path) -> None:
    """Kill the real Prometheus at a seeded instant and start it again on the same port and data."""
    data = tmp_path / "tsdb"
    shutil.copytree(rel_tsdb, data, ignore=shutil.ignore_patterns("lock"))
    prom = _prom.Prometheus(data).start()
    db = tmp_path / "db.duckdb"
    try:
        child = forkserver.start(collect_args(prom.url, db, "--start", W_START.isoformat(), "--retries", "5"))
        time.sleep(random.Random(7).uniform(0.2, 0.5) * reference["seconds"])
        assert prom.proc is not None
        prom.proc.kill()  # an abrupt crash, not a polite shutdown
        prom.proc.wait()
        time.sleep(0.5)
        prom.start()
        run = child.wait()
        if run.code != 0:
            # Retries may run out while it starts; then exit 3 with one line, and the next run finishes.
            assert run.code == 3, run.err
            _one_line(run, prom.url, [], "restart")
            _check_after_kill(db, reference, "restart")
            again = forkserver.run(collect_args(prom.url, db))
            assert again.code == 0, again.err
    finally:
        prom.stop()
    _check_equal(db, reference, "Prometheus restart")
    assert all(v == 0 for v in integrity(db).values())
