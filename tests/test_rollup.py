"""Compact storage (schema 003) and rollups (capplan.rollup), against plain-Python models.

- Raw samples are stored in whole seconds, millicores and KiB: each value read back is within
  0.0005 cores and 512 bytes of what was written.
- A database made by schema 1 (today's writer layout: TIMESTAMP, REAL cores, BIGINT bytes) is
  migrated with its samples kept to that precision.
- `compact` summarises raw samples older than the retention per series and hour exactly as a
  brute-force model computes them from the same samples (count, max, mean, nearest-rank p95, the
  VPA CPU histogram of capplan.analysis.strategies.vpa), deletes those raw samples, merges late
  samples into their hour, and rolls old hours into days.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path

import duckdb
import polars as pl
import pytest
from click.testing import Result
from typer.testing import CliRunner

from capplan import rollup, store
from capplan.analysis.strategies.vpa import CPU_HISTOGRAM
from capplan.cli import app

T0 = datetime(2026, 3, 1)
FLOAT32_EPS = 1e-6  # cpu_cores is read back as REAL


def _frame(rows: list[tuple[str, datetime, float, float]]) -> pl.DataFrame:
    return pl.DataFrame({
        "namespace": ["ns"] * len(rows), "pod": [r[0] for r in rows], "container": ["c"] * len(rows),
        "node": ["n1"] * len(rows), "ts": [r[1] for r in rows], "cpu_cores": [r[2] for r in rows],
        "memory_bytes": [r[3] for r in rows],
    })


def _samples(pods: tuple[str, ...], days: int, seed: int = 3) -> list[tuple[str, datetime, float, float]]:
    rng = random.Random(seed)
    rows = []
    for pod in pods:
        for step in range(days * 288):
            rows.append((pod, T0 + timedelta(minutes=5 * step), rng.choice([0.0, 0.004, rng.uniform(0, 3)]),
                         float(rng.randint(10**6, 4 * 10**9))))
    return rows


def test_stored_values_are_within_a_millicore_half_and_512_bytes(tmp_path: Path) -> None:
    rng = random.Random(11)
    rows = [(f"p{i % 3}", T0 + timedelta(seconds=37 * i, microseconds=rng.randint(0, 999_999)),
             rng.uniform(0, 64), float(rng.randint(0, 2**40))) for i in range(3000)]
    con = store.open_db(tmp_path / "db.duckdb")
    with store.transaction(con):
        store.write_usage(con, _frame(rows))
    got = con.execute(
        "SELECT s.pod, u.ts, u.cpu_cores, u.memory_bytes FROM usage_samples AS u JOIN series AS s USING (series_id)"
    ).fetchall()
    con.close()
    assert len(got) == len(rows)
    stored = {(pod, ts): (cpu, mem) for pod, ts, cpu, mem in got}
    for pod, ts, cpu, mem in rows:
        cpu_got, mem_got = stored[(pod, ts.replace(microsecond=0))]  # whole seconds, floored
        assert abs(cpu_got - cpu) <= 0.0005 + FLOAT32_EPS * max(1.0, cpu)
        assert abs(mem_got - mem) <= 512 and mem_got % 1024 == 0


def _schema1_database(path: Path, rows: list[tuple[int, datetime, float, int]]) -> None:
    """A database as schema 1 (and every migration before 003) left it, with samples written in
    schema 1's layout (series_id, TIMESTAMP ts, REAL cpu_cores, BIGINT memory_bytes)."""
    con = duckdb.connect(str(path))
    version = 0
    for version, sql in store.migrations():
        if version >= 3:
            break
        con.execute(sql.read_text())
        last = version
    con.execute("INSERT INTO schema_version VALUES (?)", [last])
    con.execute("INSERT INTO series (series_id, namespace, pod, container, node) VALUES (1, 'ns', 'p', 'c', 'n1')")
    con.executemany("INSERT INTO usage_samples VALUES (?, ?, ?, ?)", rows)
    con.execute("CHECKPOINT")
    con.close()


