"""`capplan serve` as a real process on a free port: API, /metrics, probes, shutdown.

Expected answers come from calling the library directly on the same database (the API must be
the CLI's library call rendered with the CSV keys), and by hand where stated.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from capplan import render, store
from capplan.analysis.nodes import nodes_report
from tests import tools

CONTRACT_NODE_COLUMNS = (
    "node cpu_capacity_cores cpu_allocatable_cores cpu_requests_cores cpu_limits_cores cpu_usage_p95_cores "
    "memory_capacity_bytes memory_allocatable_bytes memory_requests_bytes memory_limits_bytes "
    "memory_usage_p95_bytes pods pods_allocatable cpu_request_ratio cpu_limit_ratio memory_request_ratio "
    "memory_limit_ratio cpu_headroom_cores memory_headroom_bytes reserved_ok"
).split()


@dataclass
class Server:
    """A running `capplan serve` subprocess."""

    proc: subprocess.Popen[str]
    port: int
    db: Path
    termination_log: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str, timeout: float = 30.0) -> tuple[int, str, dict[str, str]]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=timeout) as resp:
                return resp.status, resp.read().decode(), dict(resp.headers)
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(), dict(err.headers)

    def get_json(self, path: str) -> tuple[int, object]:
        status, body, headers = self.get(path)
        assert headers["Content-Type"].startswith("application/json"), headers
        return status, json.loads(body)


def start_server(db: Path, tmp_path: Path, *extra: str) -> Server:
    """Start `capplan serve --port 0` and read the port from its first line."""
    termination_log = tmp_path / "termination-log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "capplan", "serve", "--db", str(db), "--port", "0", "--host", "127.0.0.1",
         "--termination-log", str(termination_log), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
    if not match:
        proc.kill()
        out, err = proc.communicate(timeout=10)
        raise AssertionError(f"serve did not start: {line!r} {out!r} {err!r}")
    return Server(proc, int(match.group(1)), db, termination_log)


def stop_server(server: Server, timeout: float = 30.0, send: bool = True) -> tuple[int, str, str]:
    """SIGTERM (unless already sent) and wait; returns (exit code, rest of stdout, stderr)."""
    if send and server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
    out, err = server.proc.communicate(timeout=timeout)
    return server.proc.returncode, out, err


def _finish(srv: Server) -> None:
    if srv.proc.poll() is None:
        srv.proc.kill()
        srv.proc.communicate(timeout=10)


@pytest.fixture(scope="module")
def api(sample_db_readonly: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One `capplan serve` on the imported bundled sample for the read-only tests (it only
    reads); freshness check off."""
    srv = start_server(sample_db_readonly, tmp_path_factory.mktemp("api"), "--max-staleness", "0")
    yield srv
    _finish(srv)


@pytest.fixture()
def server(sample_db: Path, tmp_path: Path) -> Iterator[Server]:
    """`capplan serve` on a private, writable copy of the sample, for tests that write or stop it."""
    srv = start_server(sample_db, tmp_path, "--max-staleness", "0")
    yield srv
    _finish(srv)


def _library_records(db: Path, call) -> list[dict]:
    from capplan.service import records

    con = store.open_db(db, read_only=True)
    try:
        return records(call(con))
    finally:
        con.close()


def assert_same_records(got: list[dict], expected: list[dict]) -> None:
    """Equal rows and keys; floats to 1e-9 (polars sums in parallel, so the last bits of a sum
    may differ between two runs of the same analysis)."""
    expected = json.loads(json.dumps(expected))
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert list(a) == list(b)
        for key in a:
            if isinstance(a[key], float) or isinstance(b[key], float):
                assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-12), (key, a, b)
            else:
                assert a[key] == b[key], (key, a, b)


def _built(module: str, func: str) -> bool:
    try:
        return hasattr(importlib.import_module(module), func)
    except ModuleNotFoundError:
        return False


# --- the API ---------------------------------------------------------------------------------------


