"""Each branch of `auto` on a store built for it, against a value worked out by hand from the
usage the store was given (not from auto's code): throttled CPU, the step-down limit, pooling of
short-lived pods, VPA's OOM bump (a recorded kill, and usage above the limit), and the risk dial."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pytest

from capplan import store
from capplan.analysis.recommend import recommend
from capplan.analysis.strategies.base import StrategyParams
from capplan.analysis.strategies.risk import RISK_LEVELS, Knobs
from tests.analysis.recommend_data import MI, T0, TinyCluster

STEP = timedelta(minutes=10)
PER_DAY = 144  # 10-minute samples a day
DAYS = 8


def _run(tmp_path, cluster: TinyCluster, **params) -> dict:
    path = cluster.write(tmp_path / "auto.duckdb")
    con = store.open_db(path, read_only=True)
    try:
        frame = recommend(con, "auto", window=timedelta(days=30), params=StrategyParams(**params))
    finally:
        con.close()
    return {r["owner_name"]: r for r in frame.iter_rows(named=True)}


def _flat_memory(value_mi: float, days: int = DAYS) -> np.ndarray:
    return np.full(days * PER_DAY, value_mi * MI)


def test_throttled_cpu_asks_for_at_least_the_limit(tmp_path):
    """Usage pinned at a 0.5-core limit: its p95 is 0.5 >= 0.95 x 0.5, so the request is at
    least the limit, although p99 of the usage is also 0.5 and nothing above was seen."""
    n = DAYS * PER_DAY
    pinned = np.full(n, 0.5)
    pinned[::10] = 0.1  # 10% of the samples lower: the p95/p99 stay at the limit
    free = np.full(n, 0.2)
    free[::50] = 0.45   # 2% at 0.45: below the 0.475 throttle line at p95, p99 = 0.45
    c = TinyCluster(step=STEP)
    c.pod("ns", "pinned", pinned, _flat_memory(100), request=(0.25, 0.5, 200 * MI, 200 * MI))
    c.pod("ns", "free", free, _flat_memory(100), request=(0.25, 0.5, 200 * MI, 200 * MI))
    rows = _run(tmp_path, c)
    assert rows["pinned"]["cpu_request_recommended"] == pytest.approx(0.5)
    assert "throttled" in rows["pinned"]["reason"]
    # not throttled: its p99 is the request (2% of samples at 0.45 > the 1% above p99)
    assert rows["free"]["cpu_request_recommended"] == pytest.approx(0.45)
    assert "throttled" not in rows["free"]["reason"]


def test_step_down_limit_per_risk_level(tmp_path):
    """Peak 100Mi every day, current limit 1000Mi: the limit comes down to step_down x 100Mi
    (8x -> 800Mi at low, 4x -> 400Mi at medium, 2x -> 200Mi at high). With a current limit of
    300Mi, below 4 x 100Mi, medium keeps the current 300Mi."""
    c = TinyCluster(step=STEP)
    c.pod("ns", "big", np.full(DAYS * PER_DAY, 0.1), _flat_memory(100), request=(0.1, None, 1000 * MI, 1000 * MI))
    c.pod("ns", "tight", np.full(DAYS * PER_DAY, 0.1), _flat_memory(100), request=(0.1, None, 300 * MI, 300 * MI))
    path = c.write(tmp_path / "auto.duckdb")
    expected = {"low": 800, "medium": 400, "high": 200}
    con = store.open_db(path, read_only=True)
    try:
        for level, limit_mi in expected.items():
            rows = {r["owner_name"]: r for r in recommend(con, "auto", window=timedelta(days=30),
                                                            params=StrategyParams(risk=level)).iter_rows(named=True)}
            assert rows["big"]["memory_limit_recommended"] == limit_mi * MI, level
            assert rows["tight"]["memory_limit_recommended"] == min(300, limit_mi) * MI, level
        # without the guard the limit is the peak + 15% margin
        no_guard = Knobs(cpu_quantile=0.99, step_down=8.0, step_down_on=False)
        rows = {r["owner_name"]: r for r in recommend(con, "auto", window=timedelta(days=30),
                                                        params=StrategyParams(knobs=no_guard)).iter_rows(named=True)}
        assert rows["big"]["memory_limit_recommended"] == math.ceil(100 * MI * 1.15)
    finally:
        con.close()


def test_short_lived_pods_are_pooled_per_day(tmp_path):
    """A CronJob runs one 2-hour pod a day for 6 days, peaks 400, 100, 600, 300, 500, 200Mi (no
    trend: under half of the pairwise slopes are positive). Each pod alone has one daily peak
    (too few for a fit); pooled per workload and day they are 6 daily peaks, so the need is the
    largest, 600Mi, + 15%, and the request comes from a fit to the 6 pooled peaks."""
    peaks_mi = [400, 100, 600, 300, 500, 200]
    c = TinyCluster(step=STEP)
    c.owner("ns", "Job", "report-1", "CronJob", "report")
    for day in range(6):
        job = f"report-{day + 1}"
        if day:
            c.owner("ns", "Job", job, "CronJob", "report")
        c.pod("ns", f"{job}-pod", np.full(12, 0.2), np.full(12, peaks_mi[day] * MI), owner=("Job", job),
              request=(0.2, None, None, None), offset=day * PER_DAY)
    rows = _run(tmp_path, c)
    row = rows["report"]
    # no current limit: the guard is 8 x 600Mi, above the need, so the limit is the guard
    need = math.ceil(600 * MI * 1.15)
    assert "pooled" in row["reason"]
    assert row["memory_request_recommended"] == need
    assert row["memory_limit_recommended"] == 8 * 600 * MI
    # not pooled, one pod's single daily peak would have set it: the last pod's 200Mi + 15%
    assert row["memory_request_recommended"] > math.ceil(200 * MI * 1.15)


def test_oom_kill_bumps_memory_like_vpa(tmp_path):
    """An OOM kill at a 200Mi limit, peak 190Mi: VPA's bump is max(200 + 100, 200 x 1.2) =
    300Mi over the larger of the limit and the peak; the limit is at least that (and the
    step-down guard min(200Mi, 8 x 190Mi) = 200Mi is below)."""
    c = TinyCluster(step=STEP)
    c.pod("ns", "killed", np.full(DAYS * PER_DAY, 0.1), _flat_memory(190), request=(0.1, None, 200 * MI, 200 * MI))
    c.oom("ns", "killed", "app", T0 + timedelta(days=3))
    rows = _run(tmp_path, c)
    assert rows["killed"]["memory_limit_recommended"] == 300 * MI
    assert rows["killed"]["memory_request_recommended"] == 300 * MI
    assert "OOM" in rows["killed"]["reason"]
    # a big container: the 20% dominates the 100Mi: 2000Mi x 1.2 = 2400Mi
    c2 = TinyCluster(step=STEP)
    c2.pod("ns", "large", np.full(DAYS * PER_DAY, 0.1), _flat_memory(1900), request=(0.1, None, 2000 * MI, 2000 * MI))
    c2.oom("ns", "large", "app", T0 + timedelta(days=3))
    (tmp_path / "b").mkdir()
    rows = _run(tmp_path / "b", c2)
    assert rows["large"]["memory_limit_recommended"] == 2400 * MI


def test_usage_above_the_limit_counts_as_an_oom(tmp_path):
    """Usage reaching 250Mi over a 200Mi limit (no kill recorded, as in a VM trace): the kernel
    would have killed it at 200Mi, so the bump is over the 250Mi peak: max(350, 300) = 350Mi;
    without the bump (ablation) the need is 250Mi + 15%."""
    memory = _flat_memory(150)
    memory[500] = 250 * MI
    c = TinyCluster(step=STEP)
    c.pod("ns", "over", np.full(DAYS * PER_DAY, 0.1), memory, request=(0.1, None, 200 * MI, 200 * MI))
    path = c.write(tmp_path / "auto.duckdb")
    con = store.open_db(path, read_only=True)
    try:
        row = recommend(con, "auto", window=timedelta(days=30)).row(0, named=True)
        off = recommend(con, "auto", window=timedelta(days=30),
                        params=StrategyParams(knobs=Knobs(cpu_quantile=0.99, step_down=8.0, oom_bump=False))).row(0, named=True)
    finally:
        con.close()
    assert row["memory_limit_recommended"] == 350 * MI
    assert "above the 200Mi limit" in row["reason"]
    # no bump: need = 250Mi x 1.15 = 287.5Mi, above the guard min(200Mi, 8 x 250Mi)
    assert off["memory_limit_recommended"] == math.ceil(250 * MI * 1.15)


def test_risk_levels_move_the_cpu_percentile(tmp_path):
    """CPU 0.1 .. 1.0 cores in equal shares over the samples: the per-pod p99 / p95 / p90 of
    the usage, worked out with numpy's linear interpolation (DuckDB's quantile_cont), are the
    low / medium / high requests (rounded up to millicores)."""
    n = DAYS * PER_DAY
    cpu = np.tile(np.arange(1, 11) / 10.0, n // 10 + 1)[:n]
    c = TinyCluster(step=STEP)
    c.pod("ns", "steady", cpu, _flat_memory(100), request=(1.0, None, 200 * MI, 200 * MI))
    path = c.write(tmp_path / "auto.duckdb")
    con = store.open_db(path, read_only=True)
    try:
        got = {level: recommend(con, "auto", window=timedelta(days=30), params=StrategyParams(risk=level))
               .row(0, named=True)["cpu_request_recommended"] for level in RISK_LEVELS}
    finally:
        con.close()
    for level, q in (("low", 99), ("medium", 95), ("high", 90)):
        assert got[level] == pytest.approx(math.ceil(np.percentile(cpu, q) * 1000 - 1e-6) / 1000), level
    assert got["low"] >= got["medium"] >= got["high"]
