"""Each strategy against numbers computed independently: by hand, or by a small numpy version."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
import scipy.stats

from capplan import store
from capplan.analysis.recommend import fit, load_history
from capplan.analysis.stats import peaks, trend
from capplan.analysis.strategies import auto, get_strategy, max_target, simple, vpa
from capplan.analysis.strategies.base import StrategyParams
from capplan.errors import UsageError
from tests.analysis.recommend_data import MI, T0, TinyCluster

DAY = 86400.0


# --- an independent numpy VPA ------------------------------------------------------------------

def np_bucket_starts(first: float, max_value: float, ratio: float = 1.05) -> np.ndarray:
    """Bucket k covers [start_k, start_k+1): start_0 = 0, start_k = sum of the first k bucket
    sizes, sizes first * ratio^i (the geometric series the Go code sums in closed form)."""
    n = int(math.ceil(math.log(max_value * (ratio - 1) / first + 1) / math.log(ratio))) + 1
    sizes = first * ratio ** np.arange(n)
    return np.concatenate([[0.0], np.cumsum(sizes)[:-1]])


def np_percentile(values, weights, q, starts) -> float:
    """End of the bucket where the cumulative weight reaches q (start of the last bucket)."""
    idx = np.clip(np.searchsorted(starts, values, side="right") - 1, 0, len(starts) - 1)
    hist = np.bincount(idx, weights=weights, minlength=len(starts))
    cum = np.cumsum(hist)
    b = int(np.argmax(cum >= q * cum[-1]))
    return float(starts[b + 1]) if b < len(starts) - 1 else float(starts[b])


def test_bucket_layout_matches_the_go_formulas():
    cpu = np_bucket_starts(0.01, 1000.0)
    mem = np_bucket_starts(1e7, 1e12)
    assert vpa.CPU_HISTOGRAM.num_buckets == len(cpu) == 176  # ceil(log(5001)/log(1.05)) + 1
    assert vpa.MEMORY_HISTOGRAM.num_buckets == len(mem) == 176
    # the first bucket is [0, 0.01 core), the second [0.01, 0.0205): 5% wider each time
    assert vpa.CPU_HISTOGRAM.bucket_start(1) == pytest.approx(0.01)
    assert vpa.CPU_HISTOGRAM.bucket_start(2) == pytest.approx(0.01 + 0.0105)
    assert vpa.MEMORY_HISTOGRAM.bucket_start(1) == pytest.approx(1e7)
    for k in (1, 2, 10, 100, 175):
        assert vpa.CPU_HISTOGRAM.bucket_start(k) == pytest.approx(cpu[k], rel=1e-12)
    # bucket ends: just below a start is the bucket before, at the start is the bucket itself
    for k in (1, 5, 50, 150):
        start = vpa.CPU_HISTOGRAM.bucket_start(k)
        assert vpa.CPU_HISTOGRAM.find_bucket(start * (1 - 1e-9)) == k - 1
        assert vpa.CPU_HISTOGRAM.find_bucket(start * (1 + 1e-9)) == k
    assert vpa.CPU_HISTOGRAM.find_bucket(0.0) == 0
    assert vpa.CPU_HISTOGRAM.find_bucket(0.00999) == 0
    assert vpa.CPU_HISTOGRAM.find_bucket(1e9) == 175  # capped at the last bucket


def test_percentile_is_the_end_of_the_bucket():
    rng = np.random.default_rng(3)
    values = rng.lognormal(-2, 1, 500)
    weights = rng.uniform(0.1, 2, 500)
    starts = np_bucket_starts(0.01, 1000.0)
    buckets = np.array([vpa.CPU_HISTOGRAM.find_bucket(v) for v in values])
    for q in (0.5, 0.9, 0.95):
        assert vpa.CPU_HISTOGRAM.percentile(buckets, weights, q) == pytest.approx(np_percentile(values, weights, q, starts))
    # by hand: two samples 0.015 (bucket 1, weight 1) and 0.5 (weight 3): P50 reaches in 0.5's bucket
    b = np.array([vpa.CPU_HISTOGRAM.find_bucket(0.015), vpa.CPU_HISTOGRAM.find_bucket(0.5)])
    assert vpa.CPU_HISTOGRAM.percentile(b, np.array([1.0, 3.0]), 0.25) == pytest.approx(0.0205)  # end of bucket 1
    k = b[1]
    assert vpa.CPU_HISTOGRAM.percentile(b, np.array([1.0, 3.0]), 0.5) == pytest.approx(vpa.CPU_HISTOGRAM.bucket_start(k + 1))
    # the last bucket has no end: its start
    last = vpa.CPU_HISTOGRAM.num_buckets - 1
    assert vpa.CPU_HISTOGRAM.percentile(np.array([last]), np.array([1.0]), 0.9) == vpa.CPU_HISTOGRAM.bucket_start(last)


def test_decay_halves_weight_per_half_life():
    assert vpa.decay_weight(0.0) == 1.0
    assert vpa.decay_weight(DAY) == pytest.approx(0.5)
    assert vpa.decay_weight(3 * DAY) == pytest.approx(0.125)


def test_oom_bump_by_hand():
    # used = max(request 512Mi, peak 400Mi) = 512Mi; max(512+100, 512*1.2=614.4) Mi
    assert vpa.oom_peak(512 * MI, 400 * MI) == pytest.approx(614.4 * MI)
    # small containers: +100Mi wins over x1.2: used = 100Mi -> 200Mi
    assert vpa.oom_peak(100 * MI, 50 * MI) == pytest.approx(200 * MI)
    # the usage peak counts when above the request
    assert vpa.oom_peak(None, 1000 * MI) == pytest.approx(1200 * MI)


def test_confidence_and_bounds_by_hand():
    from datetime import datetime
    # two days of one-minute samples: min(2 days, 2880/1440) = 2
    assert vpa.confidence(datetime(2024, 1, 1), datetime(2024, 1, 3), 2880) == pytest.approx(2.0)
    # 5-minute samples over 2 days: 576/1440 = 0.4 (VPA assumes one sample a minute)
    assert vpa.confidence(datetime(2024, 1, 1), datetime(2024, 1, 3), 576) == pytest.approx(0.4)
    low, target, up = vpa.bounds(1.0, 2.0, 3.0, 2.0, 0.0)
    assert target == pytest.approx(2.0 * 1.15)
    assert up == pytest.approx(3.0 * 1.15 * (1 + 1 / 2.0))
    assert low == pytest.approx(1.0 * 1.15 * (1 + 0.001 / 2.0) ** -2)
    # the minimum applies last
    assert vpa.bounds(0.001, 0.001, 0.001, 2.0, 0.0125) == (0.0125, 0.0125, 0.0125)


def _two_pod_deployment(tmp_path, cpu_scale=1.0, mem_base=300 * MI):
    """Deployment web (two ReplicaSets, 2 pods) with containers app and sidecar; 2.5 days of 1-min samples."""
    rng = np.random.default_rng(11)
    n = int(2.5 * 24 * 60)
    c = TinyCluster().owner("ns", "ReplicaSet", "web-a", "Deployment", "web").owner("ns", "ReplicaSet", "web-b", "Deployment", "web")
    data = {}
    for pod, rs in (("web-a-1", "web-a"), ("web-b-1", "web-b")):
        cpu = rng.gamma(2.0, 0.05, n) * cpu_scale
        mem = mem_base + rng.normal(0, 20 * MI, n).cumsum() * 0.05 + rng.uniform(0, 50 * MI, n)
        c.pod("ns", pod, cpu, mem, owner=("ReplicaSet", rs), request=(0.3, None, 512 * MI, 1024 * MI))
        tiny = np.full(n, 0.001)
        c.pod("ns", pod, tiny, np.full(n, 5 * MI), owner=("ReplicaSet", rs), container="sidecar",
              request=(0.05, None, 64 * MI, None))
        data[pod] = (cpu, mem)
    return c.write(tmp_path / "web.duckdb"), data, n


def test_vpa_matches_an_independent_numpy_version(tmp_path):
    path, data, n = _two_pod_deployment(tmp_path)
    con = store.open_db(path, read_only=True)
    try:
        start, end = store.sample_range(con)
        history = load_history(con, start, end, vpa.NEEDS, StrategyParams())
        result = fit(history, "vpa", StrategyParams())
    finally:
        con.close()
    ts = np.array([i * 60.0 for i in range(n)])  # seconds after T0
    end_s = ts[-1]
    # CPU: every sample, weight max(request 0.3, 0.1) * 2^(-(end - t)/day)
    cpu_values = np.concatenate([data[p][0].astype(np.float32).astype(float) for p in data])
    cpu_weights = np.concatenate([0.3 * 2.0 ** (-(end_s - ts) / DAY) for _ in data])
    cpu_starts = np_bucket_starts(0.01, 1000.0)
    # memory: one peak per pod and 24h interval from its first sample, stamped at the interval end
    peaks, peak_w = [], []
    for p in data:
        mem = np.round(data[p][1])
        day = (ts // DAY).astype(int)
        for k in np.unique(day):
            peaks.append(mem[day == k].max())
            peak_w.append(2.0 ** (-(end_s - (k + 1) * DAY) / DAY))
    mem_starts = np_bucket_starts(1e7, 1e12)
    conf = min(end_s / DAY, 2 * n / 1440.0)
    expect_cpu = [np_percentile(cpu_values, cpu_weights, q, cpu_starts) * 1.15 for q in (0.5, 0.9, 0.95)]
    expect_mem = [np_percentile(np.array(peaks), np.array(peak_w), q, mem_starts) * 1.15 for q in (0.5, 0.9, 0.95)]
    row = result.filter(pl.col("container") == "app").row(0, named=True)
    assert row["cpu_request_cores"] == pytest.approx(math.ceil(expect_cpu[1] * 1000) / 1000)
    assert row["cpu_upper_bound_cores"] == pytest.approx(expect_cpu[2] * (1 + 1 / conf))
    assert row["cpu_lower_bound_cores"] == pytest.approx(expect_cpu[0] * (1 + 0.001 / conf) ** -2)
    assert row["memory_request_bytes"] == pytest.approx(math.ceil(expect_mem[1]), abs=1)
    assert row["memory_upper_bound_bytes"] == pytest.approx(expect_mem[2] * (1 + 1 / conf))
    # limit keeps its 2:1 ratio to the request
    assert row["memory_limit_bytes"] == pytest.approx(math.ceil(row["memory_request_bytes"] * 2), abs=2)
    # the idle sidecar gets the pod minimums split over 2 containers: 12.5m (rounded up) and 125Mi
    side = result.filter(pl.col("container") == "sidecar").row(0, named=True)
    assert side["cpu_request_cores"] == pytest.approx(0.013)
    assert side["memory_request_bytes"] == pytest.approx(125 * MI)
    assert side["cpu_lower_bound_cores"] == pytest.approx(0.0125)
    assert side["memory_limit_bytes"] is None  # no current limit: none


def test_vpa_oom_raises_that_days_peak(tmp_path):
    n = 2 * 24 * 60
    mem = np.full(n, 300 * MI)
    c = TinyCluster().pod("ns", "solo", np.full(n, 0.2), mem, request=(0.2, None, 256 * MI, 512 * MI))
    c.oom("ns", "solo", "app", T0 + timedelta(hours=30))  # second day
    path = c.write(tmp_path / "oom.duckdb")
    con = store.open_db(path, read_only=True)
    try:
        start, end = store.sample_range(con)
        history = load_history(con, start, end, vpa.NEEDS, StrategyParams())
    finally:
        con.close()
    peaks = vpa.memory_peaks_with_ooms(history.memory_peaks, history.ooms).sort("interval_index")
    # day 0 keeps 300Mi; day 1: used = max(request 256Mi, peak 300Mi) -> max(400Mi, 360Mi)
    assert peaks["peak_bytes"].to_list()[0] == pytest.approx(300 * MI)
    assert peaks["peak_bytes"].to_list()[1] == pytest.approx(400 * MI)


def test_vpa_oom_bumps_equal_a_per_interval_walk():
    # memory_peaks_with_ooms against the plain walk it replaces (a dict of every interval's peak,
    # one look-up per interval): several series, OOMs in intervals with and without a peak, two in
    # one interval, one before a series' first interval, requests or only limits or neither
    rng = random.Random(7)
    day = timedelta(seconds=vpa.MEMORY_INTERVAL_SECONDS)
    t0 = datetime(2026, 3, 1)
    peaks = pl.DataFrame([{"group_id": s % 3, "series_id": s, "interval_index": i, "interval_end": t0 + day * (i + 1),
                           "peak_bytes": float(rng.randint(1, 900) * MI)}
                          for s in range(1, 9) for i in range(6) if (s, i) != (2, 3)])
    ooms = pl.DataFrame([{"series_id": s, "group_id": s % 3, "ts": t0 + day * i + timedelta(hours=h),
                          "memory_request_bytes": req, "memory_limit_bytes": lim}
                         for s, i, h, req, lim in ((1, 0, 3, 256.0 * MI, 512.0 * MI), (1, 0, 9, 256.0 * MI, None),
                                                   (2, 3, 1, None, 700.0 * MI), (3, -1, 5, 100.0 * MI, None),
                                                   (4, 5, 23, None, None), (9, 2, 2, 64.0 * MI, None))],
                        schema={"series_id": pl.Int64, "group_id": pl.Int64, "ts": pl.Datetime("us"),
                                "memory_request_bytes": pl.Float64, "memory_limit_bytes": pl.Float64})
    table = peaks.select("group_id", "series_id", "interval_index", "interval_end", "peak_bytes").with_columns(
        pl.col("interval_index").cast(pl.Int32))
    lookup = {(r["series_id"], r["interval_index"]): r["peak_bytes"] for r in table.iter_rows(named=True)}
    bumped: dict[tuple[int, int], float] = {}
    for r in ooms.sort("ts").iter_rows(named=True):
        key = (r["series_id"], (r["ts"] - t0) // day)
        request = r["memory_request_bytes"] if r["memory_request_bytes"] is not None else r["memory_limit_bytes"]
        bumped[key] = max(bumped.get(key, lookup.get(key)) or 0.0, vpa.oom_peak(request, lookup.get(key)))
    want = [max(r["peak_bytes"], bumped.get((r["series_id"], r["interval_index"]), 0.0))
            for r in table.iter_rows(named=True)]
    got = vpa.memory_peaks_with_ooms(peaks, ooms)
    assert got.select("series_id", "interval_index").rows() == table.select("series_id", "interval_index").rows()
    assert got["peak_bytes"].to_list() == want
    assert want != table["peak_bytes"].to_list()  # some intervals were bumped


def test_sql_histogram_matches_numpy_buckets_and_decay(tmp_path):
    path, data, n = _two_pod_deployment(tmp_path)
    con = store.open_db(path, read_only=True)
    try:
        start, end = store.sample_range(con)
        history = load_history(con, start, end, vpa.NEEDS, StrategyParams())
    finally:
        con.close()
    app_group = history.groups.filter(pl.col("container") == "app")["group_id"][0]
    hist = history.cpu_histogram.filter(pl.col("group_id") == app_group)
    ts = np.array([i * 60.0 for i in range(n)])
    # stored in whole millicores (schema 003), read back as REAL
    values = np.concatenate([(np.round(data[p][0] * 1000) / 1000).astype(np.float32).astype(float) for p in data])
    weights = np.concatenate([0.3 * 2.0 ** (-(ts[-1] - ts) / DAY) for _ in data])
    idx = np.clip(np.searchsorted(np_bucket_starts(0.01, 1000.0), values, side="right") - 1, 0, 175)
    expected = np.bincount(idx, weights=weights, minlength=176)
    got = np.zeros(176)
    got[hist["bucket"].to_numpy()] = hist["weight"].to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


# --- simple and max-target ---------------------------------------------------------------------

def test_simple_largest_per_pod_percentile_and_buffer(tmp_path):
    # pod a: 0..99 millicores; pod b: 0..199 over 100 samples
    a = np.arange(100) / 1000.0
    b = np.arange(0, 200, 2) / 1000.0
    c = TinyCluster().owner("ns", "ReplicaSet", "rs", "Deployment", "d")
    c.pod("ns", "p-a", a, np.full(100, 100 * MI), owner=("ReplicaSet", "rs"))
    c.pod("ns", "p-b", b, np.full(100, 200 * MI) + np.arange(100), owner=("ReplicaSet", "rs"))
    path = c.write(tmp_path / "s.duckdb")
    con = store.open_db(path, read_only=True)
    try:
        start, end = store.sample_range(con)
        params = StrategyParams(cpu_percentile=95.0, memory_buffer_percent=15.0)
        history = load_history(con, start, end, simple.NEEDS, params)
        row = fit(history, "simple", params).row(0, named=True)
        row90 = fit(load_history(con, start, end, simple.NEEDS, StrategyParams(cpu_percentile=90.0)), "simple",
                    StrategyParams(cpu_percentile=90.0)).row(0, named=True)
    finally:
        con.close()
    # linear-interpolated p95 of pod b: 0.198 * 0.95 = 0.1881 -> 189m (rounded up to a millicore)
    assert np.percentile(b, 95) == pytest.approx(0.1881)
    assert row["cpu_request_cores"] == pytest.approx(0.189)
    assert row90["cpu_request_cores"] == pytest.approx(math.ceil(np.percentile(b, 90) * 1000) / 1000)
    assert row["cpu_limit_cores"] is None
    peak = round((200 * MI + 99) / 1024) * 1024  # stored to the nearest KiB (schema 003): 200 MiB
    assert row["memory_limit_bytes"] == row["memory_request_bytes"] == math.ceil(peak * 1.15)


def test_max_target_by_hand(tmp_path):
    cpu = np.array([0.1, 0.7, 0.2] * 10)
    mem = np.array([100, 700, 200] * 10) * MI
    path = TinyCluster().pod("ns", "bare", cpu, mem).write(tmp_path / "m.duckdb")
    con = store.open_db(path, read_only=True)
    try:
        start, end = store.sample_range(con)
        history = load_history(con, start, end, max_target.NEEDS, StrategyParams())
        row = fit(history, "max-target", StrategyParams(target_utilization=0.7)).row(0, named=True)
    finally:
        con.close()
    assert row["cpu_request_cores"] == pytest.approx(1.0)  # 0.7 / 0.7 (float32 0.7 rounds up to 1m over)
    assert row["memory_request_bytes"] == math.ceil(700 * MI / 0.7)
    assert row["owner_kind"] == "Pod" and row["owner_name"] == "bare"


def test_unknown_strategy_is_a_usage_error():
    with pytest.raises(UsageError):
        get_strategy("krr")


# --- auto's building blocks --------------------------------------------------------------------

def test_gumbel_quantile_matches_scipy_moments_fit():
    rng = np.random.default_rng(5)
    values = rng.gumbel(1000, 50, 40)
    beta = values.std(ddof=1) * math.sqrt(6) / math.pi
    mu = values.mean() - np.euler_gamma * beta
    for q in (0.5, 0.9, 0.99):
        assert peaks.gumbel_quantile(values, q) == pytest.approx(scipy.stats.gumbel_r.ppf(q, loc=mu, scale=beta))


def test_theil_sen_matches_scipy():
    rng = np.random.default_rng(8)
    x = np.arange(14.0)
    y = 3.0 * x + rng.normal(0, 2, 14)
    y[5] = 500  # an outlier does not move a robust slope
    slope, agreement = trend.theil_sen(x, y)
    assert slope == pytest.approx(scipy.stats.theilslopes(y, x)[0])
    assert 0.5 < agreement <= 1.0


def test_theil_sen_rows_is_theil_sen_row_by_row():
    """The batched fit auto uses gives theil_sen's numbers bit for bit: rows of gapped and shifted
    indexes, ties, a NaN (a day without CPU), a repeated x (pairs theil_sen leaves out), in chunks."""
    rng = np.random.default_rng(11)
    x = np.sort(rng.choice(60, size=(300, 9), replace=True), axis=1).astype(float)
    x[:250] = [np.sort(rng.choice(60, size=9, replace=False)) for _ in range(250)]
    y = np.round(rng.normal(0, 3, (300, 9)), 1)
    y[7, 3] = np.nan
    y[8] = 5.0
    slopes, agreement = trend.theil_sen_rows(x, y, chunk_rows=64)
    for row in range(300):
        expected = trend.theil_sen(x[row], y[row])
        assert (slopes[row], agreement[row]) == pytest.approx(expected, rel=0, abs=0, nan_ok=True), row


def test_auto_memory_follows_a_leak():
    days = np.arange(14.0)
    peaks = 1000 * MI + days * 100 * MI  # +100Mi a day
    request, need, why = auto.memory_size(peaks, days, horizon_days=7)  # request = need
    # the projected peak at the horizon's end is 1000 + 100 * (13 + 7) Mi
    assert need == pytest.approx((1000 + 100 * 20) * MI * 1.15)  # + the 15% peak margin
    assert request >= (1000 + 100 * 20) * MI
    assert "rising" in why
    flat_request, flat_need, flat_why = auto.memory_size(np.full(14, 500.0 * MI), days, 7)
    assert flat_need == pytest.approx(575 * MI) and flat_request == pytest.approx(575 * MI)
    assert "Gumbel" not in flat_why
    # with the (dropped) Gumbel request: a flat series' fit is the series itself
    gumbel = auto.Knobs(cpu_quantile=0.99, step_down=8.0, gumbel_request=True)
    g_request, g_need, g_why = auto.memory_size(np.full(14, 500.0 * MI), days, 7, gumbel)
    assert g_need == pytest.approx(575 * MI) and g_request == pytest.approx(500 * MI) and "Gumbel" in g_why


def test_fits_residual_medians_are_each_series_own_median():
    """_fits gives each fitted series the median of its residuals that cpu_size would compute for
    it alone, bit for bit (series of several lengths, some too short to fit, NaN among the values)."""
    rng = np.random.default_rng(5)
    lengths = np.array([3, 7, 7, 30, 12, 4, 7, 1, 30])
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    index = np.concatenate([np.sort(rng.choice(40, n, replace=False)).astype(float) for n in lengths])
    values = rng.lognormal(0, 0.1, index.size) + 0.05 * index  # rising: cpu_size takes the median
    values[5] = np.nan
    slopes, agreement, medians = auto._fits(offsets, lengths, index, values, residuals=True)
    trending = 0
    for k, (lo, n) in enumerate(zip(offsets, lengths, strict=True)):
        if n < auto.MIN_PEAKS_FOR_FIT:
            assert np.isnan(medians[k]) and np.isnan(slopes[k])
            continue
        own = np.median(values[lo:lo + n] - slopes[k] * index[lo:lo + n])
        assert (np.isnan(own) and np.isnan(medians[k])) or own == medians[k]
        level, why = auto.cpu_size(1.0, values[lo:lo + n], index[lo:lo + n], 7, "", True,
                                   (float(slopes[k]), float(agreement[k])))
        assert (level, why) == auto.cpu_size(1.0, values[lo:lo + n], index[lo:lo + n], 7, "", True,
                                             (float(slopes[k]), float(agreement[k])), float(medians[k]))
        trending += "rising" in why
    assert trending >= 3


def test_auto_cpu_is_the_p99_and_short_history_gets_a_margin():
    level, why = auto.cpu_size(0.4, np.full(10, 0.3), np.arange(10.0), 7)
    assert level == 0.4 and why == "p99"
    request, need, why = auto.memory_size(np.array([100.0 * MI, 120.0 * MI]), np.array([0.0, 1.0]), 7)
    assert need == pytest.approx(120 * MI * 1.15) and "only" in why  # the peak margin, no fit


def test_vectorised_find_buckets_agrees():
    rng = np.random.default_rng(2)
    values = np.concatenate([rng.lognormal(20, 2, 2000), [0.0, 9.99e6, 1e7, 1e7 * 1.05, 5e12]])
    expected = [vpa.MEMORY_HISTOGRAM.find_bucket(v) for v in values]
    assert vpa.MEMORY_HISTOGRAM.find_buckets(values).tolist() == expected


def test_percentiles_by_group_match_the_scalar_version():
    rng = np.random.default_rng(4)
    rows = []
    for gid in range(5):
        values = rng.lognormal(-1 - gid, 1, 300)
        weights = rng.uniform(0.1, 1, 300)
        rows.append(pl.DataFrame({"group_id": gid, "bucket": vpa.CPU_HISTOGRAM.find_buckets(values), "weight": weights}))
    hist = pl.concat(rows)
    got = vpa.percentiles_by_group(hist, vpa.CPU_HISTOGRAM, (0.5, 0.9, 0.95))
    for g in rows:
        gid = g["group_id"][0]
        row = got.filter(pl.col("group_id") == gid).row(0, named=True)
        for q in (0.5, 0.9, 0.95):
            assert row[f"p{q}"] == vpa.CPU_HISTOGRAM.percentile(g["bucket"].to_numpy(), g["weight"].to_numpy(), q)