def _nodes_call(window=timedelta(days=14), nodes=None, low=20.0, high=50.0):
    """What `capplan nodes` calls."""
    def call(con):
        if _built("capplan.analysis.nodes_overview", "nodes_overview"):
            from capplan.analysis.nodes_overview import nodes_overview

            return nodes_overview(con, window, nodes, low, high)
        return nodes_report(con, window, nodes)
    return call


def test_nodes_endpoint_is_the_library_call_with_csv_keys(api: Server) -> None:
    status, body = api.get_json("/api/v1/nodes")
    assert status == 200
    expected = _library_records(api.db, _nodes_call())
    assert_same_records(body, expected)
    assert len(body) == 8
    for column in CONTRACT_NODE_COLUMNS:
        assert column in body[0]
    # the same keys as `capplan nodes --format csv` columns
    con = store.open_db(api.db, read_only=True)
    try:
        csv_header = render.to_csv(_nodes_call()(con)).splitlines()[0].split(",")
    finally:
        con.close()
    assert list(body[0]) == csv_header


def test_nodes_endpoint_filters_and_window(api: Server) -> None:
    status, body = api.get_json("/api/v1/nodes?node=node-8&node=node-1&window=2d&low=10&high=60")
    assert status == 200
    assert [row["node"] for row in body] == ["node-1", "node-8"]
    expected = _library_records(api.db, _nodes_call(timedelta(days=2), ["node-8", "node-1"], 10.0, 60.0))
    assert_same_records(body, expected)
    # node-8 has allocatable == capacity (sample README): its reservation is flagged
    assert body[1]["reserved_ok"] is False


def test_bad_parameters_are_400_with_a_json_error(api: Server) -> None:
    status, body = api.get_json("/api/v1/nodes?window=fortnight")
    assert status == 400 and "fortnight" in body["error"]
    status, body = api.get_json("/api/v1/nodes?colour=blue")
    assert status == 400 and "colour" in body["error"]
    status, body = api.get_json("/api/v1/fit?replicas=2")
    assert status == 400 and "memory" in body["error"]
    status, body = api.get_json("/api/v1/nodes?low=some")
    assert status == 400 and "low" in body["error"]
    status, body = api.get_json("/api/v1/nowhere")
    assert status == 404 and body["status"] == 404


def _expected_namespaces(con):
    from capplan.analysis.namespaces import namespaces_report

    return namespaces_report(con, timedelta(days=14), ["web", "ml"])


def _expected_fit(con):
    from capplan.analysis.fit import fit_report
    from capplan.analysis.taints import parse_toleration

    return fit_report(con, 0.5, 2**30, tolerations=[parse_toleration("dedicated")], replicas=3)


def _expected_cluster(con):
    from capplan.analysis.n_minus_1 import cluster_report

    return cluster_report(con, timedelta(days=7))


def _expected_fit_cpu_only(con):
    from capplan.analysis.fit import fit_report

    return fit_report(con, 2.0, 0)


def _expected_eviction(view):
    def call(con):
        from capplan.analysis.eviction import EvictionOptions, eviction_report

        return getattr(eviction_report(con, EvictionOptions(nodes=["node-8"])), view)
    return call


def _expected_recommendations(con):
    from capplan.analysis.recommend import recommend
    from capplan.analysis.strategies import StrategyParams

    return recommend(con, "simple", timedelta(days=14), ["web"], StrategyParams(cpu_percentile=90.0, memory_buffer_percent=20.0),
                     0.03, None)


def _expected_forecast(con):
    from capplan.analysis.forecast import forecast_report

    return forecast_report(con, timedelta(days=14), horizon=timedelta(days=30), namespaces=["ml"])


def _expected_rollout(con):
    from capplan.analysis.rollout import rollout_report

    return rollout_report(con, timedelta(days=14), None)


