"""Backtest metrics by hand on a tiny history, and on a slice of the real Bitbrains month."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from capplan import store
from capplan.analysis.backtest import (
    JUDGE_UNITS,
    backtest,
    backtest_splits,
    choose_level,
    parse_target_oom,
    rolling_splits,
    summarise,
)
from capplan.bitbrains import bitbrains_frame, write_long_format
from capplan.errors import NoDataError, UsageError
from capplan.importer import import_long_format
from tests.analysis.recommend_data import MI, TinyCluster

# VMs 1..200 of the month (tests/data/realdata/README.md); these tests use VMs 1..25
BITBRAINS = Path(__file__).resolve().parents[2] / "tests" / "data" / "realdata" / "bitbrains_rnd_2013-07_subset.parquet"


@pytest.fixture(scope="module")
def tiny_db(tmp_path_factory):
    """3 days at 10-minute steps (samples k = 0..432). Train (first 2 days, k <= 288): 0.25 cores,
    100Mi. Test (k = 289..432, 144 samples): 0.5 cores on odd k, 0.125 on even; 120Mi, 150Mi at k = 300.
    Current spec: request 1 core, memory limit 200Mi."""
    k = np.arange(433)
    cpu = np.where(k <= 288, 0.25, np.where(k % 2 == 1, 0.5, 0.125))
    mem = np.where(k <= 288, 100 * MI, 120 * MI).astype(float)
    mem[300] = 150 * MI
    c = TinyCluster(step=timedelta(minutes=10)).pod("ns", "p", cpu, mem, request=(1.0, None, 200 * MI, 200 * MI))
    return c.write(tmp_path_factory.mktemp("bt") / "tiny.duckdb")


def test_metrics_by_hand(tiny_db):
    con = store.open_db(tiny_db, read_only=True)
    try:
        table = backtest(con, ["simple", "max-target"], timedelta(days=2), timedelta(days=1))
    finally:
        con.close()
    rows = {r["policy"]: r for r in table.iter_rows(named=True)}
    assert list(rows) == ["current", "simple", "max-target", "hindsight"]
    used = 72 * 0.5 + 72 * 0.125            # 45 core-samples
    mem_used = (143 * 120 + 150) * MI       # 17310Mi
    cur = rows["current"]
    assert cur["cpu_slack"] == pytest.approx(1 - used / 144)           # 0.6875
    assert cur["cpu_short"] == pytest.approx(0.0)
    assert cur["mem_slack"] == pytest.approx(1 - mem_used / (144 * 200 * MI))
    assert cur["oom_container_days"] == 0 and cur["container_days"] == 1
    simple = rows["simple"]                # request 0.25 (train p95), limit ceil(100Mi x 1.15)
    assert simple["cpu_slack"] == pytest.approx(1 - used / (144 * 0.25))  # -0.25: over-committed
    assert simple["cpu_short"] == pytest.approx(72 * 0.25 / used)        # 0.4
    assert simple["mem_slack"] == pytest.approx(1 - mem_used / (144 * np.ceil(100 * MI * 1.15)))
    assert simple["oom_container_days"] == 1.0
    mt = rows["max-target"]                # 100Mi / 0.7 = 142.9Mi < the 150Mi sample
    assert mt["oom_container_days"] == 1.0
    assert mt["cpu_short"] == pytest.approx(72 * (0.5 - np.ceil(0.25 / 0.7 * 1000) / 1000) / used)
    hind = rows["hindsight"]               # p95 of the test = 0.5, limit = test peak 150Mi
    assert hind["cpu_slack"] == pytest.approx(1 - used / 72)             # 0.375
    assert hind["cpu_short"] == pytest.approx(0.0)
    assert hind["mem_slack"] == pytest.approx(1 - mem_used / (144 * 150 * MI))
    assert hind["oom_container_days"] == 0
    # throttled hours: each test hour has 3 samples at 0.5 and 3 at 0.125, mean 0.3125 cores
    assert cur["throttled_hours"] == 0 and hind["throttled_hours"] == 0      # requests 1 and 0.5
    assert simple["throttled_hours"] == 1.0                                 # 0.3125 > 0.25 every hour
    assert mt["throttled_hours"] == 0                                       # 0.358 > 0.3125
    assert cur["mem_request_slack"] == pytest.approx(cur["mem_slack"])      # request = limit = 200Mi
    assert cur["over_request_days"] == 0 and simple["over_request_days"] == 1.0  # 150Mi > 115Mi


def test_windows_longer_than_the_history(tiny_db):
    con = store.open_db(tiny_db, read_only=True)
    try:
        with pytest.raises(UsageError):
            backtest(con, "all", timedelta(days=2), timedelta(days=5))
        with pytest.raises(NoDataError):
            backtest(con, "all", timedelta(days=4), timedelta(days=1))
        with pytest.raises(UsageError):
            backtest(con, ["nope"], timedelta(days=1), timedelta(days=1))
    finally:
        con.close()


@pytest.fixture(scope="module")
def bitbrains_slice(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bb")
    out = folder / "bb.parquet"
    write_long_format(BITBRAINS, out, vms=25)
    db = folder / "bb.duckdb"
    import_long_format(out, db)
    return db


def test_bitbrains_conversion_drops_switched_off_rows_and_merges_duplicates():
    frame = bitbrains_frame(BITBRAINS, vms=25)
    raw = duckdb.sql(f"SELECT count(DISTINCT (vm, ts)) FILTER (WHERE cpu_capacity_mhz > 0), count(DISTINCT vm) "
                     f"FROM read_parquet('{BITBRAINS}') WHERE vm <= 25").fetchone()
    assert frame.height == raw[0]
    assert frame["pod"].n_unique() == raw[1]
    assert frame.select(pl.struct("pod", "timestamp").is_unique().all()).item()
    assert frame["cpu_request_cores"].min() >= 1 and frame["memory_limit_bytes"].min() > 0


def test_backtest_on_a_bitbrains_slice(bitbrains_slice):
    con = store.open_db(bitbrains_slice, read_only=True)
    try:
        table = backtest(con, "all", timedelta(days=21), timedelta(days=7))
        oldest = store.sample_range(con)[0]
    finally:
        con.close()
    rows = {r["policy"]: r for r in table.iter_rows(named=True)}
    assert list(rows) == ["current", "simple", "vpa", "max-target", "auto", "hindsight"]
    # the current and hindsight rows, computed straight from the raw trace
    lo, hi = oldest + timedelta(days=21), oldest + timedelta(days=28)
    expect = duckdb.execute(f"""
        WITH raw AS (
            -- the store keeps whole millicores and KiB (docs/storage.md): the trace's CPU of a
            -- few millicores per VM moves by up to half a millicore
            SELECT vm, ts, round(avg(cpu_usage_mhz / (cpu_capacity_mhz / cpu_cores)) * 1000) / 1000 AS used,
                   round(max(mem_usage_kb * 1024) / 1024) * 1024 AS mem
            FROM read_parquet('{BITBRAINS}') WHERE vm <= 25 AND cpu_capacity_mhz > 0 GROUP BY vm, ts),
        cap AS (SELECT vm, mode(cpu_cores) AS cores FROM read_parquet('{BITBRAINS}')
                WHERE vm <= 25 AND cpu_capacity_mhz > 0 GROUP BY vm),
        test AS (SELECT * FROM raw WHERE ts > $lo AND ts <= $hi),
        -- capplan rounds a CPU request up to whole millicores
        hind AS (SELECT vm, ceil(quantile_cont(used, 0.95) * 1000) / 1000 AS req, max(mem) AS lim FROM test GROUP BY vm)
        SELECT 1 - sum(used) / sum(cores), 1 - sum(used) / sum(req), sum(greatest(0, used - req)) / sum(used),
               1 - sum(mem) / sum(lim)
        FROM test JOIN cap USING (vm) JOIN hind USING (vm)""", {"lo": lo, "hi": hi}).fetchone()
    assert rows["current"]["cpu_slack"] == pytest.approx(expect[0], abs=1e-4)
    assert rows["hindsight"]["cpu_slack"] == pytest.approx(expect[1], abs=1e-3)
    assert rows["hindsight"]["cpu_short"] == pytest.approx(expect[2], abs=1e-3)
    assert rows["hindsight"]["mem_slack"] == pytest.approx(expect[3], abs=1e-4)
    assert rows["hindsight"]["oom_container_days"] == 0
    for r in rows.values():
        assert -1 < r["cpu_slack"] < 1 and 0 <= r["oom_container_days"] <= 1


def test_rolling_splits_by_hand():
    t0 = datetime(2024, 1, 1)
    day = timedelta(days=1)
    splits = rolling_splits(t0, t0 + 10 * day, [3 * day, 5 * day], [2 * day, 4 * day], 2 * day)
    got = [(s.train.days, s.test.days, (s.origin - t0).days) for s in splits]
    # origins train, train + 2, ... while origin + test <= 10 days
    assert got == [(3, 2, 3), (3, 2, 5), (3, 2, 7), (3, 4, 3), (3, 4, 5),
                   (5, 2, 5), (5, 2, 7), (5, 4, 5)]
    assert all(s.train_start == s.origin - s.train and s.test_end == s.origin + s.test for s in splits)
    with pytest.raises(UsageError):
        rolling_splits(t0, t0 + 10 * day, [day], [day], timedelta(0))


def test_summarise_by_hand():
    per_split = pl.DataFrame({
        "split": ["a", "a", "b", "b"], "policy": ["current", "x", "current", "x"],
        "cpu_slack": [0.9, 0.5, 0.8, 0.7], "cpu_short": [0.0, 0.1, 0.0, 0.3],
        "mem_slack": [0.9, 0.8, 0.9, 0.85], "oom_container_days": [0.01, 0.005, 0.01, 0.02],
        "throttled_hours": [0.0, 0.2, 0.0, 0.4], "mem_request_slack": [0.9, 0.7, 0.9, 0.6], "over_request_days": [0.0, 0.1, 0.0, 0.2],
        "mem_vs_current": [1.0, 0.5, 1.0, 0.9]})
    got = {r["policy"]: r for r in summarise(per_split).iter_rows(named=True)}
    x = got["x"]
    assert x["splits"] == 2
    assert x["cpu_slack_mean"] == pytest.approx(0.6) and x["cpu_slack_worst"] == 0.7
    assert x["oom_container_days_mean"] == pytest.approx(0.0125) and x["oom_container_days_worst"] == 0.02
    assert x["mem_vs_current_worst"] == 0.9
    # split a: fewer OOM days and less memory; split b: more OOM days
    assert x["splits_oom_at_most_current_and_less_memory"] == 1
    assert got["current"]["splits_oom_at_most_current_and_less_memory"] == 0  # not less than itself
    assert list(got) == ["current", "x"]


def test_splits_agree_with_the_hand_worked_windows(tiny_db):
    """3 days; train 1d, test 1d, every 12h: origins at 1d, 1.5d and 2d. At the 2d origin the
    test window is test_metrics_by_hand's: current and hindsight are the same numbers; the
    hindsight limit is the 150Mi test peak against the current 200Mi (mem_vs_current 0.75)."""
    con = store.open_db(tiny_db, read_only=True)
    try:
        rows = backtest_splits(con, ["simple"], [timedelta(days=1)], [timedelta(days=1)], timedelta(hours=12))
        single = backtest(con, ["simple"], timedelta(days=2), timedelta(days=1))
    finally:
        con.close()
    assert rows["split"].n_unique() == 3
    assert rows.filter(pl.col("policy") == "current")["mem_vs_current"].to_list() == [1.0, 1.0, 1.0]
    last = rows.filter(pl.col("split") == rows["split"][-1])
    by = {r["policy"]: r for r in last.iter_rows(named=True)}
    ref = {r["policy"]: r for r in single.iter_rows(named=True)}
    used = 72 * 0.5 + 72 * 0.125
    assert by["current"]["cpu_slack"] == pytest.approx(1 - used / 144)
    assert by["hindsight"]["cpu_slack"] == pytest.approx(1 - used / 72)
    assert by["hindsight"]["mem_vs_current"] == pytest.approx(150 / 200)
    for policy in ("current", "hindsight"):
        for m in ("cpu_slack", "cpu_short", "mem_slack", "oom_container_days", "throttled_hours"):
            assert by[policy][m] == pytest.approx(ref[policy][m]), (policy, m)
    # the middle split's test window (1.5d, 2.5d] holds train-like (k <= 288) and test-like samples
    labels = rows["split"].unique(maintain_order=True).to_list()
    assert [label.split(" @ ")[1] for label in labels] == ["2024-01-02 00:00", "2024-01-02 12:00", "2024-01-03 00:00"]
    mid = rows.filter((pl.col("split") == labels[1]) & (pl.col("policy") == "current")).row(0, named=True)
    k = np.arange(217, 361)  # 10-minute samples after 1.5 days up to 2.5 days
    cpu = np.where(k <= 288, 0.25, np.where(k % 2 == 1, 0.5, 0.125))
    assert mid["cpu_slack"] == pytest.approx(1 - cpu.sum() / k.size)


def test_risk_levels_and_ablation_rows(tiny_db):
    con = store.open_db(tiny_db, read_only=True)
    try:
        table = backtest(con, ["auto"], timedelta(days=2), timedelta(days=1), risks=["low", "high"], ablation=True)
    finally:
        con.close()
    names = table["policy"].to_list()
    assert names[0] == "current" and names[-1] == "hindsight"
    assert {"auto-low", "auto-high", "auto -step-down", "auto -oom-bump", "auto -trend", "auto +gumbel",
            "auto -peak-margin"} <= set(names)


def test_parse_target_oom():
    assert parse_target_oom("0.5%") == pytest.approx(0.005)
    assert parse_target_oom("0.002") == 0.002
    assert parse_target_oom("current") == "current"
    for bad in ("x", "150%", "-1"):
        with pytest.raises(UsageError):
            parse_target_oom(bad)


def test_choose_level_takes_the_least_conservative_level_within_the_target(sample_db_readonly):
    con = store.open_db(sample_db_readonly, read_only=True)
    try:
        level, summary, why = choose_level(con, "current")
        loose, _, loose_why = choose_level(con, 0.99)   # every level qualifies: the least conservative
        strict, _, strict_why = choose_level(con, 0.0)
    finally:
        con.close()
    oom = dict(zip(summary["policy"], summary["oom_container_days_mean"], strict=True))
    levels = ["low", "medium", "high"]
    qualifying = [lv for lv in levels if oom[f"auto-{lv}"] <= oom["current"] + 1e-12]
    assert level == (qualifying[-1] if qualifying else "low") and "risk " + level in why
    assert loose == "high"
    if oom["auto-low"] > 0:
        assert strict == "low" and "no level" in strict_why


def test_splits_on_a_bitbrains_slice_match_the_raw_trace(bitbrains_slice):
    """Rolling 7d/7d splits every 3 days on VMs 1..25: for every split, the current specs' CPU
    slack, memory slack and OOM container-days computed straight from the raw trace (DuckDB on
    the parquet, not capplan's store or judge)."""
    con = store.open_db(bitbrains_slice, read_only=True)
    try:
        rows = backtest_splits(con, ["auto"], [timedelta(days=7)], [timedelta(days=7)], timedelta(days=3))
    finally:
        con.close()
    current = rows.filter(pl.col("policy") == "current")
    assert current.height == rows["split"].n_unique() >= 5
    for r in current.iter_rows(named=True):
        lo, hi = r["origin"], r["origin"] + timedelta(days=7)
        expect = duckdb.execute(f"""
            WITH raw AS (
                SELECT vm, ts, avg(cpu_usage_mhz / (cpu_capacity_mhz / cpu_cores)) AS used,
                       round(max(mem_usage_kb * 1024)) AS mem
                FROM read_parquet('{BITBRAINS}') WHERE vm <= 25 AND cpu_capacity_mhz > 0 GROUP BY vm, ts),
            cap AS (SELECT vm, mode(cpu_cores) AS cores,
                           round(mode(mem_capacity_kb * 1024) FILTER (WHERE mem_capacity_kb > 0)) AS mem_cap
                    FROM read_parquet('{BITBRAINS}') WHERE vm <= 25 AND cpu_capacity_mhz > 0 GROUP BY vm),
            test AS (SELECT * FROM raw JOIN cap USING (vm) WHERE ts > $lo AND ts <= $hi),
            days AS (SELECT vm, ceil(epoch(ts - $lo) / 86400) AS day, bool_or(mem > mem_cap) AS oom
                     FROM test GROUP BY ALL)
            SELECT (SELECT 1 - sum(used) / sum(cores) FROM test), (SELECT 1 - sum(mem) / sum(mem_cap) FROM test),
                   (SELECT avg(oom::INT) FROM days), (SELECT count(*) FROM days)""",
                                {"lo": lo, "hi": hi}).fetchone()
        assert r["cpu_slack"] == pytest.approx(expect[0], abs=1e-4), r["split"]
        assert r["mem_slack"] == pytest.approx(expect[1], abs=1e-6), r["split"]
        assert r["oom_container_days"] == pytest.approx(expect[2], abs=1e-12), r["split"]
        assert r["container_days"] == expect[3], r["split"]
    # every auto row judged the same container-days as the current specs
    auto = rows.filter(pl.col("policy") == "auto")
    assert auto["container_days"].to_list() == current["container_days"].to_list()


def test_memory_saved_counts_only_containers_limited_today(tmp_path):
    """Two containers: `a` with a 200Mi limit today, `b` with none. A plan giving `b` a limit
    must not count as more memory than today: mem_vs_current compares `a` alone. simple's
    limit for `a` is ceil(100Mi x 1.15) against today's 200Mi, over the same samples."""
    k = np.arange(433)
    c = TinyCluster(step=timedelta(minutes=10))
    c.pod("ns", "a", np.full(k.size, 0.1), np.full(k.size, 100.0 * MI), request=(0.5, None, 200 * MI, 200 * MI))
    c.pod("ns", "b", np.full(k.size, 0.1), np.full(k.size, 100.0 * MI), request=(0.5, None, None, None))
    path = c.write(tmp_path / "two.duckdb")
    con = store.open_db(path, read_only=True)
    try:
        rows = backtest_splits(con, ["simple"], [timedelta(days=2)], [timedelta(days=1)], timedelta(days=1))
    finally:
        con.close()
    by = {r["policy"]: r for r in rows.iter_rows(named=True)}
    assert by["current"]["mem_vs_current"] == 1.0
    assert by["simple"]["mem_vs_current"] == pytest.approx(np.ceil(100 * MI * 1.15) / (200 * MI))


def test_the_judge_adds_exactly_and_alike_on_any_number_of_threads(bitbrains_slice):
    """queries/backtest_judge.sql sums CPU in fixed point (2^-34 cores): the same scores on 1, 2 or 4
    DuckDB threads (a DOUBLE sum adds in another order on each), and the sums are exact. The
    expected shortfall, from the samples' REAL values summed in Python integers: every sample's
    max(0, used - request) in units of 2^-34 cores (rounded half away from zero, as DuckDB's cast),
    over the used cores (each REAL value a whole number of units)."""
    request = 0.3
    con = store.open_db(bitbrains_slice, read_only=True)
    try:
        start, end = store.analysis_window(con, timedelta(days=31))
        ids = [r[0] for r in con.execute("SELECT DISTINCT series_id FROM usage_samples").fetchall()]
        plan = pl.DataFrame({"policy": "p", "series_id": ids}).with_columns(
            pl.lit(request).alias("cpu_request_cores"), pl.lit(float(2**30)).alias("memory_request_bytes"),
            pl.lit(float(2**31)).alias("memory_limit_bytes"))
        con.register("_bt_plan", plan.to_arrow())
        answers = []
        for threads in (1, 2, 4):
            con.execute(f"SET threads = {threads}")
            answers.append(store.query(con, "backtest_judge", {"test_start": start, "test_end": end,
                                                               "units": JUDGE_UNITS}).rows())
        used = con.execute("SELECT CAST(cpu_cores AS DOUBLE) FROM usage_samples WHERE ts > $s AND ts <= $e",
                           {"s": start, "e": end}).fetchnumpy()
    finally:
        con.close()
    assert answers[0] == answers[1] == answers[2]
    values = next(iter(used.values()))
    unit = 2.0**34
    used_units = values * unit
    assert np.array_equal(used_units, np.floor(used_units))  # each REAL value: whole units
    short_units = np.floor(np.maximum(0.0, values - request) * unit + 0.5)
    expected = (float(int(short_units.astype(np.int64).sum())) / unit) / (float(int(used_units.astype(np.int64).sum())) / unit)
    (row,) = answers[0]
    assert row[2] == expected  # cpu_short, bit for bit
