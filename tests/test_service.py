"""`capplan serve` as a real process on a free port: API, /metrics, probes, shutdown.

Expected answers come from calling the library directly on the same database (the API must be
the CLI's library call rendered with the CSV keys), and by hand where stated.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest
from prometheus_client.parser import text_string_to_metric_families

from capplan import render, store
from capplan.analysis.nodes import nodes_report

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


def stop_server(server: Server, timeout: float = 30.0) -> tuple[int, str, str]:
    """SIGTERM and wait; returns (exit code, rest of stdout, stderr)."""
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
    out, err = server.proc.communicate(timeout=timeout)
    return server.proc.returncode, out, err


@pytest.fixture()
def server(sample_db: Path, tmp_path: Path) -> Iterator[Server]:
    """`capplan serve` on a private copy of the bundled sample; freshness check off."""
    srv = start_server(sample_db, tmp_path, "--max-staleness", "0")
    yield srv
    if srv.proc.poll() is None:
        srv.proc.kill()
        srv.proc.communicate(timeout=10)


def _library_records(db: Path, call) -> list[dict]:
    from capplan.service import records

    con = store.open_db(db, read_only=True)
    try:
        return records(call(con))
    finally:
        con.close()


def _built(module: str, func: str) -> bool:
    try:
        return hasattr(importlib.import_module(module), func)
    except ModuleNotFoundError:
        return False


# --- the API ---------------------------------------------------------------------------------------


def test_nodes_endpoint_is_the_library_call_with_csv_keys(server: Server) -> None:
    status, body = server.get_json("/api/v1/nodes")
    assert status == 200
    expected = _library_records(server.db, lambda con: nodes_report(con, timedelta(days=14)))
    assert body == json.loads(json.dumps(expected))
    assert len(body) == 8
    for column in CONTRACT_NODE_COLUMNS:
        assert column in body[0]
    # the same keys as `capplan nodes --format csv` columns
    con = store.open_db(server.db, read_only=True)
    try:
        csv_header = render.to_csv(nodes_report(con)).splitlines()[0].split(",")
    finally:
        con.close()
    assert list(body[0]) == csv_header


def test_nodes_endpoint_filters_and_window(server: Server) -> None:
    status, body = server.get_json("/api/v1/nodes?node=node-8&node=node-1&window=2d")
    assert status == 200
    assert [row["node"] for row in body] == ["node-1", "node-8"]
    expected = _library_records(server.db, lambda con: nodes_report(con, timedelta(days=2), ["node-1", "node-8"]))
    assert body == json.loads(json.dumps(expected))
    # node-8 has allocatable == capacity (sample README): its reservation is flagged
    assert body[1]["reserved_ok"] is False


def test_bad_parameters_are_400_with_a_json_error(server: Server) -> None:
    status, body = server.get_json("/api/v1/nodes?window=fortnight")
    assert status == 400 and "fortnight" in body["error"]
    status, body = server.get_json("/api/v1/nodes?colour=blue")
    assert status == 400 and "colour" in body["error"]
    status, body = server.get_json("/api/v1/fit?cpu=500m")
    assert status == 400 and "memory" in body["error"]
    status, body = server.get_json("/api/v1/nowhere")
    assert status == 404 and body["status"] == 404


def _expected_namespaces(con):
    from capplan.analysis.overcommit import namespaces_report

    return namespaces_report(con, timedelta(days=14), ["web", "ml"])


def _expected_fit(con):
    from capplan.analysis.overcommit import fit_report, parse_toleration

    return fit_report(con, 0.5, 2**30, tolerations=[parse_toleration("dedicated")], replicas=3)


def _expected_eviction(view):
    def call(con):
        from capplan.analysis.eviction import EvictionOptions, eviction_report

        return getattr(eviction_report(con, EvictionOptions(nodes=["node-8"])), view)
    return call


LATER_ENDPOINTS = {
    # endpoint id: (module, function, path and query, the same call made directly)
    "namespaces": ("capplan.analysis.overcommit", "namespaces_report", "namespaces?namespace=web&namespace=ml",
                   _expected_namespaces),
    "fit": ("capplan.analysis.overcommit", "fit_report", "fit?cpu=500m&memory=1Gi&tolerate=dedicated&replicas=3",
            _expected_fit),
    "eviction": ("capplan.analysis.eviction", "eviction_report", "eviction?node=node-8", _expected_eviction("pods")),
    "eviction-nodes": ("capplan.analysis.eviction", "eviction_report", "eviction?node=node-8&view=nodes",
                       _expected_eviction("nodes")),
    "recommendations": ("capplan.analysis.recommend", "recommend_report", "recommendations", None),
    "forecast": ("capplan.analysis.forecast", "forecast_report", "forecast", None),
}


@pytest.mark.parametrize("name", sorted(LATER_ENDPOINTS))
def test_analysis_endpoints_are_the_library_call(server: Server, name: str) -> None:
    module, func, path, expected_call = LATER_ENDPOINTS[name]
    status, body = server.get_json(f"/api/v1/{path}")
    if not _built(module, func):
        assert status == 501, body
        assert "not built" in body["error"]
        return
    assert status == 200, body
    assert isinstance(body, list) and body, f"{name} answered no rows on the sample"
    assert expected_call is not None, f"{name} is built: compare it with its library call"
    expected = _library_records(server.db, expected_call)
    assert body == json.loads(json.dumps(expected))


def test_fit_total_row_and_eviction_columns(server: Server) -> None:
    if _built("capplan.analysis.overcommit", "fit_report"):
        status, body = server.get_json("/api/v1/fit?cpu=1&memory=2Gi")
        assert status == 200
        assert body[-1]["node"] == "TOTAL"
        assert body[-1]["fits"] == sum(row["fits"] for row in body[:-1])
        assert {"node", "fits", "limited_by"} <= set(body[0])
        assert server.get_json("/api/v1/fit?cpu=lots&memory=1Gi")[0] == 400
    if _built("capplan.analysis.eviction", "eviction_report"):
        status, body = server.get_json("/api/v1/eviction?node=node-8")
        assert status == 200
        assert set("node rank namespace pod qos_class priority memory_request_bytes memory_usage_bytes "
                   "exceeds_request oom_score_adj".split()) <= set(body[0])
        assert [row["rank"] for row in body] == list(range(1, len(body) + 1))
        assert server.get_json("/api/v1/eviction?view=everything")[0] == 400


def test_empty_database_is_404_no_data(tmp_path: Path) -> None:
    db = tmp_path / "empty.duckdb"
    store.open_db(db).close()
    srv = start_server(db, tmp_path, "--max-staleness", "0")
    try:
        status, body = srv.get_json("/api/v1/nodes")
        assert status == 404 and "no usage samples" in body["error"]
        status, _ = srv.get_json("/readyz")
        assert status == 200  # the DB opens; freshness is not checked
    finally:
        assert stop_server(srv)[0] == 0


def test_report_json_and_html(server: Server) -> None:
    status, body = server.get_json("/api/v1/report")
    assert status == 200
    assert [row["node"] for row in body["nodes"]] == [f"node-{i}" for i in range(1, 9)]
    status, html, headers = server.get("/report.html")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "<svg" in html and "node-8" in html


# --- /metrics --------------------------------------------------------------------------------------


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_parse_and_match_the_nodes_table(server: Server) -> None:
    status, text, headers = server.get("/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    samples = _samples(text)
    rows = _library_records(server.db, lambda con: nodes_report(con, timedelta(days=14)))
    assert len(rows) == 8
    for row in rows:
        labels = (("node", row["node"]),)
        assert samples[("capplan_node_cpu_request_ratio", labels)] == pytest.approx(row["cpu_request_ratio"])
        assert samples[("capplan_node_memory_request_ratio", labels)] == pytest.approx(row["memory_request_ratio"])
        assert samples[("capplan_node_cpu_headroom_cores", labels)] == pytest.approx(row["cpu_headroom_cores"])
        assert samples[("capplan_node_memory_headroom_bytes", labels)] == pytest.approx(row["memory_headroom_bytes"])
        limit = row["memory_limit_ratio"]
        got = samples[("capplan_node_memory_limit_ratio", labels)]
        assert (math.isinf(got) if limit == "inf" else got == pytest.approx(limit))
    # by hand for node-1: headroom = allocatable - requests
    node1 = next(r for r in rows if r["node"] == "node-1")
    assert samples[("capplan_node_cpu_headroom_cores", (("node", "node-1"),))] == pytest.approx(
        node1["cpu_allocatable_cores"] - node1["cpu_requests_cores"])
    assert samples[("capplan_metrics_section_up", (("section", "nodes"),))] == 1.0
    # newest sample: the sample's last timestamp
    con = store.open_db(server.db, read_only=True)
    try:
        newest = store.sample_range(con)[1]
    finally:
        con.close()
    assert samples[("capplan_newest_sample_timestamp_seconds", ())] == newest.replace(tzinfo=timezone.utc).timestamp()


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
    return datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)


def test_metrics_report_the_last_collection(server: Server) -> None:
    finished = _utcnow() - timedelta(minutes=3)
    started = finished - timedelta(seconds=42)
    _record_run(server.db, 1, started - timedelta(hours=1), started - timedelta(minutes=59), "ok", 10)
    _record_run(server.db, 2, started, finished, "ok", 1234)
    samples = _samples(server.get("/metrics")[1])
    assert samples[("capplan_last_collection_timestamp_seconds", ())] == finished.replace(tzinfo=timezone.utc).timestamp()
    assert samples[("capplan_last_collection_duration_seconds", ())] == pytest.approx(42.0)
    assert samples[("capplan_last_collection_samples", ())] == 1234
    assert samples[("capplan_last_collection_success", ())] == 1.0
    # a failed run after it: success drops to 0, the last good time stays
    _record_run(server.db, 3, finished + timedelta(minutes=1), finished + timedelta(minutes=2), "failed", 0)
    samples = _samples(server.get("/metrics")[1])
    assert samples[("capplan_last_collection_success", ())] == 0.0
    assert samples[("capplan_last_collection_timestamp_seconds", ())] == finished.replace(tzinfo=timezone.utc).timestamp()


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
        assert stop_server(srv)[0] == 0


def test_readyz_fails_when_the_database_is_missing(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "absent.duckdb", tmp_path, "--max-staleness", "0")
    try:
        status, body = srv.get_json("/readyz")
        assert status == 503 and "no database" in body["reason"]
        assert srv.get_json("/healthz")[0] == 200
    finally:
        assert stop_server(srv)[0] == 0


# --- shutdown --------------------------------------------------------------------------------------


def test_sigterm_during_a_request_answers_it_then_exits_0(server: Server) -> None:
    expected = _library_records(server.db, lambda con: nodes_report(con, timedelta(days=14)))
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
    assert json.loads(body) == json.loads(json.dumps(expected))
    code, out, err = stop_server(server)
    assert code == 0, err
    assert "stopped cleanly" in out
    assert not server.termination_log.exists()


def test_sigterm_when_idle_exits_0_quickly(server: Server) -> None:
    assert server.get("/healthz")[0] == 200
    started = time.monotonic()
    code, out, err = stop_server(server)
    assert code == 0, err
    assert time.monotonic() - started < 5


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


def test_collect_every_needs_a_prometheus_url(sample_db: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CAPPLAN_PROMETHEUS_URL"}
    proc = subprocess.run(
        [sys.executable, "-m", "capplan", "serve", "--db", str(sample_db), "--port", "0",
         "--collect-every", "15m", "--termination-log", str(tmp_path / "log")],
        capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2
    assert "--prometheus-url" in proc.stderr


# --- the shared database object of in-process collection ---------------------------------------------


def test_shared_database_readers_see_committed_data_while_a_writer_works(sample_db: Path) -> None:
    from capplan.service import Database

    database = Database(sample_db, shared=True)
    try:
        with database.reader() as con:
            before = con.execute("SELECT count(*) FROM collection_runs").fetchone()[0]
        writer = database.writer()
        writer.execute("BEGIN TRANSACTION")
        writer.execute("INSERT INTO collection_runs (run_id, source, started_at, status) "
                       "VALUES (99, 'test', now()::TIMESTAMP, 'running')")
        # a chunk in progress: readers keep answering from committed data
        with database.reader() as con:
            assert con.execute("SELECT count(*) FROM collection_runs").fetchone()[0] == before
            assert len(nodes_report(con)) == 8
        writer.execute("COMMIT")
        writer.close()
        with database.reader() as con:
            assert con.execute("SELECT count(*) FROM collection_runs").fetchone()[0] == before + 1
    finally:
        database.close()
    # closed and checkpointed: another process could open it now
    con = duckdb.connect(str(sample_db), read_only=True)
    assert con.execute("SELECT count(*) FROM collection_runs WHERE run_id = 99").fetchone()[0] == 1
    con.close()