LATER_ENDPOINTS = {
    # endpoint id: (module, function, path and query, the same call made directly)
    "namespaces": ("capplan.analysis.namespaces", "namespaces_report", "namespaces?namespace=web&namespace=ml",
                   _expected_namespaces),
    "fit": ("capplan.analysis.fit", "fit_report", "fit?cpu=500m&memory=1Gi&tolerate=dedicated&replicas=3",
            _expected_fit),
    "cluster": ("capplan.analysis.n_minus_1", "cluster_report", "cluster?window=7d", _expected_cluster),
    "fit-cpu-only": ("capplan.analysis.fit", "fit_report", "fit?cpu=2", _expected_fit_cpu_only),
    "eviction": ("capplan.analysis.eviction", "eviction_report", "eviction?node=node-8", _expected_eviction("pods")),
    "eviction-nodes": ("capplan.analysis.eviction", "eviction_report", "eviction?node=node-8&view=nodes",
                       _expected_eviction("nodes")),
    "eviction-qos": ("capplan.analysis.eviction", "eviction_report", "eviction?node=node-8&view=qos",
                     _expected_eviction("qos")),
    "recommendations": ("capplan.analysis.recommend", "recommend", "recommendations?strategy=simple&namespace=web&cpu_percentile=90&memory_buffer=20&cpu_cost=0.03",
                        _expected_recommendations),
    "forecast": ("capplan.analysis.forecast", "forecast_report", "forecast?horizon=30d&namespace=ml", _expected_forecast),
    "rollout": ("capplan.analysis.rollout", "rollout_report", "rollout", _expected_rollout),
}


@pytest.mark.parametrize("name", sorted(LATER_ENDPOINTS))
def test_analysis_endpoints_are_the_library_call(api: Server, name: str) -> None:
    module, func, path, expected_call = LATER_ENDPOINTS[name]
    status, body = api.get_json(f"/api/v1/{path}")
    if not _built(module, func):
        assert status == 501, body
        assert "not built" in body["error"]
        return
    assert status == 200, body
    assert isinstance(body, list) and body, f"{name} answered no rows on the sample"
    assert expected_call is not None, f"{name} is built: compare it with its library call"
    expected = _library_records(api.db, expected_call)
    assert_same_records(body, expected)


def test_fit_total_row_and_eviction_columns(api: Server) -> None:
    if _built("capplan.analysis.fit", "fit_report"):
        status, body = api.get_json("/api/v1/fit?cpu=1&memory=2Gi")
        assert status == 200
        assert body[-1]["node"] == "TOTAL"
        assert body[-1]["fits"] == sum(row["fits"] for row in body[:-1])
        assert {"node", "fits", "limited_by"} <= set(body[0])
        assert api.get_json("/api/v1/fit?cpu=lots&memory=1Gi")[0] == 400
    if _built("capplan.analysis.eviction", "eviction_report"):
        status, body = api.get_json("/api/v1/eviction?node=node-8")
        assert status == 200
        assert set("node rank namespace pod qos_class priority memory_request_bytes memory_usage_bytes "
                   "exceeds_request oom_score_adj".split()) <= set(body[0])
        assert [row["rank"] for row in body] == list(range(1, len(body) + 1))
        assert api.get_json("/api/v1/eviction?view=everything")[0] == 400
    if _built("capplan.analysis.recommend", "recommend"):
        assert api.get_json("/api/v1/recommendations?strategy=guess")[0] == 400
        assert api.get_json("/api/v1/recommendations?cpu_percentile=150")[0] == 400


@contextlib.contextmanager
def in_process(db: Path, **options) -> Iterator[Server]:
    """The service in this process (no signal handling) on a free port, for quick checks."""
    from capplan.service import ServeOptions, Service

    service = Service(ServeOptions(db=db, host="127.0.0.1", port=0, termination_log=None, **options))
    service.start()
    try:
        yield Server(proc=None, port=service.port, db=db, termination_log=Path("/nonexistent"))  # type: ignore[arg-type]
    finally:
        assert service.shutdown()


def test_empty_database_is_404_no_data(tmp_path: Path) -> None:
    db = tmp_path / "empty.duckdb"
    store.open_db(db).close()
    with in_process(db, max_staleness=timedelta(0)) as srv:
        status, body = srv.get_json("/api/v1/nodes")
        assert status == 404 and "no usage samples" in body["error"]
        status, _ = srv.get_json("/readyz")
        assert status == 200  # the DB opens; freshness is not checked

def test_report_json_and_html(api: Server) -> None:
    status, body = api.get_json("/api/v1/report")
    assert status == 200
    assert [row["node"] for row in body["nodes"]] == [f"node-{i}" for i in range(1, 9)]
    status, html, headers = api.get("/report.html")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "<svg" in html and "node-8" in html


