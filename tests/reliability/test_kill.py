"""kill -9 at seeded random instants, SIGTERM, and 10 concurrent runs on one DB.

After every kill the DB opens, has no duplicate (series_id, ts), holds whole chunks only (the
usage stored equals the uninterrupted run's up to the committed high-water mark: no gap), and a
normal run then makes it equal to the uninterrupted run's DB, table by table.
"""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import pytest

from tests.reliability._runner import integrity, snapshot, spawn
from tests.reliability.conftest import W_START, collect_args

SEED = 20261126
KILLS = 20            # through the warm fork server: instants spread over the whole run
STARTUP_KILLS = 2     # through `python -m capplan`: instants during interpreter start-up and imports
LANES = 2             # kill trials run two at a time (separate DBs) to keep the suite short

# Counted for the report (pytest -s prints them).


def _usage_until(snap: dict, mark) -> list[tuple]:
    return [row for row in snap["usage"] if mark is not None and row[4] <= mark]


def _mark(snap: dict):
    marks = {ts for _metric, ts in snap["high_water_marks"]}
    assert len(marks) <= 1, f"metrics committed to different instants: {marks}"
    return next(iter(marks), None)


def _check_after_kill(db: Path, reference: dict, label: str) -> None:
    if not db.exists():
        return  # killed before it created anything
    assert integrity(db) == {"duplicate_samples": 0, "duplicate_series": 0, "orphan_samples": 0}, label
    snap = snapshot(db)
    mark = _mark(snap)
    # Whole chunks only: exactly the reference's samples up to the mark, none after it.
    assert snap["usage"] == _usage_until(reference["snapshot"], mark), f"{label}: partial chunk or gap"


def _check_equal(db: Path, reference: dict, label: str) -> None:
    assert integrity(db) == {"duplicate_samples": 0, "duplicate_series": 0, "orphan_samples": 0}, label
    snap = snapshot(db)
    for table, rows in reference["snapshot"].items():
        assert snap[table] == rows, f"{label}: table {table} differs from the uninterrupted run's"


def _kill_trial(i: int, delay: float, rel_prom, forkserver, reference, tmp_path: Path):
    db = tmp_path / f"kill{i}.duckdb"
    args = collect_args(rel_prom.url, db, "--start", W_START.isoformat())
    if i % 2:
        # Every other trial with the default two queries in flight (the next chunk prefetched).
        args[args.index("--concurrency") + 1] = "2"
    child = forkserver.start(args)
    time.sleep(delay)
    child.kill(signal.SIGKILL)
    run = child.wait()
    label = f"kill #{i} at {delay:.2f}s (exit {run.code})"
    assert run.code in (-signal.SIGKILL, 0), f"{label}: {run.err}"
    _check_after_kill(db, reference, label)
    mark = _mark(snapshot(db)) if db.exists() else None
    # Then a normal run (from the high-water mark, as cron would) completes the window.
    again = forkserver.run(collect_args(rel_prom.url, db) + ([] if db.exists() else ["--start", W_START.isoformat()]))
    assert again.code == 0, f"{label}: the next run failed: {again.err}"
    _check_equal(db, reference, label)
    return mark