def test_migration_003_keeps_a_schema1_database_samples(tmp_path: Path) -> None:
    rng = random.Random(5)
    rows = [(1, T0 + timedelta(minutes=5 * i), rng.uniform(0, 8), rng.randint(0, 2**34)) for i in range(2000)]
    path = tmp_path / "old.duckdb"
    _schema1_database(path, rows)
    con = store.open_db(path, read_only=True)  # a reader migrates an older database once
    try:
        assert store.schema_version(con) == store.SCHEMA_VERSION >= 3
        got = con.execute("SELECT ts, cpu_cores, memory_bytes FROM usage_samples ORDER BY ts").fetchall()
        raw_types = dict(con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'usage_raw'").fetchall())
    finally:
        con.close()
    assert raw_types == {"series_id": "INTEGER", "ts": "TIMESTAMP_S", "cpu_mcores": "INTEGER", "memory_kib": "INTEGER"}
    assert len(got) == len(rows)
    for (_, ts, cpu, mem), (ts_got, cpu_got, mem_got) in zip(rows, got, strict=True):
        cpu32 = float(pl.Series([cpu], dtype=pl.Float32)[0])  # schema 1 stored REAL
        assert ts_got == ts
        assert abs(cpu_got - cpu32) <= 0.0005 + FLOAT32_EPS * max(1.0, cpu)
        assert abs(mem_got - mem) <= 512


def _half_up(value: Fraction) -> int:
    """Round half away from zero (SQL round) for a non-negative exact value."""
    return math.floor(value + Fraction(1, 2))


def _model_hour(values: list[tuple[float, float]]) -> dict:
    """One hour's summary computed by hand from the stored (rounded) values."""
    cpu = sorted(round(c * 1000) for c, _ in values)
    mem = sorted(round(m / 1024) for _, m in values)
    rank = math.ceil(Fraction(95, 100) * len(values)) - 1  # nearest rank (DuckDB's quantile_disc)
    buckets: dict[int, int] = {}
    for c in cpu:
        b = CPU_HISTOGRAM.find_bucket(c / 1000)
        buckets[b] = buckets.get(b, 0) + 1
    return {
        "samples": len(values), "cpu_max": cpu[-1], "cpu_mean": _half_up(Fraction(sum(cpu), len(cpu))),
        "cpu_p95": cpu[rank], "mem_max": mem[-1], "mem_mean": _half_up(Fraction(sum(mem), len(mem))), "mem_p95": mem[rank],
        "buckets": sorted(buckets), "counts": [buckets[b] for b in sorted(buckets)],
    }


def _hourly(con: duckdb.DuckDBPyConnection, table: str = "usage_hourly", column: str = "hour") -> dict:
    rows = con.execute(
        f"SELECT s.pod, CAST(h.{column} AS TIMESTAMP), h.samples, h.cpu_mcores_max, h.cpu_mcores_mean, h.cpu_mcores_p95, "
        f"h.memory_kib_max, h.memory_kib_mean, h.memory_kib_p95, h.cpu_buckets, h.cpu_counts "
        f"FROM {table} AS h JOIN series AS s USING (series_id)"
    ).fetchall()
    keys = ("samples", "cpu_max", "cpu_mean", "cpu_p95", "mem_max", "mem_mean", "mem_p95", "buckets", "counts")
    return {(r[0], r[1]): dict(zip(keys, r[2:], strict=True)) for r in rows}


def test_compact_rolls_old_samples_into_hours_as_a_model_does(tmp_path: Path) -> None:
    rows = _samples(("a", "b"), days=3)
    con = store.open_db(tmp_path / "db.duckdb")
    with store.transaction(con):
        store.write_usage(con, _frame(rows))
    newest = max(r[1] for r in rows)
    with store.transaction(con):
        summary = rollup.compact(con, raw_retention=timedelta(days=1))
    cutoff = datetime(newest.year, newest.month, newest.day, newest.hour) - timedelta(days=1)
    assert summary.raw_cutoff == cutoff
    model: dict[tuple[str, datetime], list[tuple[float, float]]] = {}
    for pod, ts, cpu, mem in rows:
        if ts < cutoff:
            model.setdefault((pod, ts.replace(minute=0)), []).append((cpu, mem))
    expected = {k: _model_hour(v) for k, v in model.items()}
    assert _hourly(con) == expected
    assert summary.raw_samples_rolled == sum(len(v) for v in model.values())
    raw_left = con.execute("SELECT count(*), CAST(min(ts) AS TIMESTAMP) FROM usage_raw").fetchone()
    assert raw_left == (sum(1 for r in rows if r[1] >= cutoff), cutoff)
    # readers see one sample per rolled-up hour (its CPU p95 and memory peak), then the raw ones
    view = con.execute("SELECT count(*), max(memory_bytes) FILTER (WHERE ts < $c) FROM usage_samples",
                       {"c": cutoff}).fetchone()
    assert view[0] == len(expected) + raw_left[0]
    assert view[1] == max(v["mem_max"] for v in expected.values()) * 1024
    # compacting again changes nothing
    with store.transaction(con):
        again = rollup.compact(con, raw_retention=timedelta(days=1))
    assert again.raw_samples_rolled == 0 and _hourly(con) == expected
    con.close()


def test_late_samples_merge_into_their_hour(tmp_path: Path) -> None:
    rows = _samples(("a",), days=2)
    hour = T0 + timedelta(hours=3)
    late = [r for r in rows if r[1].replace(minute=0) == hour and r[1].minute >= 30]
    early = [r for r in rows if r not in late]
    con = store.open_db(tmp_path / "db.duckdb")
    with store.transaction(con):
        store.write_usage(con, _frame(early))
    with store.transaction(con):
        rollup.compact(con, raw_retention=timedelta(hours=12))
    with store.transaction(con):
        store.write_usage(con, _frame(late))  # arrive after their hour was rolled up
        rollup.compact(con, raw_retention=timedelta(hours=12))
    got = _hourly(con)[("a", hour)]
    con.close()
    whole = _model_hour([(c, m) for _, ts, c, m in rows if ts.replace(minute=0) == hour])
    # counts, max and histogram merge exactly; the mean is the weighted mean of two rounded means
    # (within one unit); p95 becomes the larger of the two parts' p95 (an upper bound)
    assert {k: got[k] for k in ("samples", "cpu_max", "mem_max", "buckets", "counts")} == \
        {k: whole[k] for k in ("samples", "cpu_max", "mem_max", "buckets", "counts")}
    assert abs(got["cpu_mean"] - whole["cpu_mean"]) <= 1 and abs(got["mem_mean"] - whole["mem_mean"]) <= 1
    parts = [_model_hour([(c, m) for _, ts, c, m in part if ts.replace(minute=0) == hour]) for part in (early, late)]
    assert got["cpu_p95"] == max(p["cpu_p95"] for p in parts) >= whole["cpu_p95"]


def test_old_hours_roll_into_days(tmp_path: Path) -> None:
    rows = _samples(("a", "b"), days=4)
    con = store.open_db(tmp_path / "db.duckdb")
    with store.transaction(con):
        store.write_usage(con, _frame(rows))
    with store.transaction(con):
        rollup.compact(con, raw_retention=timedelta(days=1))
    hours = _hourly(con)
    with store.transaction(con):
        summary = rollup.compact(con, raw_retention=timedelta(days=1), daily_after=timedelta(days=2))
    days = _hourly(con, "usage_daily", "day")
    left = _hourly(con)
    con.close()
    assert summary.daily_cutoff is not None
    rolled = {k: v for k, v in hours.items() if k[1] < summary.daily_cutoff}
    assert set(left) == set(hours) - set(rolled) and rolled
    for (pod, day), got in days.items():
        parts = [v for (p, h), v in rolled.items() if p == pod and h.date() == day.date()]
        counts: dict[int, int] = {}
        for part in parts:
            for b, n in zip(part["buckets"], part["counts"], strict=True):
                counts[b] = counts.get(b, 0) + n
        assert got["samples"] == sum(p["samples"] for p in parts)
        assert got["cpu_max"] == max(p["cpu_max"] for p in parts)
        assert got["mem_p95"] == max(p["mem_p95"] for p in parts)
        assert dict(zip(got["buckets"], got["counts"], strict=True)) == counts
    assert sum(v["samples"] for v in days.values()) == sum(v["samples"] for v in rolled.values())


def test_rollup_note_only_when_the_window_reaches_past_raw(tmp_path: Path) -> None:
    con = store.open_db(tmp_path / "db.duckdb")
    with store.transaction(con):
        store.write_usage(con, _frame(_samples(("a",), days=3)))
    assert rollup.rollup_note(con, timedelta(days=30)) is None  # nothing rolled up yet
    with store.transaction(con):
        rollup.compact(con, raw_retention=timedelta(days=1))
    assert rollup.rollup_note(con, timedelta(hours=12)) is None
    note = rollup.rollup_note(con, timedelta(days=2))
    con.close()
    assert note is not None and "summaries" in note


@pytest.mark.parametrize("value", [0.0, 0.005, 0.0099, 0.01, 0.5, 3.7, 999.0, 5000.0])
def test_bucket_formula_matches_the_vpa_histogram(value: float) -> None:
    """The rollup's SQL buckets equal the vpa strategy's for values on a whole millicore."""
    con = duckdb.connect()
    from capplan.store import load_sql  # the bucket expression is the one rollup_hourly.sql uses

    con.execute("CREATE TABLE usage_raw (series_id INTEGER, ts TIMESTAMP_S, cpu_mcores INTEGER, memory_kib INTEGER)")
    con.execute("INSERT INTO usage_raw VALUES (1, TIMESTAMP_S '2026-01-01 00:00:00', ?, 1)", [round(value * 1000)])
    got = con.execute(load_sql("rollup_hourly"), {
        "cutoff": datetime(2027, 1, 1), "first_bucket_mcores": rollup.CPU_FIRST_BUCKET_CORES * 1000,
        "ratio": rollup.CPU_BUCKET_RATIO, "num_buckets": rollup.CPU_NUM_BUCKETS}).fetchone()
    assert got[-2] == [CPU_HISTOGRAM.find_bucket(round(value * 1000) / 1000)]


def test_a_command_whose_window_reaches_the_rollups_says_so(sample_db: Path, runner: CliRunner) -> None:
    con = store.open_db(sample_db)
    with store.transaction(con):
        rollup.compact(con, raw_retention=timedelta(days=3))
    con.execute("CHECKPOINT")
    con.close()

    def nodes(window: str) -> Result:
        return runner.invoke(app, ["nodes", "--db", str(sample_db), "--window", window, "--format", "csv"])

    long, short = nodes("14d"), nodes("1d")
    assert long.exit_code == short.exit_code == 0, long.stderr + short.stderr
    assert "reads hourly/daily summaries" in long.stderr
    assert short.stderr == ""
    assert long.stdout.splitlines()[0] == short.stdout.splitlines()[0]  # the CSV itself is unchanged in form


def test_prune_compact_cli_dry_run_then_for_real(sample_db: Path, runner: CliRunner) -> None:
    def prune(*args: str) -> Result:
        return runner.invoke(app, ["prune", "--db", str(sample_db), "--compact", *args])

    def counts() -> tuple[int, int]:
        con = store.open_db(sample_db, read_only=True)
        try:
            return (con.execute("SELECT count(*) FROM usage_raw").fetchone()[0],
                    con.execute("SELECT count(*) FROM usage_hourly").fetchone()[0])
        finally:
            con.close()

    raw_before, _ = counts()
    dry = prune("--raw-retention", "7d", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert dry.stdout.startswith("would roll up: ") and counts() == (raw_before, 0)
    done = prune("--raw-retention", "7d")
    assert done.exit_code == 0, done.stderr
    rolled = int(done.stdout.split("rolled up: ")[1].split(" raw samples")[0].replace(",", ""))
    raw_after, hourly = counts()
    assert rolled > 0 and raw_after == raw_before - rolled and hourly > 0
    assert prune("--raw-retention", "0s").exit_code == 2  # a retention that makes no sense is usage


def test_recommend_says_the_rollup_note_from_its_own_connection(sample_db: Path, runner: CliRunner,
                                                                 monkeypatch) -> None:
    """recommend reads the note on the connection it analysed on: the database is opened once
    (one read-only connect) and the note said once, as the separate open said it before; a window
    of raw samples only says nothing."""
    con = store.open_db(sample_db)
    with store.transaction(con):
        rollup.compact(con, raw_retention=timedelta(days=3))
    con.execute("CHECKPOINT")
    con.close()
    connects: list[bool] = []
    real_connect = store._connect

    def counting(path: Path, read_only: bool, wait_seconds: float):
        connects.append(read_only)
        return real_connect(path, read_only, wait_seconds)

    monkeypatch.setattr(store, "_connect", counting)

    def recommend(window: str) -> Result:
        return runner.invoke(app, ["recommend", "--db", str(sample_db), "--window", window, "--format", "csv"])

    long = recommend("14d")
    assert long.exit_code == 0, long.stderr
    assert long.stderr.count("reads hourly/daily summaries") == 1 and connects == [True]
    connects.clear()
    short = recommend("1d")
    assert short.exit_code == 0 and short.stderr == "" and connects == [True]
    assert long.stdout.splitlines()[0] == short.stdout.splitlines()[0]