# --- /metrics --------------------------------------------------------------------------------------


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_parse_and_match_the_nodes_table(api: Server) -> None:
    status, text, headers = api.get("/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    samples = _samples(text)
    rows = _library_records(api.db, _nodes_call())
    assert len(rows) == 8
    for row in rows:
        labels = (("node", row["node"]),)
        assert samples[("capplan_node_cpu_request_ratio", labels)] == pytest.approx(row["cpu_request_ratio"])
        assert samples[("capplan_node_memory_request_ratio", labels)] == pytest.approx(row["memory_request_ratio"])
        assert samples[("capplan_node_cpu_headroom_cores", labels)] == pytest.approx(row["cpu_headroom_cores"])
        assert samples[("capplan_node_memory_headroom_bytes", labels)] == pytest.approx(row["memory_headroom_bytes"])
        if row.get("memory_pressure_day_probability") is not None:
            assert samples[("capplan_node_memory_pressure_day_probability", labels)] == pytest.approx(
                row["memory_pressure_day_probability"])
        limit = row["memory_limit_ratio"]
        got = samples[("capplan_node_memory_limit_ratio", labels)]
        assert (math.isinf(got) if limit == "inf" else got == pytest.approx(limit))
    # by hand for node-1: headroom = allocatable - requests
    node1 = next(r for r in rows if r["node"] == "node-1")
    assert samples[("capplan_node_cpu_headroom_cores", (("node", "node-1"),))] == pytest.approx(
        node1["cpu_allocatable_cores"] - node1["cpu_requests_cores"])
    assert samples[("capplan_metrics_section_up", (("section", "nodes"),))] == 1.0
    # newest sample: the sample's last timestamp
    con = store.open_db(api.db, read_only=True)
    try:
        newest = store.sample_range(con)[1]
    finally:
        con.close()
    assert samples[("capplan_newest_sample_timestamp_seconds", ())] == newest.replace(tzinfo=UTC).timestamp()


def test_metrics_carry_eviction_recommendations_and_forecast(api: Server) -> None:
    samples = _samples(api.get("/metrics")[1])
    if _built("capplan.analysis.eviction", "eviction_report"):
        from capplan.analysis.eviction import EvictionOptions, eviction_report

        nodes = _library_records(api.db, lambda con: eviction_report(con, EvictionOptions()).nodes)
        for row in nodes:
            labels = (("node", row["node"]),)
            assert samples[("capplan_node_memory_pressure_share", labels)] == pytest.approx(row["share_under_hard"])
            assert samples[("capplan_node_evictions_to_relieve", labels)] == row["evictions_to_relieve"]
        # node-8 is the sample's memory-pressure node: the kubelet must evict there
        assert samples[("capplan_node_evictions_to_relieve", (("node", "node-8"),))] >= 1
    if _built("capplan.analysis.recommend", "recommend"):
        from capplan.analysis.recommend import DEFAULT_STRATEGY, recommend

        rows = _library_records(api.db, lambda con: recommend(con, DEFAULT_STRATEGY, timedelta(days=14)))
        assert rows
        for row in rows:
            labels = tuple(sorted((k, str(row[k] or "")) for k in ("namespace", "owner_kind", "owner_name", "container")))
            for metric, column in (("capplan_container_cpu_request_cores", "cpu_request_current"),
                                   ("capplan_container_memory_request_recommended_bytes", "memory_request_recommended")):
                if row[column] is None:
                    assert (metric, labels) not in samples
                else:
                    assert samples[(metric, labels)] == pytest.approx(row[column], rel=1e-9)
        assert samples[("capplan_metrics_section_up", (("section", "recommendations"),))] == 1.0
    if _built("capplan.analysis.forecast", "forecast_report"):
        from capplan.analysis.forecast import forecast_report

        rows = _library_records(api.db, lambda con: forecast_report(con, timedelta(days=14)))
        for row in rows:
            labels = tuple(sorted((k, row[k]) for k in ("basis", "resource", "scope")))
            got = samples.get(("capplan_forecast_days_to_exhaustion", labels))
            if row["days_to_exhaustion"] is not None:
                assert got == pytest.approx(row["days_to_exhaustion"], rel=1e-6)
            elif row["outlook"] == "never":
                assert got == math.inf
            else:  # too short or no limit: no number to alert on
                assert got is None
        assert any(r["days_to_exhaustion"] is not None for r in rows)  # the sample's growing ml namespace


def _record_run(db: Path, run_id: int, started: datetime, finished: datetime | None, status: str,
                samples: int = 1000) -> None:
    con = store.open_db(db, wait_seconds=20)
    try:
        con.execute(
            "INSERT INTO collection_runs (run_id, source, started_at, finished_at, status, samples) "
            "VALUES (?, 'http://prometheus:9090', ?, ?, ?, ?)",
            [run_id, started, finished, status, samples],
        )
    finally:
        con.close()


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def test_metrics_report_the_last_collection(server: Server) -> None:
    finished = _utcnow() - timedelta(minutes=3)
    started = finished - timedelta(seconds=42)
    _record_run(server.db, 1, started - timedelta(hours=1), started - timedelta(minutes=59), "ok", 10)
    _record_run(server.db, 2, started, finished, "ok", 1234)
    samples = _samples(server.get("/metrics")[1])
    assert samples[("capplan_last_collection_timestamp_seconds", ())] == finished.replace(tzinfo=UTC).timestamp()
    assert samples[("capplan_last_collection_duration_seconds", ())] == pytest.approx(42.0)
    assert samples[("capplan_last_collection_samples", ())] == 1234
    assert samples[("capplan_last_collection_success", ())] == 1.0
    # a failed run after it: success drops to 0, the last good time stays
    _record_run(server.db, 3, finished + timedelta(minutes=1), finished + timedelta(minutes=2), "failed", 0)
    samples = _samples(server.get("/metrics")[1])
    assert samples[("capplan_last_collection_success", ())] == 0.0
    assert samples[("capplan_last_collection_timestamp_seconds", ())] == finished.replace(tzinfo=UTC).timestamp()


# --- probes ----------------------------------------------------------------------------------------


def test_readyz_flips_on_a_stale_database(sample_db: Path, tmp_path: Path) -> None:
    srv = start_server(sample_db, tmp_path, "--max-staleness", "1h")
    try:
        status, body = srv.get_json("/readyz")
        assert status == 503 and body["reason"] == "no finished collection recorded"
        assert srv.get_json("/healthz") == (200, {"alive": True})
        now = _utcnow()
        _record_run(sample_db, 1, now - timedelta(minutes=2), now - timedelta(minutes=1), "ok")
        status, body = srv.get_json("/readyz")
        assert status == 200 and body["ready"] is True, body
        # the same run, now 61 minutes old: stale
        con = store.open_db(sample_db, wait_seconds=20)
        try:
            con.execute("UPDATE collection_runs SET started_at = started_at - INTERVAL 60 MINUTE, "
                        "finished_at = finished_at - INTERVAL 60 MINUTE")
        finally:
            con.close()
        status, body = srv.get_json("/readyz")
        assert status == 503 and "older than 1h" in body["reason"], body
        # liveness does not depend on the data
        assert srv.get_json("/healthz")[0] == 200
        # a failed run does not make it fresh again
        _record_run(sample_db, 2, now, now, "failed")
        assert srv.get_json("/readyz")[0] == 503
    finally:
        # SIGTERM when idle: a clean exit at once
        started = time.monotonic()
        code, out, err = stop_server(srv)
    assert code == 0, err
    assert "stopped cleanly" in out
    assert time.monotonic() - started < 5


def test_readyz_fails_when_the_database_is_missing(tmp_path: Path) -> None:
    with in_process(tmp_path / "absent.duckdb", max_staleness=timedelta(0)) as srv:
        status, body = srv.get_json("/readyz")
        assert status == 503 and "no database" in body["reason"]
        assert srv.get_json("/healthz")[0] == 200
    assert not (tmp_path / "absent.duckdb").exists()  # the service never creates it


def test_sigterm_during_a_request_answers_it_then_exits_0(server: Server) -> None:
    expected = _library_records(server.db, _nodes_call())
    # A client whose request is half sent when SIGTERM arrives: the connection is in flight.
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    sock.sendall(b"GET /api/v1/nodes HTTP/1.0\r\nHost: x\r\n")
    time.sleep(0.3)
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(1.0)
    assert server.proc.poll() is None, "exited with a request in flight"
    # no new connections once it is draining
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).recv(1)
    sock.sendall(b"\r\n")
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200"), head
    assert_same_records(json.loads(body), expected)
    code, out, err = stop_server(server, send=False)
    assert code == 0, err
    assert "stopped cleanly" in out
    assert not server.termination_log.exists()


