"""The same numbers from every Prometheus-compatible backend: a real VictoriaMetrics (data
imported through its /api/v1/import API), the real Prometheus, and a Prometheus behind a path
prefix give the same usage and spec tables, row for row; their errors come through as one line."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from capplan import store
from capplan.cli import app
from capplan.collect import CollectOptions, collect
from tests.collect.conftest import WINDOW_END, WINDOW_START
from tests.collect.test_collect import stored_usage, table
from tests.promharness import (
    PrometheusServer,
    Series,
    VictoriaMetricsServer,
    build_tsdb,
    cluster_series,
    missing_victoria_metrics,
)

REASON = missing_victoria_metrics()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")
END = WINDOW_END
STEP = 300


@pytest.fixture(scope="module")
def vm(sample_cluster) -> Iterator[VictoriaMetricsServer]:
    """A real VictoriaMetrics holding the same 36 hours of series the session Prometheus holds."""
    with VictoriaMetricsServer() as server:
        server.import_series(cluster_series(sample_cluster, WINDOW_START, END, node_labels=True))
        yield server


def _collect(url: str, db: Path, **kwargs):
    kwargs.setdefault("step_seconds", STEP)
    return collect(CollectOptions(url=url, db=db, start=WINDOW_START, end=END, **kwargs))


@pytest.fixture(scope="module")
def from_prometheus(prom, tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("p") / "prom.duckdb"
    _collect(prom.url, db)
    return db


@pytest.fixture(scope="module")
def from_vm(vm, tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("v") / "vm.duckdb"
    summary = _collect(vm.url, db)
    assert summary.status == "ok"
    return db


def _usage(db: Path) -> pl.DataFrame:
    return stored_usage(db).sort("namespace", "pod", "container", "node", "ts")


def test_victoriametrics_and_prometheus_give_the_same_usage_row_for_row(from_prometheus, from_vm,
                                                                        sample_usage_window) -> None:
    prom_rows, vm_rows = _usage(from_prometheus), _usage(from_vm)
    assert prom_rows.height == sample_usage_window.filter(pl.col("ts") <= END).height > 1000
    _same_rows(vm_rows, prom_rows)


def _same_rows(a: pl.DataFrame, b: pl.DataFrame) -> None:
    """The same rows (keys and times) and memory; CPU to float32 precision (VictoriaMetrics keeps
    about 15 significant digits of a counter, so a rate may differ in its last bit)."""
    keys = ["namespace", "pod", "container", "node", "ts"]
    assert a.select(keys).equals(b.select(keys))
    assert a["memory_bytes"].equals(b["memory_bytes"])
    assert a["cpu_cores"].is_null().equals(b["cpu_cores"].is_null())
    diff = (a["cpu_cores"].cast(pl.Float64) - b["cpu_cores"].cast(pl.Float64)).abs()
    assert diff.max() <= 1e-6 * max(1.0, float(b["cpu_cores"].abs().max()))


@pytest.mark.parametrize("name", ["containers", "pods", "nodes", "owners", "workloads", "restarts"])
def test_victoriametrics_and_prometheus_give_the_same_spec(from_prometheus, from_vm, name: str) -> None:
    a, b = table(from_prometheus, name), table(from_vm, name)
    assert a.height > 0
    assert b.sort(b.columns).equals(a.sort(a.columns))


def test_hourly_runs_give_the_same_tables_on_both_backends(prom, vm, tmp_path: Path, monkeypatch) -> None:
    """After a first run, hourly runs (declared state read raw, the metrics sharing their matchers
    asked in one read each) store the same usage and spec on VictoriaMetrics as on Prometheus, and
    VictoriaMetrics answers the grouped reads too (it keeps the metric name on raw samples)."""
    from capplan.collect import run as collect_run

    first_end = END - timedelta(hours=3)
    asked: dict[str, list[str]] = {}
    real_query = collect_run.PromClient.query_body

    def counting(self, promql, at):
        asked.setdefault(self.display_url, []).append(promql)
        return real_query(self, promql, at)

    monkeypatch.setattr(collect_run.PromClient, "query_body", counting)
    dbs = {}
    for name, url in (("prom", prom.url), ("vm", vm.url)):
        dbs[name] = tmp_path / f"{name}.duckdb"
        collect(CollectOptions(url=url, db=dbs[name], step_seconds=STEP, start=WINDOW_START, end=first_end))
        asked.clear()
        for hour in (1, 2, 3):
            summary = collect(CollectOptions(url=url, db=dbs[name], step_seconds=STEP, end=first_end + timedelta(hours=hour)))
            assert summary.status == "ok" and summary.chunks == 1
        grouped = [q for q in asked[summary.source] if q.startswith('{__name__=~"')]
        assert len(grouped) >= 3 * 4, name  # four groups an hour at least, on either backend
    _same_rows(_usage(dbs["vm"]), _usage(dbs["prom"]))
    for name in ("containers", "pods", "nodes", "owners", "workloads", "restarts"):
        a, b = table(dbs["prom"], name), table(dbs["vm"], name)
        assert a.height > 0 or name == "restarts", name
        assert b.sort(b.columns).equals(a.sort(a.columns)), name


def test_a_path_prefixed_prometheus_gives_the_same_tables(prom_tsdb, from_prometheus, tmp_path: Path) -> None:
    db = tmp_path / "prefixed.duckdb"
    with PrometheusServer(prom_tsdb, route_prefix="/prom") as prefixed:
        assert prefixed.url.endswith("/prom")
        summary = _collect(prefixed.url, db)
    assert summary.source.endswith("/prom")
    assert _usage(db).equals(_usage(from_prometheus))
    a, b = table(from_prometheus, "containers"), table(db, "containers")
    assert b.sort(b.columns).equals(a.sort(a.columns))


def test_spiky_cpu_is_the_true_per_step_average_on_both_backends(tmp_path: Path) -> None:
    # cAdvisor scraped every 20 s: 0.3 cores for a minute, then 0.9 cores for a minute, then 0.3.
    # The average over each minute is what both backends must give (VictoriaMetrics' rate()
    # would also use the sample before the window and average the change over two minutes).
    t0 = 1_790_000_040  # a multiple of 60
    ts = [t0 + 20 * i for i in range(13)]
    per_interval = [0.3] * 3 + [0.9] * 3 + [0.3] * 6
    counter = [1000.0]
    for cores in per_interval:
        counter.append(counter[-1] + 20 * cores)
    labels = {"namespace": "ns", "pod": "p", "container": "c", "node": "n1", "job": "kubelet",
              "metrics_path": "/metrics/cadvisor"}
    series = [Series("container_cpu_usage_seconds_total", {**labels, "cpu": "total"}, ts, counter, kind="counter"),
              Series("container_memory_working_set_bytes", labels, ts, [(100 + i) * 2**20 for i in range(13)])]
    want_cpu = [0.3, 0.9, 0.3, 0.3]                    # minutes ending t0+60, +120, +180, +240
    # the peak (last, rising) sample of each minute, in MiB: whole KiB, as the store keeps them
    want_memory = [m * 2**20 for m in (103, 106, 109, 112)]
    build_tsdb(series, tmp_path / "tsdb")
    got = []
    with PrometheusServer(tmp_path / "tsdb") as p, VictoriaMetricsServer() as v:
        v.import_series(series)
        for name, url in (("prometheus", p.url), ("victoriametrics", v.url)):
            db = tmp_path / f"{name}.duckdb"
            collect(CollectOptions(url=url, db=db, step_seconds=60, start=datetime.utcfromtimestamp(t0 + 60),
                                   end=datetime.utcfromtimestamp(t0 + 240)))
            rows = stored_usage(db).sort("ts")
            assert rows["cpu_cores"].to_list() == pytest.approx(want_cpu, rel=1e-6), name
            assert rows["memory_bytes"].to_list() == want_memory, name
            got.append(rows)
    _same_rows(got[0], got[1])


def test_a_victoriametrics_query_error_is_its_text_not_too_large(vm, runner, db: Path) -> None:
    # an invalid regex in --usage-selector: VictoriaMetrics answers 422 with the parse error
    result = runner.invoke(app, ["collect", "--prometheus-url", vm.url, "--db", str(db), "--step", "5m",
                                 "--start", WINDOW_START.isoformat(), "--end", (WINDOW_START + timedelta(hours=1)).isoformat(),
                                 "--usage-selector", 'job=~"("'])
    assert result.exit_code == 3, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and vm.url in lines[0] and "HTTP 422" in lines[0]
    assert "too large" not in lines[0] and "job=~" in lines[0].replace('\\"', '"')


def test_a_wrong_path_on_victoriametrics_fails_before_creating_anything(vm, runner, db: Path) -> None:
    result = runner.invoke(app, ["collect", "--prometheus-url", vm.url + "/vmui", "--db", str(db)])
    assert result.exit_code == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "/vmui" in lines[0] and "404" in lines[0]
    assert not db.exists() and not Path(str(db) + ".lock").exists()


class _Site(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_an_html_server_is_named_in_one_line_and_nothing_is_created(tmp_path: Path, runner, db: Path) -> None:
    site = tmp_path / "site"
    (site / "api" / "v1").mkdir(parents=True)
    (site / "api" / "v1" / "query").write_text("<!DOCTYPE html><html><head><title>Grafana</title></head>"
                                                "<body>" + "x" * 5000 + "</body></html>")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _Site(*a, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = runner.invoke(app, ["collect", "--prometheus-url", f"http://127.0.0.1:{server.server_address[1]}",
                                     "--db", str(db)])
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 4
    line = result.stderr.strip()
    assert "\n" not in line and 'HTML page (title "Grafana")' in line and "<" not in line and len(line) < 400
    assert not db.exists()


def test_the_scrape_interval_is_measured_where_the_data_is_and_kept(tmp_path: Path, db: Path) -> None:
    # 60 s scrapes that end 30 minutes before --end: the old probe looked at the 10 minutes before
    # --end and guessed 67 s from 9 samples
    t0 = 1_790_000_040
    ts = [t0 + 60 * i for i in range(121)]
    labels = {"namespace": "ns", "pod": "p", "container": "c", "node": "n1"}
    series = [Series("container_cpu_usage_seconds_total", {**labels, "cpu": "total"}, ts,
                     [10.0 + 30 * i for i in range(121)], kind="counter"),
              Series("container_memory_working_set_bytes", labels, ts, [1e6] * 121)]
    build_tsdb(series, tmp_path / "tsdb")
    end = datetime.utcfromtimestamp(ts[-1] + 1800)
    with PrometheusServer(tmp_path / "tsdb") as p:
        first = collect(CollectOptions(url=p.url, db=db, step_seconds=60, start=datetime.utcfromtimestamp(t0 + 60),
                                       end=datetime.utcfromtimestamp(t0 + 3600)))
        later = collect(CollectOptions(url=p.url, db=db, step_seconds=60, end=end))
    assert not any("scrape interval" in w for w in first.warnings + later.warnings)
    rows = table(db, "collector_sources").filter(pl.col("exporter") == "cadvisor")
    assert rows["scrape_seconds"].to_list() == [60.0] and rows.height == 1
    usage = stored_usage(db)
    assert usage["cpu_cores"].to_list() == pytest.approx([0.5] * usage.height)  # 30 s of CPU per 60 s
    assert usage.height == 120
    con = store.open_db(db, read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM collection_runs WHERE status = 'ok'").fetchone()[0] == 2
    finally:
        con.close()