@pytest.mark.slow
def test_kill_9_at_random_instants_then_a_normal_run(rel_prom, forkserver, reference, tmp_path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    rng = random.Random(SEED)
    # Lanes share the machine, so a run takes longer than the reference alone: stretch the span.
    span = reference["seconds"] * 1.3
    delays = [rng.uniform(0, span) for _ in range(KILLS)]
    with ThreadPoolExecutor(LANES) as pool:
        marks = list(pool.map(lambda a: _kill_trial(a[0], a[1], rel_prom, forkserver, reference, tmp_path),
                              enumerate(delays)))
    # The instants must have landed at different stages, not all before or after the work.
    assert len(set(marks)) >= 4, f"kills hit too few distinct commit stages: {sorted(map(str, set(marks)))}"


@pytest.mark.slow
def test_kill_9_during_start_up_of_a_real_process(rel_prom, reference, tmp_path) -> None:
    rng = random.Random(SEED + 1)
    for i in range(STARTUP_KILLS):
        db = tmp_path / f"startup{i}.duckdb"
        proc = spawn(collect_args(rel_prom.url, db, "--start", W_START.isoformat()))
        time.sleep(rng.uniform(0.2, 4.0))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        _check_after_kill(db, reference, f"start-up kill #{i}")
        finish = spawn(collect_args(rel_prom.url, db, "--start", W_START.isoformat()))
        out, err = finish.communicate(timeout=120)
        assert finish.returncode == 0, err
        _check_equal(db, reference, f"start-up kill #{i}")


@pytest.mark.slow
def test_sigterm_commits_the_current_chunk_and_exits_0(rel_prom, forkserver, reference, tmp_path) -> None:
    rng = random.Random(SEED + 2)
    interrupted = 0
    # the length of an uninterrupted first run: the reference's, or a shorter one seen here (the
    # module's first run can take longer than the rest on a busy machine, and a signal timed from it
    # then lands after the last chunk began: in CI, 0 of 4 inside the collection)
    run_seconds = reference["seconds"]
    for i in range(8):
        if i >= 4 and interrupted >= 2:
            break
        db = tmp_path / f"term{i}.duckdb"
        child = forkserver.start(collect_args(rel_prom.url, db, "--start", W_START.isoformat(), "--format", "json"))
        # After the start-up, inside the collection (the fork server has no import time).
        time.sleep(rng.uniform(0.15, 0.45) * run_seconds)
        child.kill(signal.SIGTERM)
        run = child.wait()
        label = f"SIGTERM #{i}"
        assert run.code == 0, f"{label}: exit {run.code}: {run.err}"
        assert run.err.strip() == "", f"{label}: {run.err}"
        _check_after_kill(db, reference, label)
        summary = json.loads(run.out)
        mark = _mark(snapshot(db))
        if summary["status"] == "interrupted":
            interrupted += 1
            # The chunk being worked on when the signal came was committed: the mark is where
            # the summary says the run stopped, and at least one chunk landed.
            assert summary["chunks_done"] >= 1 and mark is not None
            assert summary["collected_until"].rstrip("Z") == mark.isoformat()
        else:
            run_seconds = min(run_seconds, run.seconds)
        finish = forkserver.run(collect_args(rel_prom.url, db))
        assert finish.code == 0, finish.err
        _check_equal(db, reference, label)
    assert interrupted >= 2, "SIGTERM did not land inside the collection often enough to test it"


@pytest.mark.slow
def test_ten_concurrent_runs_one_writes_the_others_exit_5_at_once(rel_prom, forkserver, reference, tmp_path) -> None:
    db = tmp_path / "ten.duckdb"
    args = collect_args(rel_prom.url, db, "--start", W_START.isoformat())
    children = [forkserver.start(args) for _ in range(10)]
    runs = [c.wait() for c in children]
    codes = sorted(r.code for r in runs)
    assert codes == [0] + [5] * 9, [(r.code, r.err) for r in runs]
    winner = next(r for r in runs if r.code == 0)
    for r in runs:
        if r.code == 5:
            assert len(r.err.strip().splitlines()) == 1 and "lock" in r.err
            # "At once": it gave up while the winner was still working, not after waiting for it.
            assert r.seconds < winner.seconds, (
                f"a locked-out run took {r.seconds:.1f}s to give up (the winner took {winner.seconds:.1f}s)")
    _check_equal(db, reference, "ten concurrent runs")


@pytest.mark.slow
def test_ten_concurrent_runs_with_wait_queue_and_add_nothing_twice(rel_prom, forkserver, reference, tmp_path) -> None:
    db = tmp_path / "ten-wait.duckdb"
    args = collect_args(rel_prom.url, db, "--start", W_START.isoformat(), "--wait")
    children = [forkserver.start(args) for _ in range(10)]
    runs = [c.wait() for c in children]
    assert [r.code for r in runs] == [0] * 10, [r.err for r in runs if r.code]
    _check_equal(db, reference, "ten queued runs")