def test_error_exit_writes_the_termination_log(sample_db: Path, tmp_path: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    log = tmp_path / "termination-log"
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "capplan", "serve", "--db", str(sample_db), "--host", "127.0.0.1",
             "--port", str(port), "--termination-log", str(log)],
            capture_output=True, text=True, timeout=60)
    finally:
        holder.close()
    assert proc.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert f"cannot listen on 127.0.0.1:{port}" in log.read_text()


def test_collect_every_needs_a_prometheus_url(sample_db: Path, tmp_path: Path, runner, monkeypatch) -> None:
    from capplan.cli import app

    monkeypatch.delenv("CAPPLAN_PROMETHEUS_URL", raising=False)
    log = tmp_path / "log"
    result = runner.invoke(app, ["serve", "--db", str(sample_db), "--port", "0", "--collect-every", "15m",
                                 "--termination-log", str(log)])
    assert result.exit_code == 2
    assert "--prometheus-url" in result.stderr
    assert "--prometheus-url" in log.read_text()
    result = runner.invoke(app, ["serve", "--db", str(sample_db), "--port", "0", "--max-staleness", "soon",
                                 "--termination-log", str(log)])
    assert result.exit_code == 2 and "soon" in result.stderr  # an option value: usage (issue 13)
    # the scheduled collection's options are refused at start, not at every run
    base = ["serve", "--db", str(sample_db), "--port", "0", "--collect-every", "1h", "--prometheus-url",
            "http://127.0.0.1:9", "--termination-log", str(log)]
    for extra, code in ((["--step", "0"], 2), (["--step", "1.5s"], 2), (["--since", "fortnight"], 2)):  # option values: usage (issue 13)
        result = runner.invoke(app, base + extra)
        assert result.exit_code == code, (extra, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1


# --- scheduled collection against a real Prometheus ---------------------------------------------------

COLLECT_START = datetime(2026, 11, 2, 0, 0)
COLLECT_END = datetime(2026, 11, 3, 0, 0)
COLLECT_NAMESPACES = ["web"]


@pytest.fixture(scope="module")
def web_prometheus(sample_cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real Prometheus serving one day of the sample's `web` namespace."""
    from tests.promharness import PrometheusServer, build_cluster_tsdb

    tools.require("prometheus", "promtool")
    tsdb = tmp_path_factory.mktemp("webtsdb") / "tsdb"
    build_cluster_tsdb(sample_cluster, tsdb, COLLECT_START, COLLECT_END, namespaces=COLLECT_NAMESPACES, node_labels=True)
    with PrometheusServer(tsdb) as prom:
        yield prom


def _children_argv(pid: int) -> list[list[str]]:
    """Command lines of the live child processes of `pid` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append((stat.parent / "cmdline").read_bytes().decode().split("\0"))
        except (OSError, IndexError, ValueError):
            continue
    return out


def _collect_args(url: str) -> list[str]:
    return ["--collect-every", "1h", "--prometheus-url", url, "--step", "5m", "--max-staleness", "1h",
            f"--collect-arg=--start={COLLECT_START:%Y-%m-%dT%H:%M:%SZ}",
            f"--collect-arg=--end={COLLECT_END:%Y-%m-%dT%H:%M:%SZ}",
            "--collect-arg=--chunk=1h", "--collect-arg=--namespace=web", "--collect-arg=--concurrency=1"]


def _stored(db: Path) -> tuple[int, int, list[tuple]]:
    con = store.open_db(db, read_only=True, wait_seconds=20)
    try:
        samples = con.execute("SELECT count(*) FROM usage_samples").fetchone()[0]
        distinct = con.execute("SELECT count(*) FROM (SELECT DISTINCT series_id, ts FROM usage_samples)").fetchone()[0]
        runs = con.execute("SELECT status, window_start, window_end, samples FROM collection_runs ORDER BY run_id").fetchall()
    finally:
        con.close()
    return samples, distinct, runs


@pytest.mark.slow
def test_scheduled_collection_feeds_the_api_and_sigterm_keeps_whole_chunks(
        web_prometheus, tmp_path: Path, sample_cluster) -> None:
    db = tmp_path / "collected.duckdb"
    srv = start_server(db, tmp_path, *_collect_args(web_prometheus.url))
    answers: list[int] = []
    try:
        # The API answers while the collection runs: 404 (no data yet) or 200, never an error.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status, _ = srv.get_json("/api/v1/nodes")
            answers.append(status)
            if status == 200:
                break
            time.sleep(0.05)
        assert answers[-1] == 200, answers
        assert set(answers) <= {200, 404}, answers
        # SIGTERM during the collection: the child finishes its chunk, commits, records the run
        code, out, err = stop_server(srv, timeout=40)
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
    assert code == 0, err
    assert "stopped cleanly" in out
    samples, distinct, runs = _stored(db)
    assert runs and runs[-1][0] in ("interrupted", "ok"), (runs, err)
    assert samples == distinct > 0
    if runs[-1][0] == "interrupted":
        assert "collection interrupted" in err
    # Nothing lost: what a fresh, uninterrupted collection of the same window stores equals what
    # the interrupted run stored plus the rest (no gaps, no duplicates).
    full_db = tmp_path / "full.duckdb"
    for target in (db, full_db):
        proc = subprocess.run(
            [sys.executable, "-m", "capplan", "collect", "--db", str(target), "--prometheus-url", web_prometheus.url,
             "--step", "5m", "--namespace", "web", f"--start={COLLECT_START:%Y-%m-%dT%H:%M:%SZ}",
             f"--end={COLLECT_END:%Y-%m-%dT%H:%M:%SZ}", "--format", "json"],
            capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
    resumed, resumed_distinct, _ = _stored(db)
    full, _, _ = _stored(full_db)
    assert resumed == resumed_distinct == full
    if runs[-1][0] == "interrupted":
        assert samples < full


@pytest.mark.slow
def test_readyz_follows_the_scheduled_collection(web_prometheus, tmp_path: Path) -> None:
    db = tmp_path / "ready.duckdb"
    srv = start_server(db, tmp_path, *_collect_args(web_prometheus.url))
    child_argvs: list[list[str]] = []
    try:
        deadline = time.monotonic() + 90
        seen = []
        while time.monotonic() < deadline:
            child_argvs += _children_argv(srv.proc.pid)
            status, body = srv.get_json("/readyz")
            seen.append(status)
            if status == 200:
                break
            time.sleep(0.2)
        assert seen[-1] == 200, (seen, body)
        # the scheduled `capplan collect` ran as a child; the URL (it may hold a password) is not
        # on its command line, where `ps` would show it
        collect_argvs = [a for a in child_argvs if "collect" in a]
        assert collect_argvs, child_argvs
        assert all(web_prometheus.url not in " ".join(a) for a in collect_argvs)
        # the run recorded by the child process is what readiness and /metrics report
        _, _, runs = _stored(db)
        assert runs[-1][0] == "ok"
        # the service counts the run once the child has exited
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            samples = _samples(srv.get("/metrics")[1])
            if samples[("capplan_service_collections", (("status", "ok"),))] == 1.0:
                break
            time.sleep(0.2)
        assert samples[("capplan_service_collections", (("status", "ok"),))] == 1.0
        assert samples[("capplan_last_collection_success", ())] == 1.0
        assert samples[("capplan_last_collection_samples", ())] == runs[-1][3]
    finally:
        code, _, err = stop_server(srv, timeout=40)
    assert code == 0, err
