"""`capplan collect` against a real Prometheus serving the sample cluster: usage equals the sample
(what `capplan import` loads), spec lands, incremental runs add exactly the new points."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from capplan import store
from capplan.cli import app
from capplan.collect import CollectOptions, collect
from capplan.collect.queries import METRICS, OPTIONAL_QUIET
from tests.collect.conftest import WINDOW_END, WINDOW_START
from tests.promharness import PrometheusServer, Series, build_tsdb

STEP = 300  # the sample's resolution


def stored_usage(db: Path) -> pl.DataFrame:
    con = store.open_db(db, read_only=True)
    try:
        return con.execute(
            "SELECT s.namespace, s.pod, s.container, s.node, u.ts, u.cpu_cores, u.memory_bytes "
            "FROM usage_samples u JOIN series s USING (series_id)"
        ).pl()
    finally:
        con.close()


def table(db: Path, name: str) -> pl.DataFrame:
    con = store.open_db(db, read_only=True)
    try:
        return con.execute(f"SELECT * FROM {name}").pl()
    finally:
        con.close()


def run(url: str, db: Path, **kwargs) -> object:
    kwargs.setdefault("step_seconds", STEP)
    return collect(CollectOptions(url=url, db=db, **kwargs))


@pytest.fixture(scope="module")
def full_db(prom, tmp_path_factory) -> Path:
    """The whole window collected once (shared, read-only)."""
    db = tmp_path_factory.mktemp("full") / "full.duckdb"
    summary = run(prom.url, db, start=WINDOW_START, end=WINDOW_END)
    assert summary.status == "ok" and summary.warnings == []
    return db


def test_usage_equals_the_imported_sample(full_db: Path, sample_usage_window: pl.DataFrame) -> None:
    got = stored_usage(full_db)
    want = sample_usage_window
    keys = ["namespace", "pod", "container", "node", "ts"]
    assert got.height == want.height
    joined = want.join(got, on=keys, how="full", coalesce=True, suffix="_got")
    assert joined.filter(pl.col("cpu_cores").is_null() | pl.col("cpu_cores_got").is_null()).height == 0
    # CPU: rate over each step of a counter built from the sample -> the sample's value, stored to
    # the nearest millicore (schema 003: at most 0.0005 cores off, plus float32 rounding)
    err = (joined["cpu_cores_got"].cast(pl.Float64) - joined["cpu_cores"].cast(pl.Float64)).abs()
    assert err.max() <= 0.0005 + 1e-6
    # memory: the working set written at the sample's times, max within each step -> the same
    # bytes, stored to the nearest KiB
    assert ((joined["memory_bytes_got"] - joined["memory_bytes"]).abs() <= 512).all()
    # pod-level cgroups (container="") and pause containers (POD) were served but not collected
    assert not got["container"].is_in(["", "POD"]).any()


def test_a_peak_between_two_steps_is_kept_and_rates_are_exact(tmp_path: Path, db: Path) -> None:
    # Hand-written cAdvisor series scraped every 20 s, collected at a 60 s step.
    t0 = 1_790_000_040  # a multiple of 60
    ts = [t0 + 20 * i for i in range(10)]          # t0 .. t0+180
    labels = {"namespace": "ns", "pod": "p", "container": "c", "node": "n1", "job": "kubelet"}
    # counter: +6 cpu-seconds every 20 s (0.3 cores) for 60 s, then +12 every 20 s (0.6 cores).
    # (It starts above 0: from a zero counter Prometheus does not extrapolate the window's extra 1 ms.)
    counter = [500 + v for v in (0, 6, 12, 18, 30, 42, 54, 66, 78, 90)]
    memory = [v * 1024 for v in (100, 100, 100, 100, 900, 100, 100, 100, 100, 100)]  # a peak at t0+80 only
    series = [Series("container_cpu_usage_seconds_total", {**labels, "cpu": "total"}, ts, counter, kind="counter"),
              Series("container_memory_working_set_bytes", labels, ts, memory)]
    build_tsdb(series, tmp_path / "tsdb")
    with PrometheusServer(tmp_path / "tsdb") as server:
        summary = collect(CollectOptions(url=server.url, db=db, step_seconds=60,
                                         start=datetime.utcfromtimestamp(t0 + 60),
                                         end=datetime.utcfromtimestamp(t0 + 180)))
    got = stored_usage(db).sort("ts")
    # t0+60: (18-0)/60 = 0.3; t0+120: (54-18)/60 = 0.6; t0+180: (90-54)/60 = 0.6
    assert got["cpu_cores"].to_list() == pytest.approx([0.3, 0.6, 0.6], rel=1e-6)
    # steps (t0, t0+60], (t0+60, t0+120], (t0+120, t0+180]: the 900 KiB peak at t0+80 is in the second
    assert got["memory_bytes"].to_list() == [100 * 1024, 900 * 1024, 100 * 1024]
    # every kube-state-metrics metric is absent: one warning each, naming what capplan lacks
    # (except the newer or fallback series whose absence loses nothing: OPTIONAL_QUIET)
    absent = {m.key for m in METRICS if m.kind != "usage"} - OPTIONAL_QUIET
    assert {w.split(" ", 1)[0] for w in summary.warnings} == absent
    assert any("kube_pod_container_resource_requests is absent" in w and "requests" in w for w in summary.warnings)


def _alive(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.filter((pl.col("valid_to") >= WINDOW_START) & (pl.col("valid_from") <= WINDOW_END))


def test_spec_lands_with_history(full_db: Path, sample_cluster) -> None:
    src = sample_cluster.frames
    keys = ["namespace", "pod", "container"]
    cols = ["init_container", "restartable", "cpu_request_cores", "cpu_limit_cores", "memory_request_bytes",
            "memory_limit_bytes"]
    got = table(full_db, "containers").select(*keys, *cols).unique()
    want = _alive(src["containers"]).select(*keys, *cols).unique()
    assert got.height == want.height
    assert got.join(want, on=keys + cols, how="anti", nulls_equal=True).height == 0
    assert got.filter(pl.col("restartable")).select("container").unique().to_series().to_list() == ["metrics-proxy"]

    pods = table(full_db, "pods")
    want_pods = _alive(src["pods"])
    pcols = ["namespace", "pod", "node", "owner_kind", "owner_name", "priority_class", "qos_class", "phase"]
    assert pods.height == want_pods.height
    assert pods.select(pcols).join(want_pods.select(pcols), on=pcols, how="anti", nulls_equal=True).height == 0
    # a CronJob's pod lives 01:00..03:00: its interval is exactly that
    jobs = pods.filter(pl.col("owner_kind") == "Job").sort("valid_from")
    assert jobs["valid_from"].to_list()[0] == datetime(2026, 11, 2, 1, 0)
    assert jobs["valid_to"].to_list()[0] == datetime(2026, 11, 2, 3, 0)

    nodes = table(full_db, "nodes").sort("node")
    want_nodes = src["nodes"].sort("node")
    for col in ("cpu_capacity_cores", "memory_capacity_bytes", "cpu_allocatable_cores", "memory_allocatable_bytes",
                "pods_allocatable", "taints"):
        assert nodes[col].to_list() == want_nodes[col].to_list(), col
    assert [json.loads(t) for t in nodes["labels"]] == [json.loads(t) for t in want_nodes["labels"]]
    assert nodes["valid_from"].min() == WINDOW_START and nodes["valid_to"].max() == WINDOW_END

    ocols = ["namespace", "kind", "name", "owner_kind", "owner_name"]
    owners = table(full_db, "owners").select(ocols).unique()
    assert owners.sort(ocols).equals(_alive(src["owners"]).select(ocols).unique().sort(ocols))
    wcols = ["namespace", "kind", "name", "replicas", "strategy", "max_surge_pods"]
    workloads = table(full_db, "workloads").select(wcols).sort(wcols)
    assert workloads.equals(_alive(src["workloads"]).select(wcols).cast({"replicas": pl.Int32, "max_surge_pods": pl.Int32}).sort(wcols))
    hcols = ["namespace", "hpa", "metric_name", "target_kind", "target_name"]
    assert table(full_db, "hpas").select(hcols).equals(src["hpas"].select(hcols))
    qcols = ["namespace", "quota", "resource", "hard"]
    assert table(full_db, "resource_quotas").select(qcols).sort(qcols).equals(src["resource_quotas"].select(qcols).sort(qcols))
    rcols = ["namespace", "pod", "container", "ts", "restarts_total", "reason"]
    want_restarts = src["restarts"].filter(pl.col("ts").is_between(WINDOW_START, WINDOW_END)).select(rcols)
    got_restarts = table(full_db, "restarts").select(rcols).cast({"restarts_total": pl.Int64})
    assert want_restarts.height >= 1 and got_restarts.sort("ts").equals(want_restarts.sort("ts"))


def test_run_is_recorded_with_high_water_marks(full_db: Path, prom) -> None:
    runs = table(full_db, "collection_runs")
    assert runs["status"].to_list() == ["ok"] and runs["queries"][0] > 0 and runs["samples"][0] > 0
    marks = table(full_db, "high_water_marks")
    assert set(marks["metric"]) == {m.key for m in METRICS} and set(marks["ts"]) == {WINDOW_END}
    assert set(marks["source"]) == {prom.url}


def test_incremental_runs_add_exactly_the_new_points(prom, db: Path, sample_usage_window: pl.DataFrame) -> None:
    first_end = WINDOW_START + timedelta(hours=6)
    later_end = WINDOW_START + timedelta(hours=9)
    first = run(prom.url, db, start=WINDOW_START, end=first_end)
    assert first.samples == sample_usage_window.filter(pl.col("ts") <= first_end).height
    again = run(prom.url, db, end=first_end)  # from the high-water mark: nothing new
    assert again.status == "up-to-date" and again.samples == 0 and again.queries == 0
    later = run(prom.url, db, end=later_end)
    assert later.window_start == first_end + timedelta(seconds=STEP)
    assert later.samples == sample_usage_window.filter((pl.col("ts") > first_end) & (pl.col("ts") <= later_end)).height
    # re-collecting an overlapping window explicitly inserts no duplicates
    overlap = run(prom.url, db, start=WINDOW_START + timedelta(hours=5), end=later_end)
    assert overlap.samples == 0 and overlap.spec_rows == 0
    got = stored_usage(db)
    assert got.height == got.unique(["namespace", "pod", "container", "node", "ts"]).height
    assert got.height == sample_usage_window.filter(pl.col("ts") <= later_end).height


def test_namespace_filter_is_escaped_and_has_its_own_marks(prom, db: Path, sample_usage_window) -> None:
    end = WINDOW_START + timedelta(hours=2)
    nothing = run(prom.url, db, start=WINDOW_START, end=end, namespaces=["w.b"])  # a regex would match "web"
    assert nothing.samples == 0
    two = run(prom.url, db, start=WINDOW_START, end=end, namespaces=["web", "data"])
    want = sample_usage_window.filter((pl.col("ts") <= end) & pl.col("namespace").is_in(["web", "data"]))
    assert two.samples == want.height
    assert set(stored_usage(db)["namespace"]) == {"web", "data"}
    marks = table(db, "high_water_marks")
    assert set(marks["source"]) == {f"{prom.url}#namespace=data,web", f"{prom.url}#namespace=w.b"}


def test_small_answers_split_by_namespace_and_time(prom, db: Path, sample_usage_window) -> None:
    end = WINDOW_START + timedelta(hours=12)
    summary = run(prom.url, db, start=WINDOW_START, end=end, max_points_per_query=2000, concurrency=3)
    assert summary.samples == sample_usage_window.filter(pl.col("ts") <= end).height
    assert summary.chunks > 1
    # 145 steps x ~60 containers would be one 8,700-point answer; a 2,000-point budget needs more queries
    assert summary.queries > 2 * summary.chunks


def test_too_many_samples_is_split_not_fatal(prom_tsdb: Path, db: Path, sample_usage_window) -> None:
    end = WINDOW_START + timedelta(hours=4)
    with PrometheusServer(prom_tsdb, extra_args=["--query.max-samples=2000"]) as small:
        summary = run(small.url, db, start=WINDOW_START, end=end)
    assert summary.samples == sample_usage_window.filter(pl.col("ts") <= end).height


def test_cli_prints_one_summary_line_or_json(prom, db: Path, runner) -> None:
    end = (WINDOW_START + timedelta(hours=1)).isoformat() + "Z"
    result = runner.invoke(app, ["collect", "--prometheus-url", prom.url, "--db", str(db), "--step", "5m",
                                 "--start", WINDOW_START.isoformat(), "--end", end])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and prom.url in lines[0] and "samples" in lines[0] and "queries" in lines[0]
    result = runner.invoke(app, ["collect", "--prometheus-url", prom.url, "--db", str(db), "--step", "5m",
                                 "--end", (WINDOW_START + timedelta(hours=2)).isoformat(), "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["status"] == "ok" and doc["window_start"] == "2026-11-02T01:05:00Z"
    assert doc["window_end"] == "2026-11-02T02:00:00Z" and doc["samples"] > 0 and doc["queries"] > 0


def test_node_percentiles_match_the_imported_sample(full_db: Path, sample_db_readonly: Path) -> None:
    # the same downstream query on collected and on imported data (capplan import of the bundled sample)
    params = {"start": WINDOW_START, "end": WINDOW_END}
    results = []
    for path in (full_db, sample_db_readonly):
        con = store.open_db(path, read_only=True)
        try:
            results.append(store.query(con, "node_usage_percentiles", params).sort("node"))
        finally:
            con.close()
    collected, imported = results
    assert collected["node"].to_list() == imported["node"].to_list() and collected.height == 8
    assert collected["usage_points"].to_list() == imported["usage_points"].to_list()
    for col in ("cpu_usage_p95_cores", "cpu_usage_max_cores"):
        assert collected[col].to_list() == pytest.approx(imported[col].to_list(), rel=1e-5)
    for col in ("memory_usage_p95_bytes", "memory_usage_max_bytes"):
        assert collected[col].to_list() == imported[col].to_list()


def test_a_step_finer_than_the_scrape_interval_spreads_each_interval(prom, db: Path, sample_usage_window) -> None:
    # the served cAdvisor series are 5 minutes apart; a 60 s step must not lose CPU (a rate needs
    # two samples) and says so
    lo, end = WINDOW_START + timedelta(hours=1), WINDOW_START + timedelta(hours=2)
    summary = run(prom.url, db, start=lo, end=end, step_seconds=60)
    assert any("finer than the 300s scrape interval" in w for w in summary.warnings)
    got = stored_usage(db)
    assert got["cpu_cores"].null_count() == 0 and got["memory_bytes"].null_count() == 0
    # Each 5-minute counter increase is spread evenly over its interval, so every minute in
    # (T5 - 5m, T5] has the sample's CPU at T5 (the next 5-minute time at or after the minute);
    # memory is the last sample within 5 minutes (the 5-minute time at or before the minute).
    minute = pl.col("ts").dt.epoch("s")
    keys = ["namespace", "pod", "container"]
    want = sample_usage_window.select(*keys, "ts", "cpu_cores", "memory_bytes")
    by_next = got.with_columns(ts5=((minute + 299) // 300 * 300 * 1_000_000).cast(pl.Datetime("us")))
    by_prev = got.with_columns(ts5=(minute // 300 * 300 * 1_000_000).cast(pl.Datetime("us")))
    cpu = by_next.join(want.rename({"ts": "ts5", "cpu_cores": "cpu_want"}).drop("memory_bytes"), on=[*keys, "ts5"])
    memory = by_prev.join(want.rename({"ts": "ts5", "memory_bytes": "memory_want"}).drop("cpu_cores"), on=[*keys, "ts5"])
    minutes_alive = sample_usage_window.filter(pl.col("ts").is_between(lo + timedelta(minutes=5), end)).height * 5
    assert cpu.height == got.height >= minutes_alive
    err = (cpu["cpu_cores"].cast(pl.Float64) - cpu["cpu_want"].cast(pl.Float64)).abs()
    assert err.max() <= 0.0005 + 1e-6  # the nearest millicore (schema 003)
    assert memory.height == got.height and ((memory["memory_bytes"] - memory["memory_want"]).abs() <= 512).all()


def test_an_hourly_run_plans_from_the_store_without_the_series_api(prom, db: Path, fault_proxy,
                                                                    sample_usage_window) -> None:
    """An incremental run whose window fits one answer even for twice the containers stored skips
    the /api/v1/series count (one query fewer each hour); one that does not fit still asks it."""
    proxy = fault_proxy(upstream=prom.url)
    first_end = WINDOW_START + timedelta(hours=6)
    run(proxy.url, db, start=WINDOW_START, end=first_end)
    asked = proxy.requests.get("/api/v1/series", 0)
    assert asked >= 1  # the first run plans from the index
    hour = run(proxy.url, db, end=first_end + timedelta(hours=1))
    assert proxy.requests.get("/api/v1/series", 0) == asked
    in_hour = (pl.col("ts") > first_end) & (pl.col("ts") <= first_end + timedelta(hours=1))
    assert hour.samples == sample_usage_window.filter(in_hour).height > 0
    # ~60 containers x 13 steps x 2 does not fit 500 points: the plan needs the per-namespace counts
    small = run(proxy.url, db, end=first_end + timedelta(hours=2), max_points_per_query=500)
    assert proxy.requests.get("/api/v1/series", 0) == asked + 1
    in_next = (pl.col("ts") > first_end + timedelta(hours=1)) & (pl.col("ts") <= first_end + timedelta(hours=2))
    assert small.samples == sample_usage_window.filter(in_next).height


def test_an_hourly_run_opens_the_database_once_and_longer_runs_let_readers_in(prom, db: Path, monkeypatch,
                                                                              sample_usage_window) -> None:
    """An incremental run of one chunk reads its marks, records itself and commits its chunk on one
    writer connection (a writer's open is a read-only look at the version, then the writer: two
    connects, where five were made before); a run of several chunks lets the file go after
    recording its start, so a reader opens it between two chunks."""
    connects: list[bool] = []
    real_connect = store._connect

    def counting(path: Path, read_only: bool, wait_seconds: float):
        connects.append(read_only)
        return real_connect(path, read_only, wait_seconds)

    first_end = WINDOW_START + timedelta(hours=6)
    run(prom.url, db, start=WINDOW_START, end=first_end)
    monkeypatch.setattr(store, "_connect", counting)
    hour = run(prom.url, db, end=first_end + timedelta(hours=1))
    assert hour.chunks == 1 and hour.samples == sample_usage_window.filter(
        (pl.col("ts") > first_end) & (pl.col("ts") <= first_end + timedelta(hours=1))).height > 0
    assert connects == [True, False]
    runs = table(db, "collection_runs")
    assert runs["status"].to_list() == ["ok", "ok"] and runs["samples"][1] == hour.samples

    readers: list[int] = []

    def reader(done: int, _total: int, _summary) -> None:
        con = store.open_db(db, read_only=True, wait_seconds=0)  # LockedError if the run held the file
        try:
            readers.append(store.fetch_row(con, "SELECT count(*) FROM usage_raw")[0])
        finally:
            con.close()

    longer = collect(CollectOptions(url=prom.url, db=db, step_seconds=STEP, end=first_end + timedelta(hours=7),
                                    chunk=timedelta(hours=2)), progress=reader)
    assert longer.chunks == 3 and len(readers) == 3 and readers[0] < readers[1] < readers[2]


def test_a_run_of_several_chunks_leaves_the_daily_scope_figures_current(full_db: Path) -> None:
    """The collector refreshes the daily scope figures once, with its last chunk (a day's figure is
    of the whole day's samples, which several chunks share): after the 36-hour run, nothing is
    pending and the table equals the brute force over every stored sample."""
    from tests.test_scope_usage import (
        assert_namespace_sums,
        assert_same,
        brute_force,
        brute_namespace_sums,
        stored_namespace_sums,
        stored_table,
    )

    con = store.open_db(full_db, read_only=True)
    try:
        assert store.fetch_row(con, "SELECT count(*) FROM scope_usage_pending")[0] == 0
        want = brute_force(con).filter(pl.col("scope_kind") != "pool")
        assert want.height > 2 and want["day"].n_unique() == 2  # two days, cluster and namespaces
        assert_same(stored_table(con), want)
        assert_namespace_sums(stored_namespace_sums(con), brute_namespace_sums(con))  # schema 008, with them
    finally:
        con.close()


def test_a_run_leaves_its_complete_days_clustered(full_db: Path) -> None:
    """After its last chunk the collector rewrites the complete days it appended to in the
    clustered order (schema 009): of the 36-hour run's two days, the first is clustered, the last
    (not complete) is still recorded."""
    from tests.test_clustered_usage import assert_layout

    con = store.open_db(full_db, read_only=True)
    try:
        days = sorted({r[0] for r in con.execute("SELECT DISTINCT CAST(ts AS DATE) FROM usage_raw").fetchall()})
        assert len(days) == 2
        assert_layout(con, {days[0]}, {days[1]})
    finally:
        con.close()


STORED_TABLES = ["usage_raw", "series", "series_nodes", "node_usage", "namespace_usage", "scope_usage_daily", "nodes",
                 "pods", "containers", "owners", "workloads", "hpas", "resource_quotas", "restarts",
                 "high_water_marks", "usage_daily", "usage_hourly"]


def test_an_hourly_run_leaves_a_small_write_ahead_log_unmerged_and_readers_see_it(prom, tmp_path: Path,
                                                                                  monkeypatch) -> None:
    """An hourly run whose writes leave a write-ahead log of at most WAL_KEPT_BYTES closes without
    DuckDB's checkpoint; readers and the next runs see exactly what a run that checkpoints stores,
    and the run that takes the log past the bound checkpoints it (no log left)."""
    from capplan.collect import run as collect_run

    first_end = WINDOW_START + timedelta(hours=6)
    kept, merged = tmp_path / "kept.duckdb", tmp_path / "merged.duckdb"
    for db in (kept, merged):
        run(prom.url, db, start=WINDOW_START, end=first_end)
    for hour in (1, 2):
        run(prom.url, kept, end=first_end + timedelta(hours=hour))
        assert 0 < collect_run._wal_bytes(kept) <= collect_run.WAL_KEPT_BYTES
        monkeypatch.setattr(collect_run, "WAL_KEPT_BYTES", -1)  # always checkpoint: what DuckDB does on close
        run(prom.url, merged, end=first_end + timedelta(hours=hour))
        assert collect_run._wal_bytes(merged) == 0
        monkeypatch.undo()
        for name in STORED_TABLES:
            got, want = table(kept, name), table(merged, name)
            assert want.height > 0 or name in ("restarts", "hpas", "resource_quotas", "usage_daily", "usage_hourly"), name
            assert got.sort(got.columns).equals(want.sort(want.columns)), name
    monkeypatch.setattr(collect_run, "WAL_KEPT_BYTES", collect_run._wal_bytes(kept))  # the next hour goes past it
    run(prom.url, kept, end=first_end + timedelta(hours=3))
    assert collect_run._wal_bytes(kept) == 0
    assert table(kept, "usage_raw").height > table(merged, "usage_raw").height
