"""Forecast: robust trends on synthetic series with known truth, the daily series (peak
concurrent requests, p95 of summed usage), limits, and the bundled sample's growing namespace."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from capplan import store
from capplan.analysis.forecast import (
    DAILY_SCHEMA,
    LIMIT_SCHEMA,
    NO_POOL,
    daily_requests,
    daily_usage,
    day_slices,
    forecast_report,
    forecast_series,
    load_request_peaks,
    load_usage_daily,
    load_usage_sums,
    node_pools,
    pod_day_requests,
    request_peaks,
    robust_trend,
    scope_limits,
    scope_usage_sums,
    series,
    usage_day_quantiles,
    usage_full_days,
)
from capplan.report import ReportOptions
from capplan.report.forecast import forecast_sections as report_section
from capplan.report.results import ReportResults

GiB = 2**30
START = date(2026, 10, 5)  # a Monday


def synthetic(days: int, level0: float, slope: float, *, noise: float = 0.0, weekend_dip: float = 0.0,
              spike: tuple[int, float] | None = None, seed: int = 0) -> pl.DataFrame:
    """A daily series: a line, Gaussian noise, a weekly cycle (lower Saturdays and Sundays), and
    optionally one spike."""
    rng = np.random.default_rng(seed)
    day_list = [START + timedelta(days=i) for i in range(days)]
    values = level0 + slope * np.arange(days) + rng.normal(0.0, noise, days)
    # weekends lower by `weekend_dip` than weekdays, the cycle averaging zero over a week so the
    # line stays the weekly mean (the truth)
    values -= np.array([weekend_dip * ((d.weekday() >= 5) - 2 / 7) for d in day_list])
    if spike is not None:
        values[spike[0]] += spike[1]
    return pl.DataFrame({"scope_kind": "cluster", "scope_name": "cluster", "resource": "cpu", "basis": "usage",
                         "day": day_list, "value": values}, schema=DAILY_SCHEMA)


def limit(value: float) -> pl.DataFrame:
    return pl.DataFrame([{"scope_kind": "cluster", "scope_name": "cluster", "resource": "cpu", "basis": "usage",
                          "allocatable": value, "limit_source": "test"}], schema=LIMIT_SCHEMA)


def true_days(level0: float, slope: float, days: int, allocatable: float) -> float:
    """Days from the last day until the true line reaches the limit."""
    return (allocatable - (level0 + slope * (days - 1))) / slope


# --- trends with known truth ------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(10))
def test_28_days_noise_weekly_cycle_and_spike_within_10_percent(seed: int) -> None:
    # truth: 40 cores growing 0.8/day; on day 27 the line is at 61.6, so 100 is 48 days away.
    # Noise sd 0.5 (about 1% of the level), weekends 5 lower, one day 40 above (a doubling).
    days, level0, slope, cap = 28, 40.0, 0.8, 100.0
    series = synthetic(days, level0, slope, noise=0.5, weekend_dip=5.0, spike=(20, 40.0), seed=seed)
    row = forecast_series(series, limit(cap), horizon_days=90).row(0, named=True)
    truth = true_days(level0, slope, days, cap)
    assert truth == pytest.approx(48.0)
    assert row["outlook"] == "within_horizon"
    assert abs(row["days_to_exhaustion"] - truth) <= 0.10 * truth, (row, truth)
    assert row["days_low"] <= row["days_to_exhaustion"] <= row["days_high"]
    assert row["slope_low_per_day"] <= row["slope_per_day"] <= row["slope_high_per_day"]
    assert row["weekly_cycle_removed"] is True
    assert row["exhaustion_date"] == START + timedelta(days=days - 1 + int(np.ceil(row["days_to_exhaustion"])))


@pytest.mark.parametrize("seed", range(6))
def test_14_days_weekly_cycle_and_spike_within_10_percent(seed: int) -> None:
    # two weeks (the default window): 10 cores + 0.5/day; the line on day 13 is 16.5, so 30 is
    # 27 days away. Two of each weekday leave little to average, so less noise than above.
    days, level0, slope, cap = 14, 10.0, 0.5, 30.0
    series = synthetic(days, level0, slope, noise=0.08, weekend_dip=2.0, spike=(9, 25.0), seed=seed)
    row = forecast_series(series, limit(cap), horizon_days=90).row(0, named=True)
    truth = true_days(level0, slope, days, cap)
    assert truth == pytest.approx(27.0)
    assert abs(row["days_to_exhaustion"] - truth) <= 0.10 * truth, (row, truth)


def test_a_spike_moves_least_squares_but_not_theil_sen() -> None:
    # no noise: the exact line 20 + 1/day with one spike of +60 near the end (day 25 of 28)
    days, level0, slope, cap = 28, 20.0, 1.0, 100.0
    series = synthetic(days, level0, slope, spike=(25, 60.0))
    row = forecast_series(series, limit(cap)).row(0, named=True)
    assert row["slope_per_day"] == pytest.approx(1.0, abs=1e-9)
    assert row["days_to_exhaustion"] == pytest.approx(true_days(level0, slope, days, cap), abs=1e-6)  # 53
    ols_slope = np.polyfit(np.arange(days), series["value"].to_numpy(), 1)[0]
    assert ols_slope > 1.3  # the spike tilts an ordinary fit by a third


@pytest.mark.parametrize("days", [14, 15, 19, 28])
def test_weekly_cycle_alone_is_flat_after_removal(days: int) -> None:
    # no trend: weekdays at 50, weekends at 30. Windows that do not end on a Sunday hold more
    # weekdays late than early, which tilts a plain Theil-Sen line.
    x = np.arange(days, dtype=float)
    weekdays = np.array([(START + timedelta(days=i)).weekday() for i in range(days)])
    y = np.where(weekdays >= 5, 30.0, 50.0)
    trend = robust_trend(x, y, weekdays)
    assert trend.seasonal
    assert trend.slope == pytest.approx(0.0, abs=1e-9)
    # the level is the weekly mean: (5 * 50 + 2 * 30) / 7
    assert trend.level == pytest.approx((5 * 50 + 2 * 30) / 7)


def test_exact_line_with_weekly_cycle_is_recovered_exactly() -> None:
    # no noise, no spike: the cycle is taken out exactly and the line found exactly
    series = synthetic(15, 10.0, 0.5, weekend_dip=2.0)
    row = forecast_series(series, limit(30.0)).row(0, named=True)
    assert row["slope_per_day"] == pytest.approx(0.5)
    assert row["trend_current"] == pytest.approx(10.0 + 0.5 * 14)
    assert row["days_to_exhaustion"] == pytest.approx((30.0 - 17.0) / 0.5)


def test_flat_series_is_never() -> None:
    series = synthetic(21, 50.0, 0.0, weekend_dip=4.0)
    row = forecast_series(series, limit(100.0), horizon_days=90).row(0, named=True)
    assert row["outlook"] == "never"
    assert row["days_to_exhaustion"] is None and row["days_low"] is None and row["days_high"] is None
    assert "flat" in row["reason"] and "90-day horizon" in row["reason"]


@pytest.mark.parametrize("seed", range(3))
def test_falling_series_is_never(seed: int) -> None:
    series = synthetic(28, 80.0, -0.7, noise=1.0, weekend_dip=5.0, spike=(5, 30.0), seed=seed)
    row = forecast_series(series, limit(100.0), horizon_days=90).row(0, named=True)
    assert row["slope_per_day"] < 0
    assert row["outlook"] == "never"
    assert row["days_to_exhaustion"] is None
    assert "falling" in row["reason"]


def test_growth_beyond_the_horizon_is_never_but_within_a_longer_one() -> None:
    # 10 + 0.1/day for 14 days: the line is at 11.3 on the last day, 100 is 887 days away
    series = synthetic(14, 10.0, 0.1)
    short = forecast_series(series, limit(100.0), horizon_days=90).row(0, named=True)
    assert short["outlook"] == "never" and short["days_to_exhaustion"] is None
    assert "beyond the 90-day horizon" in short["reason"]
    longer = forecast_series(series, limit(100.0), horizon_days=1000).row(0, named=True)
    assert longer["days_to_exhaustion"] == pytest.approx((100.0 - 11.3) / 0.1)


def test_already_over_the_limit_is_zero_days() -> None:
    series = synthetic(14, 90.0, 1.0)  # last day 103 > 100
    row = forecast_series(series, limit(100.0)).row(0, named=True)
    assert row["outlook"] == "exhausted"
    assert row["days_to_exhaustion"] == 0.0 and row["days_low"] == 0.0 and row["days_high"] == 0.0


def test_too_short_history_says_so() -> None:
    series = synthetic(5, 10.0, 3.0)
    row = forecast_series(series, limit(100.0), min_days=7).row(0, named=True)
    assert row["outlook"] == "too_short"
    assert row["days_to_exhaustion"] is None and row["slope_per_day"] is None
    assert row["reason"] == "history too short: 5 days of data, at least 7 needed (--min-days)"
    assert row["current"] == pytest.approx(22.0)  # the last day is still reported
    # the same five days are enough with --min-days 5: 22 + 3/day reaches 100 in 26 days
    row = forecast_series(series, limit(100.0), min_days=5).row(0, named=True)
    assert row["days_to_exhaustion"] == pytest.approx(26.0)


def test_no_limit_gives_a_slope_but_no_days() -> None:
    row = forecast_series(synthetic(10, 1.0, 1.0), limit(100.0).clear()).row(0, named=True)
    assert row["outlook"] == "no_limit" and row["slope_per_day"] == pytest.approx(1.0)


# --- daily series -------------------------------------------------------------------------------

D1 = datetime(2026, 11, 2)
D2 = datetime(2026, 11, 3)
POOLS = pl.DataFrame({"node": ["n1", "n2"], "pool": ["big", "small"]})


def _pods(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"day": pl.Datetime("us"), "namespace": pl.Utf8, "pod": pl.Utf8, "node": pl.Utf8,
                                      "span_start": pl.Datetime("us"), "span_end": pl.Datetime("us"),
                                      "cpu_request_cores": pl.Float64, "memory_request_bytes": pl.Float64},
                        orient="row")


def test_daily_requests_is_the_peak_of_concurrent_pods_not_the_sum_of_the_day() -> None:
    def h(day, hour, minute=0):
        return day + timedelta(hours=hour, minutes=minute)
    pods = _pods([
        # day 1, namespace a on n1 (pool big): A 1 core 00-12, B 2 cores 06-18, C 4 cores 13-23
        (D1, "a", "A", "n1", h(D1, 0), h(D1, 12), 1.0, 1 * GiB),
        (D1, "a", "B", "n1", h(D1, 6), h(D1, 18), 2.0, 2 * GiB),
        (D1, "a", "C", "n1", h(D1, 13), h(D1, 23), 4.0, 4 * GiB),
        # namespace b on n2 (pool small): old pod until 11:55, its replacement from 12:00
        (D1, "b", "old", "n2", h(D1, 0), h(D1, 11, 55), 3.0, 3 * GiB),
        (D1, "b", "new", "n2", h(D1, 12), h(D1, 23, 55), 3.0, 3 * GiB),
        # an unscheduled pod of b: counts for the namespace, not the cluster or a pool
        (D1, "b", "pending", None, h(D1, 0), h(D1, 23, 55), 0.5, 1 * GiB),
        # day 2: only A again, and a pod ending exactly when another starts (both alive then)
        (D2, "a", "A", "n1", h(D2, 0), h(D2, 12), 1.0, 1 * GiB),
        (D2, "a", "D", "n1", h(D2, 12), h(D2, 20), 2.0, 2 * GiB),
    ])
    out = daily_requests(pods, POOLS)
    got = {(r["scope_kind"], r["scope_name"], r["resource"], r["day"]): r["value"] for r in out.iter_rows(named=True)}
    d1, d2 = D1.date(), D2.date()
    # namespace a, day 1: 06-12 A+B = 3, 13-18 B+C = 6; the day's sum (7) never happens at once
    assert got[("namespace", "a", "cpu", d1)] == 6.0
    assert got[("namespace", "a", "memory", d1)] == 6 * GiB
    # namespace b: the replaced pod counts once (3), plus the pending pod (0.5)
    assert got[("namespace", "b", "cpu", d1)] == 3.5
    # pools: big = namespace a; small = b's bound pods only
    assert got[("pool", "big", "cpu", d1)] == 6.0
    assert got[("pool", "small", "cpu", d1)] == 3.0
    # cluster day 1: at 13:00-18:00 B + C + new = 2 + 4 + 3 = 9 (pending excluded)
    assert got[("cluster", "cluster", "cpu", d1)] == 9.0
    # day 2: at 12:00 A (inclusive end) and D overlap: 3; b had no pods that day: 0
    assert got[("namespace", "a", "cpu", d2)] == 3.0
    assert got[("namespace", "b", "cpu", d2)] == 0.0
    assert got[("pool", "small", "cpu", d2)] == 0.0


def test_daily_usage_is_the_p95_of_the_summed_usage_per_day() -> None:
    rng = np.random.default_rng(3)
    ts = [D1 + timedelta(minutes=5 * i) for i in range(288 * 2)]
    rows = []
    for t in ts:
        rows.append((t, "n1", "a", float(rng.uniform(0, 2)), float(rng.uniform(1, 2) * GiB)))
        rows.append((t, "n2", "a", float(rng.uniform(0, 1)), float(rng.uniform(0, 1) * GiB)))
        rows.append((t, "n2", "b", float(rng.uniform(0, 3)), float(rng.uniform(2, 3) * GiB)))
    usage = pl.DataFrame(rows, schema={"ts": pl.Datetime("us"), "node": pl.Utf8, "namespace": pl.Utf8,
                                       "cpu_cores": pl.Float64, "memory_bytes": pl.Float64}, orient="row")
    out = daily_usage(scope_usage_sums(usage, POOLS))
    arr = np.array([r[3] for r in rows]).reshape(len(ts), 3)  # columns: n1/a, n2/a, n2/b
    for day_index, day in enumerate((D1.date(), D2.date())):
        block = arr[288 * day_index:288 * (day_index + 1)]
        expected = {
            ("cluster", "cluster"): np.percentile(block.sum(axis=1), 95),
            ("pool", "big"): np.percentile(block[:, 0], 95),
            ("pool", "small"): np.percentile(block[:, 1] + block[:, 2], 95),
            ("namespace", "a"): np.percentile(block[:, 0] + block[:, 1], 95),
            ("namespace", "b"): np.percentile(block[:, 2], 95),
        }
        for (kind, name), value in expected.items():
            got = out.filter((pl.col("scope_kind") == kind) & (pl.col("scope_name") == name)
                             & (pl.col("resource") == "cpu") & (pl.col("day") == day))["value"].item()
            assert got == pytest.approx(value, rel=1e-12), (kind, name, day)


def test_daily_usage_drops_partial_days() -> None:
    # a full day, then 30 minutes of the next one (6 of 288 sample times: below half)
    ts = [D1 + timedelta(minutes=5 * i) for i in range(288 + 6)]
    usage = pl.DataFrame({"ts": ts, "node": "n1", "namespace": "a", "cpu_cores": 1.0, "memory_bytes": 1.0})
    assert sorted(set(daily_usage(scope_usage_sums(usage, POOLS))["day"].to_list())) == [D1.date()]


def test_store_query_of_scope_sums_matches_the_polars_definition(sample_db_readonly: Path) -> None:
    # the SQL that sums usage per scope in the store against scope_usage_sums on the raw samples
    con = store.open_db(sample_db_readonly, read_only=True)
    try:
        start, end = store.analysis_window(con, timedelta(days=14))
        start = end - timedelta(days=2)  # two days keep it quick
        pools = node_pools(con.execute("SELECT node, any_value(labels) AS labels FROM nodes GROUP BY node").pl())
        raw = con.execute(
            "SELECT u.ts, s.node, s.namespace, u.cpu_cores, u.memory_bytes FROM usage_samples u "
            "JOIN series s USING (series_id) WHERE u.ts BETWEEN ? AND ?", [start, end]).pl()
        from_sql = load_usage_sums(con, start, end, pools)
    finally:
        con.close()
    expected = scope_usage_sums(raw, pools)
    assert from_sql.height == expected.height > 0
    joined = expected.join(from_sql, on=["scope_kind", "scope_name", "ts"], suffix="_sql")
    assert joined.height == expected.height
    assert ((joined["cpu_cores"] - joined["cpu_cores_sql"]).abs() < 1e-6).all()
    assert (joined["memory_bytes"] == joined["memory_bytes_sql"]).all()
    assert set(from_sql["scope_kind"]) == {"cluster", "pool", "namespace"}


def test_store_daily_quantiles_match_the_polars_definition_in_any_slicing(sample_db_readonly: Path) -> None:
    # queries/forecast_usage_daily.sql (the forecast's path: the per-day p95 in the store, a slice
    # of days at a time) against the p95 per day of scope_usage_sums on the raw samples, in polars
    con = store.open_db(sample_db_readonly, read_only=True)
    try:
        start, end = store.analysis_window(con, timedelta(days=14))
        start = end - timedelta(days=3, hours=5)  # partial first and last days
        pools = node_pools(con.execute("SELECT node, any_value(labels) AS labels FROM nodes GROUP BY node").pl())
        raw = con.execute(
            "SELECT u.ts, s.node, s.namespace, u.cpu_cores, u.memory_bytes FROM usage_samples u "
            "JOIN series s USING (series_id) WHERE u.ts BETWEEN ? AND ?", [start, end]).pl()
        whole = load_usage_daily(con, start, end, pools)
        slices = day_slices(con, start, end, max_samples=1)  # one day per slice
        one_per_day = load_usage_daily(con, start, end, pools, max_samples=1)
    finally:
        con.close()
    expected = usage_day_quantiles(scope_usage_sums(raw, pools))
    # 3 days and 5 hours touch 4 or 5 UTC days; the slices cover exactly the window
    assert len(slices) == expected["day"].n_unique() >= 4
    assert slices[0][0] == start and slices[-1][1] == end
    assert all(a[1] < b[0] for a, b in zip(slices, slices[1:], strict=False))
    for got in (whole, one_per_day):
        assert got.height == expected.height > 0
        joined = expected.join(got, on=["scope_kind", "scope_name", "day"], suffix="_sql")
        assert joined.height == expected.height
        assert (joined["sample_times"] == joined["sample_times_sql"]).all()
        assert ((joined["cpu"] - joined["cpu_sql"]).abs() < 1e-6).all()
        assert ((joined["memory"] - joined["memory_sql"]).abs() <= 1e-6 * joined["memory"]).all()
    assert set(whole["scope_kind"]) == {"cluster", "pool", "namespace"}
    # the forecast keeps the days with at least half the sample times of the fullest day
    counts = raw.select(pl.col("ts").unique()).group_by(pl.col("ts").dt.date().alias("day")).len()
    assert usage_full_days(whole) == sorted(counts.filter(pl.col("len") >= counts["len"].max() / 2)["day"].to_list())


def test_request_peaks_read_a_slice_of_days_at_a_time_give_the_whole_window_answer(sample_db_readonly: Path) -> None:
    con = store.open_db(sample_db_readonly, read_only=True)
    try:
        start, end = store.analysis_window(con, timedelta(days=14))
        start += timedelta(hours=7)  # a partial first day
        pools = node_pools(con.execute("SELECT node, any_value(labels) AS labels FROM nodes GROUP BY node").pl())
        whole = request_peaks(pod_day_requests(store.query(con, "forecast_pod_days", {"start": start, "end": end})),
                              pools)
        sliced = {n: load_request_peaks(con, start, end, pools, slice_days=n) for n in (1, 3, 30)}
        sliced[0] = load_request_peaks(con, start, end, pools)  # the default: slices by the pods' count
        pods = con.execute("SELECT valid_from, valid_to FROM pods").pl()
        alive = pods.filter((pl.col("valid_from") <= end) & (pl.col("valid_to") >= start)).height
        assert series.request_slice_days(con, start, end) == max(1, min(7, series.REQUEST_SLICE_POD_DAYS // alive))
    finally:
        con.close()
    keys = ["scope_kind", "scope_name", "resource", "basis", "day"]
    assert whole.height > 0 and whole["day"].n_unique() >= 14
    for n, got in sliced.items():
        assert got.sort(keys).equals(whole.sort(keys)), n


def test_node_pools_from_a_label_and_unlabelled_nodes() -> None:
    labels = pl.DataFrame({"node": ["x", "y", "z"], "labels": [
        '{"node.kubernetes.io/instance-type": "m5.large", "zone": "a"}', '{"zone": "b"}', None]})
    assert node_pools(labels)["pool"].to_list() == ["m5.large", NO_POOL, NO_POOL]
    assert node_pools(labels, "zone")["pool"].to_list() == ["a", "b", NO_POOL]


def test_scope_limits_quota_else_share_of_allocatable() -> None:
    nodes = pl.DataFrame({"node": ["n1", "n2"], "cpu_allocatable_cores": [8.0, 4.0],
                          "memory_allocatable_bytes": [32 * GiB, 16 * GiB]})
    daily = pl.DataFrame([
        ("namespace", "a", "cpu", "requests", date(2026, 11, 2), 3.0),
        ("namespace", "b", "cpu", "requests", date(2026, 11, 2), 2.0),
        ("namespace", "c", "cpu", "requests", date(2026, 11, 2), 1.0),
        ("namespace", "c", "cpu", "requests", date(2026, 11, 1), 7.0),  # older: not the current value
    ], schema=DAILY_SCHEMA, orient="row")
    quotas = pl.DataFrame({"namespace": ["a", "a"], "quota": ["q1", "q2"], "resource": ["requests.cpu", "cpu"],
                           "hard": [6.0, 5.0]})
    out = scope_limits(nodes, POOLS, quotas, daily)
    def get(kind, name):
        return out.filter((pl.col("scope_kind") == kind) & (pl.col("scope_name") == name)
                          & (pl.col("resource") == "cpu") & (pl.col("basis") == "requests")).row(0, named=True)
    assert get("cluster", "cluster")["allocatable"] == 12.0
    assert get("pool", "big")["allocatable"] == 8.0 and get("pool", "small")["allocatable"] == 4.0
    # a: the tightest of its two quotas
    assert get("namespace", "a")["allocatable"] == 5.0 and get("namespace", "a")["limit_source"] == "quota q2 cpu"
    # b: 12 allocatable minus the others' current 3 + 1
    assert get("namespace", "b")["allocatable"] == 12.0 - 3.0 - 1.0
    assert get("namespace", "c")["allocatable"] == 12.0 - 3.0 - 2.0


# --- the bundled sample -------------------------------------------------------------------------

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "samples" / "cluster"


def test_sample_ml_namespace_grows_toward_its_quota(sample_db_readonly: Path) -> None:
    con = store.open_db(sample_db_readonly, read_only=True)
    try:
        table = forecast_report(con)
    finally:
        con.close()
    ml = table.filter((pl.col("scope") == "namespace:ml") & (pl.col("resource") == "memory")
                      & (pl.col("basis") == "requests")).row(0, named=True)
    # independently from the sample files: feature-store went 3 -> 8 replicas of 2Gi; beside it
    # 2 inference pods of 6Gi and 3 trainer pods of 1Gi; the quota is 48Gi of requests.memory
    workloads = pl.read_parquet(SAMPLE / "workloads.parquet").filter(pl.col("name") == "feature-store")
    assert workloads["replicas"].min() == 3 and workloads["replicas"].max() == 8
    containers = pl.read_parquet(SAMPLE / "containers.parquet").filter(pl.col("namespace") == "ml")
    per_pod = containers.group_by("pod").agg(pl.col("memory_request_bytes").sum(), pl.col("valid_to").max())
    alive_last_day = per_pod.filter(pl.col("valid_to") >= datetime(2026, 11, 14, 23, 0))
    assert ml["current"] == alive_last_day["memory_request_bytes"].sum() == (8 * 2 + 2 * 6 + 3) * GiB
    quota = pl.read_parquet(SAMPLE / "resource_quotas.parquet").filter(pl.col("resource") == "requests.memory")
    assert ml["allocatable"] == quota["hard"].item() == 48 * GiB
    # 21Gi on day 1 to 31Gi on day 14: about 10Gi / 13 days; Theil-Sen on the steps says ~0.8Gi
    assert 0.6 * GiB < ml["slope_per_day"] < 1.0 * GiB
    assert ml["outlook"] == "within_horizon"
    assert ml["days_to_exhaustion"] == pytest.approx((48 * GiB - ml["trend_current"]) / ml["slope_per_day"])
    assert 10 < ml["days_to_exhaustion"] < 30
    # namespaces that do not grow are never exhausted
    web = table.filter((pl.col("scope") == "namespace:web") & (pl.col("basis") == "requests"))
    assert web["outlook"].to_list() == ["never", "never"]
    # every scope, resource and basis is there: cluster, 2 pools, and per namespace
    assert set(table["scope"]) >= {"cluster", "pool:m5.2xlarge", "pool:m5.xlarge", "namespace:ml", "namespace:web"}


def test_report_section_shows_the_growing_namespace(sample_db_readonly: Path) -> None:
    con = store.open_db(sample_db_readonly, read_only=True)
    try:
        (section,) = report_section(ReportResults(con, ReportOptions()))
    finally:
        con.close()
    assert section.key == "forecast"
    ml = section.frame.filter(pl.col("scope") == "namespace:ml")
    assert ml.height > 0 and (ml["slope_per_day"] > 0).all()
    assert "namespace:ml memory requests: runs out in" in section.note
    assert {"scope", "resource", "basis", "current", "allocatable", "slope_per_day", "days_to_exhaustion",
            "days_low", "days_high"} <= set(section.frame.columns)


def test_spec_only_and_usage_only_stores(sample_db: Path) -> None:
    import duckdb

    spec_only = sample_db.with_name("spec.duckdb")
    usage_only = sample_db.with_name("usage.duckdb")
    # no usage: the samples and what is derived from them (node sums, daily scope figures)
    for path, statements in ((spec_only, ["DELETE FROM usage_raw", "DELETE FROM node_sums", "DELETE FROM scope_usage_daily"]),
                             (usage_only, ["DELETE FROM nodes", "DELETE FROM pods", "DELETE FROM containers"])):
        path.write_bytes(sample_db.read_bytes())
        con = duckdb.connect(str(path))
        for statement in statements:
            con.execute(statement)
        con.close()
    con = store.open_db(spec_only, read_only=True)
    try:
        specs = forecast_report(con)
    finally:
        con.close()
    # requests trends only, ending at the newest pod observation: ml memory still runs out
    assert set(specs["basis"]) == {"requests"}
    ml = specs.filter((pl.col("scope") == "namespace:ml") & (pl.col("resource") == "memory")).row(0, named=True)
    assert ml["outlook"] == "within_horizon"
    con = store.open_db(usage_only, read_only=True)
    try:
        usage = forecast_report(con)
    finally:
        con.close()
    # usage trends only; without nodes nothing but the ml quota gives a limit
    assert set(usage["basis"]) == {"usage"}
    assert set(usage.filter(pl.col("scope") != "namespace:ml")["outlook"]) == {"no_limit"}


def test_sample_current_values_match_independent_computations(sample_db_readonly: Path) -> None:
    from capplan.analysis.nodes import nodes_report

    con = store.open_db(sample_db_readonly, read_only=True)
    try:
        table = forecast_report(con)
        node_table = nodes_report(con)
        # p95 over the last day of the cluster's summed usage, straight from the samples
        last_day_p95 = con.execute(
            "WITH t AS (SELECT u.ts, sum(u.cpu_cores) AS c, sum(u.memory_bytes) AS m FROM usage_samples u "
            "WHERE u.ts >= (SELECT date_trunc('day', max(ts)) FROM usage_samples) GROUP BY u.ts) "
            "SELECT quantile_cont(c, 0.95), quantile_cont(m, 0.95) FROM t").fetchone()
    finally:
        con.close()
    def get(scope, resource, basis):
        return table.filter(
        (pl.col("scope") == scope) & (pl.col("resource") == resource) & (pl.col("basis") == basis))["current"].item()
    # on the last day no pod ended (the nightly Jobs are Succeeded): the day's peak of requests
    # is the state at the end, which the per-node table sums from the same pods
    assert get("cluster", "cpu", "requests") == pytest.approx(node_table["cpu_requests_cores"].sum())
    assert get("cluster", "memory", "requests") == pytest.approx(node_table["memory_requests_bytes"].sum())
    xlarge = node_table.filter(pl.col("node").is_in(["node-6", "node-7", "node-8"]))
    assert get("pool:m5.xlarge", "cpu", "requests") == pytest.approx(xlarge["cpu_requests_cores"].sum())
    assert get("cluster", "cpu", "usage") == pytest.approx(last_day_p95[0], rel=1e-6)
    assert get("cluster", "memory", "usage") == pytest.approx(last_day_p95[1], rel=1e-9)
    cluster_cpu = table.filter((pl.col("scope") == "cluster") & (pl.col("resource") == "cpu"))
    assert cluster_cpu["allocatable"].to_list() == [pytest.approx(node_table["cpu_allocatable_cores"].sum())] * 2


@pytest.mark.parametrize("confidence", [0.9, 0.8, 0.95, 0.3])
def test_theil_sen_interval_gives_scipys_numbers(confidence: float) -> None:
    # the numbers of scipy.stats.theilslopes, bit for bit: noisy series, series with repeated values
    # (ties in y change the interval's variance), flat ones, two points, unevenly spaced days
    from scipy import stats

    from capplan.analysis.stats.trend import theil_sen_interval

    rng = np.random.default_rng(14)
    cases = [(np.arange(30.0), rng.normal(5, 1, 30) + 0.01 * np.arange(30)) for _ in range(40)]
    cases += [(np.arange(20.0), np.round(rng.normal(3, 1, 20))) for _ in range(20)]  # many ties
    cases += [(np.arange(10.0), np.full(10, 2.5)), (np.array([0.0, 3.0]), np.array([1.0, 2.0])),
              (np.sort(rng.choice(60, 25, replace=False)).astype(float), rng.exponential(2, 25))]
    for x, y in cases:
        want = stats.theilslopes(y, x, alpha=confidence)
        got = theil_sen_interval(y, x, confidence)
        assert got == (want.slope, want.intercept, want.low_slope, want.high_slope)
