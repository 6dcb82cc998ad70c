"""Rollup, HPA, too-little-data, severity, QoS, savings and the bundled sample's rows."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from capplan import store
from capplan.analysis.recommend import CONTRACT_COLUMNS, krr_severity, recommend
from capplan.analysis.strategies.base import StrategyParams
from capplan.errors import NoDataError
from capplan.report import ReportOptions
from capplan.report.recommendations import recommendation_sections as report_section
from capplan.report.results import ReportResults
from tests.analysis.recommend_data import MI, TinyCluster
from tests.conftest import SAMPLE_DIR

N = 2 * 24 * 60  # two days of one-minute samples


def _db(tmp_path, cluster: TinyCluster):
    return store.open_db(cluster.write(tmp_path / "t.duckdb"), read_only=True)


def test_rollup_through_replicasets_cronjobs_and_bare_pods(tmp_path):
    flat = np.full(N, 0.1)
    c = (TinyCluster()
         .owner("ns", "ReplicaSet", "web-1", "Deployment", "web").owner("ns", "ReplicaSet", "web-2", "Deployment", "web")
         .owner("ns", "Job", "report-1", "CronJob", "report"))
    c.pod("ns", "web-1-a", flat, np.full(N, 100 * MI), owner=("ReplicaSet", "web-1"))
    c.pod("ns", "web-1-b", flat * 3, np.full(N, 300 * MI), owner=("ReplicaSet", "web-1"))
    c.pod("ns", "web-2-a", flat * 2, np.full(N, 200 * MI), owner=("ReplicaSet", "web-2"))
    c.pod("ns", "db-0", flat, np.full(N, 100 * MI), owner=("StatefulSet", "db"))
    c.pod("ns", "report-1-x", flat, np.full(N, 50 * MI), owner=("Job", "report-1"))
    c.pod("ns", "lonely", flat, np.full(N, 10 * MI))
    con = _db(tmp_path, c)
    try:
        frame = recommend(con, "simple", timedelta(days=14))
    finally:
        con.close()
    keys = {(r["owner_kind"], r["owner_name"]): r for r in frame.iter_rows(named=True)}
    assert set(keys) == {("Deployment", "web"), ("StatefulSet", "db"), ("CronJob", "report"), ("Pod", "lonely")}
    web = keys[("Deployment", "web")]
    assert web["pods"] == 3
    # all replicas pooled: the largest per-pod p95 (pod web-1-b, 0.3 cores) and the peak 300Mi x 1.15
    assert web["cpu_request_recommended"] == pytest.approx(0.3)
    assert web["memory_limit_recommended"] == math.ceil(300 * MI * 1.15)
    assert frame.columns[: len(CONTRACT_COLUMNS)] == CONTRACT_COLUMNS


def test_hpa_keeps_the_cpu_request_unless_allowed(tmp_path):
    c = TinyCluster().owner("ns", "ReplicaSet", "api-1", "Deployment", "api").hpa("ns", "Deployment", "api", "cpu")
    c.pod("ns", "api-1-a", np.full(N, 0.05), np.full(N, 100 * MI), owner=("ReplicaSet", "api-1"),
          request=(0.5, None, 512 * MI, 512 * MI))
    con = _db(tmp_path, c)
    try:
        kept = recommend(con, "simple").row(0, named=True)
        changed = recommend(con, "simple", params=StrategyParams(allow_hpa=True)).row(0, named=True)
    finally:
        con.close()
    assert kept["cpu_request_recommended"] == 0.5 and "HPA scales on cpu" in kept["reason"]
    assert kept["memory_request_recommended"] == math.ceil(100 * MI * 1.15)  # memory is not the HPA's
    assert changed["cpu_request_recommended"] == pytest.approx(0.05)
    assert "--allow-hpa" in changed["reason"]
    assert kept["hpa_metrics"] == "cpu"


def test_too_little_history_gives_no_recommendation(tmp_path):
    short = 6 * 60  # six hours
    c = TinyCluster().pod("ns", "new", np.full(short, 0.2), np.full(short, 100 * MI))
    c.pod("ns", "old", np.full(N, 0.2), np.full(N, 100 * MI))
    con = _db(tmp_path, c)
    try:
        frame = recommend(con, "auto")
        lenient = recommend(con, "auto", params=StrategyParams(min_history=timedelta(hours=2)))
    finally:
        con.close()
    new = frame.filter(pl.col("owner_name") == "new").row(0, named=True)
    assert new["cpu_request_recommended"] is None and new["memory_limit_recommended"] is None
    assert new["severity"] == "unknown" and "min-history" in new["reason"]
    assert new["cpu_request_current"] == 0.5  # the current spec is still shown
    assert frame.filter(pl.col("owner_name") == "old")["cpu_request_recommended"][0] is not None
    assert lenient.filter(pl.col("owner_name") == "new")["cpu_request_recommended"][0] is not None


def test_krr_severity_thresholds():
    assert krr_severity(1.0, 0.5, "cpu") == "critical"      # 0.5 core
    assert krr_severity(1.0, 0.51, "cpu") == "warning"      # 0.49
    assert krr_severity(1.0, 0.75, "cpu") == "warning"      # 0.25
    assert krr_severity(1.0, 0.9, "cpu") == "ok"            # 0.1
    assert krr_severity(1.0, 0.95, "cpu") == "good"
    assert krr_severity(None, None, "cpu") == "good"
    assert krr_severity(None, 0.2, "cpu") == "warning"
    assert krr_severity(1000 * MI, 500 * MI, "memory") == "critical"
    assert krr_severity(1000 * MI, 750 * MI, "memory") == "warning"
    assert krr_severity(1000 * MI, 900 * MI, "memory") == "ok"
    assert krr_severity(1000 * MI, 950 * MI, "memory") == "good"


def test_savings_money_and_qos(tmp_path):
    c = TinyCluster().owner("ns", "ReplicaSet", "w-1", "Deployment", "w")
    for p in ("w-1-a", "w-1-b"):
        c.pod("ns", p, np.full(N, 0.25), np.full(N, 1024 * MI), owner=("ReplicaSet", "w-1"),
              request=(2.0, 2.0, 4096 * MI, 4096 * MI))
    con = _db(tmp_path, c)
    try:
        row = recommend(con, "max-target", cpu_cost=0.04, memory_cost=0.005).row(0, named=True)
    finally:
        con.close()
    # max-target: cpu 0.25 / 0.7 -> 358m (rounded up); memory 1024Mi / 0.7
    cpu_rec = math.ceil(0.25 / 0.7 * 1000) / 1000
    mem_rec = math.ceil(1024 * MI / 0.7)
    assert row["cpu_request_recommended"] == pytest.approx(cpu_rec)
    assert row["cpu_savings_cores"] == pytest.approx((2.0 - cpu_rec) * 2)
    assert row["memory_savings_gib"] == pytest.approx((4096 * MI - mem_rec) * 2 / 2**30, abs=1e-4)
    assert row["savings_per_hour"] == pytest.approx(row["cpu_savings_cores"] * 0.04 + row["memory_savings_gib"] * 0.005,
                                                    abs=1e-3)
    assert row["severity"] == "critical"
    # Guaranteed (2/2 cores, 4Gi/4Gi) -> Burstable (no cpu limit any more)
    assert row["qos_class_current"] == "Guaranteed" and row["qos_class_recommended"] == "Burstable"


def test_empty_window_is_no_data(tmp_path):
    c = TinyCluster().pod("ns", "p", np.full(10, 0.1), np.full(10, MI))
    con = _db(tmp_path, c)
    try:
        with pytest.raises(NoDataError):
            recommend(con, "simple", namespaces=["nope"])
    finally:
        con.close()


@pytest.fixture(scope="module")
def sample_auto(sample_db_readonly):
    con = store.open_db(sample_db_readonly, read_only=True)
    try:
        yield recommend(con, "auto"), recommend(con, "vpa"), report_section(ReportResults(con, ReportOptions()))
    finally:
        con.close()


def _row(frame, name, container=None):
    f = frame.filter(pl.col("owner_name") == name)
    if container:
        f = f.filter(pl.col("container") == container)
    return f.row(0, named=True)


def test_sample_rows_make_sense(sample_auto):
    auto, vpa, _ = sample_auto
    usage = pl.read_parquet(SAMPLE_DIR / "usage.parquet")
    # idle legacy-admin shrinks to near its real use
    admin = _row(auto, "legacy-admin")
    admin_peak = usage.filter(pl.col("pod").str.starts_with("legacy-admin"))["memory_bytes"].max()
    assert admin["cpu_request_recommended"] < 0.05 < admin["cpu_request_current"]
    assert admin_peak <= admin["memory_limit_recommended"] < admin["memory_limit_current"]
    assert admin["severity"] == "critical"
    # the OOM-killed image-resizer grows its memory beyond the 512Mi it was killed at
    resizer = _row(auto, "image-resizer")
    assert resizer["memory_limit_current"] == 512 * MI
    assert resizer["memory_limit_recommended"] >= 512 * MI * 1.2 and "OOM" in resizer["reason"]
    assert _row(vpa, "image-resizer")["memory_request_recommended"] > 512 * MI
    # the leaking session-cache is sized for where the leak will be, not where it was
    cache = _row(auto, "session-cache")
    cache_usage = usage.filter(pl.col("pod").str.starts_with("session-cache"))
    assert cache["memory_request_recommended"] > cache_usage["memory_bytes"].max()
    assert "rising" in cache["reason"]
    # HPA on web/api: its cpu request stays
    api = _row(auto, "api")
    assert api["cpu_request_recommended"] == api["cpu_request_current"] and "HPA" in api["reason"]
    # bare debug pods are their own workloads, the CronJob rolls its Jobs up
    assert set(auto.filter(pl.col("owner_kind") == "Pod")["owner_name"]) >= {"debug-shell-0", "debug-shell-1"}
    assert _row(auto, "nightly-report")["owner_kind"] == "CronJob"
    assert all(r for r in auto["reason"])


def test_report_section_carries_contract_columns(sample_auto):
    _, _, sections = sample_auto
    (section,) = sections
    assert section.key == "recommendations"
    assert section.frame.columns[: len(CONTRACT_COLUMNS)] == CONTRACT_COLUMNS
    assert 0 < section.frame.height <= ReportOptions().top


def test_samples_without_memory_give_no_guess(tmp_path):
    c = TinyCluster().pod("ns", "blind", np.full(N, 0.2), np.full(N, np.nan))
    c.pod("ns", "seen", np.full(N, 0.2), np.full(N, 100 * MI))
    con = _db(tmp_path, c)
    try:
        for strategy in ("auto", "vpa", "simple", "max-target"):
            frame = recommend(con, strategy)
            blind = frame.filter(pl.col("owner_name") == "blind").row(0, named=True)
            assert blind["severity"] == "unknown" and blind["memory_limit_recommended"] is None
            assert "no usable" in blind["reason"]
            assert frame.filter(pl.col("owner_name") == "seen")["memory_limit_recommended"][0] is not None
    finally:
        con.close()


def test_stale_history_is_flagged(tmp_path):
    c = TinyCluster().pod("ns", "gone", np.full(N, 0.2), np.full(N, 100 * MI))
    c.pod("ns", "here", np.full(N, 0.2), np.full(N, 100 * MI), offset=N)  # two days later
    con = _db(tmp_path, c)
    try:
        frame = recommend(con, "simple")
    finally:
        con.close()
    gone = frame.filter(pl.col("owner_name") == "gone").row(0, named=True)
    assert "2.0 days before the window's end" in gone["reason"]
    assert "before the window's end" not in frame.filter(pl.col("owner_name") == "here")["reason"][0]


def test_a_kept_hpa_request_never_exceeds_the_new_limit(tmp_path):
    # HPA on memory keeps the 2Gi request; simple would set the limit to 115Mi: raised to 2Gi
    c = TinyCluster().owner("ns", "ReplicaSet", "m-1", "Deployment", "m").hpa("ns", "Deployment", "m", "memory")
    c.pod("ns", "m-1-a", np.full(N, 0.05), np.full(N, 100 * MI), owner=("ReplicaSet", "m-1"),
          request=(0.5, None, 2048 * MI, 4096 * MI))
    con = _db(tmp_path, c)
    try:
        row = recommend(con, "simple").row(0, named=True)
    finally:
        con.close()
    assert row["memory_request_recommended"] == 2048 * MI
    assert row["memory_limit_recommended"] == 2048 * MI and "limit raised to the request" in row["reason"]


def test_percentiles_in_slices_equal_one_pass(tmp_path, monkeypatch):
    import capplan.analysis.recommend as rec_module

    rng = np.random.default_rng(9)
    c = TinyCluster()
    for i in range(7):
        c.pod("ns", f"p{i}", rng.gamma(2, 0.1, N), rng.uniform(100, 200, N) * MI)
    con = _db(tmp_path, c)
    try:
        whole = {s: recommend(con, s) for s in ("simple", "auto")}
        monkeypatch.setattr(rec_module, "PERCENTILE_SAMPLES_PER_PART", 5000)  # 7 x 2880 samples: 5 slices
        sliced = {s: recommend(con, s) for s in ("simple", "auto")}
    finally:
        con.close()
    for s in whole:
        assert sliced[s].equals(whole[s])
