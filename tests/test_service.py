"""`capplan serve` as a real uvicorn process on a free port, over real HTTP: API, /metrics,
probes, errors, auth, shutdown.

Expected answers come from calling the library directly on the same database (the API must be
the CLI's library call rendered with the CSV keys), and by hand where stated.
"""

from __future__ import annotations

import http.client
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path

import duckdb
import pytest
from prometheus_client.parser import text_string_to_metric_families

from capplan import render, store
from capplan.analysis.eviction import EvictionOptions, eviction_report
from capplan.analysis.fit import fit_report
from capplan.analysis.forecast import forecast_report
from capplan.analysis.n_minus_1 import cluster_report
from capplan.analysis.namespaces import namespaces_report
from capplan.analysis.nodes_overview import nodes_overview
from capplan.analysis.recommend import DEFAULT_STRATEGY, recommend
from capplan.analysis.rollout import rollout_report
from capplan.analysis.strategies import StrategyParams
from capplan.analysis.taints import parse_toleration
from capplan.analysis.whatif import WhatIfOptions, whatif
from capplan.serve.endpoints import ENDPOINTS, NOT_SERVED, records
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

    def request(self, path: str, method: str = "GET", headers: dict[str, str] | None = None,
                timeout: float = 60.0) -> tuple[int, str, Message]:
        req = urllib.request.Request(self.url(path), method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read().decode(), resp.headers  # case-insensitive
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(), err.headers

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, str, Message]:
        return self.request(path, headers=headers)

    def get_json(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, object]:
        status, body, got = self.get(path, headers)
        assert got["Content-Type"].startswith("application/json"), got
        return status, json.loads(body)


def start_server(db: Path, tmp_path: Path, *extra: str, host: str | None = "127.0.0.1") -> Server:
    """Start `capplan serve --port 0` and read the port from its first line."""
    termination_log = tmp_path / "termination-log"
    host_args = ["--host", host] if host else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "capplan", "serve", "--db", str(db), "--port", "0", *host_args,
         "--termination-log", str(termination_log), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    match = re.search(r"listening on http://[0-9.]+:(\d+)", line)
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


def _library_records(db: Path, call: Callable[[duckdb.DuckDBPyConnection], object]) -> list[dict]:
    con = store.open_db(db, read_only=True)
    try:
        return records(call(con))  # type: ignore[arg-type]
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


# --- the API: every endpoint is its CLI command's library call ---------------------------------------

FOURTEEN_DAYS = timedelta(days=14)

# endpoint name -> [(path and query, the same call made directly on the database)]
LIBRARY_CALLS: dict[str, list[tuple[str, Callable[[duckdb.DuckDBPyConnection], object]]]] = {
    "nodes": [
        ("nodes", lambda con: nodes_overview(con, FOURTEEN_DAYS, None, 20.0, 50.0)),
        ("nodes?node=node-8&node=node-1&window=2d&low=10&high=60",
         lambda con: nodes_overview(con, timedelta(days=2), ["node-8", "node-1"], 10.0, 60.0)),
    ],
    "cluster": [("cluster?window=7d", lambda con: cluster_report(con, timedelta(days=7)))],
    "namespaces": [("namespaces?namespace=web&namespace=ml",
                    lambda con: namespaces_report(con, FOURTEEN_DAYS, ["web", "ml"]))],
    "fit": [
        ("fit?cpu=500m&memory=1Gi&tolerate=dedicated&replicas=3",
         lambda con: fit_report(con, 0.5, 2**30, tolerations=[parse_toleration("dedicated")], replicas=3)),
        ("fit?cpu=2", lambda con: fit_report(con, 2.0, 0)),
    ],
    "eviction": [
        (f"eviction?node=node-8&view={view}",
         (lambda v: lambda con: getattr(eviction_report(con, EvictionOptions(nodes=["node-8"])), v))(view))
        for view in ("pods", "nodes", "qos", "containers")
    ],
    "recommendations": [
        ("recommendations?strategy=simple&namespace=web&cpu_percentile=90&memory_buffer=20&cpu_cost=0.03",
         lambda con: recommend(con, "simple", FOURTEEN_DAYS, ["web"],
                               StrategyParams(cpu_percentile=90.0, memory_buffer_percent=20.0), 0.03, None)),
        ("recommendations?namespace=ml&risk=high",
         lambda con: recommend(con, "auto", FOURTEEN_DAYS, ["ml"], StrategyParams(risk="high"), None, None)),
    ],
    "forecast": [("forecast?horizon=30d&namespace=ml",
                  lambda con: forecast_report(con, FOURTEEN_DAYS, horizon=timedelta(days=30), namespaces=["ml"]))],
    "rollout": [("rollout", lambda con: rollout_report(con, FOURTEEN_DAYS, None))],
    "whatif": [
        ("whatif", lambda con: whatif(con, WhatIfOptions()).pools),
        ("whatif?apply=current&view=nodes", lambda con: whatif(con, WhatIfOptions(apply="current")).nodes),
        ("whatif?view=moves&apply=simple", lambda con: whatif(con, WhatIfOptions(apply="simple")).moves),
        ("whatif?shapes=m5.2xlarge", lambda con: whatif(con, WhatIfOptions(shapes=["m5.2xlarge"])).sizing),
    ],
}


def test_every_endpoint_in_the_list_has_a_library_comparison() -> None:
    assert set(LIBRARY_CALLS) == {e.name for e in ENDPOINTS}


@pytest.mark.parametrize("name", [e.name for e in ENDPOINTS])
def test_every_endpoint_answers_its_library_call(api: Server, name: str) -> None:
    for path, call in LIBRARY_CALLS[name]:
        status, body = api.get_json(f"/api/v1/{path}")
        assert status == 200, (path, body)
        assert isinstance(body, list) and body, f"{path} answered no rows on the sample"
        assert_same_records(body, _library_records(api.db, call))


def test_every_cli_command_has_an_endpoint_or_a_reason() -> None:
    from capplan.cli import app

    commands = {c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands}
    served = {e.command for e in ENDPOINTS}
    assert served <= commands, served - commands  # each endpoint mirrors a real command
    assert set(NOT_SERVED) <= commands, set(NOT_SERVED) - commands
    assert not served & set(NOT_SERVED)
    missing = commands - served - set(NOT_SERVED)
    assert not missing, f"commands with no endpoint and no reason in NOT_SERVED: {sorted(missing)}"


def test_nodes_keys_are_the_csv_columns(api: Server) -> None:
    status, body = api.get_json("/api/v1/nodes")
    assert status == 200 and len(body) == 8
    for column in CONTRACT_NODE_COLUMNS:
        assert column in body[0]
    con = store.open_db(api.db, read_only=True)
    try:
        csv_header = render.to_csv(nodes_overview(con, FOURTEEN_DAYS, None, 20.0, 50.0)).splitlines()[0].split(",")
    finally:
        con.close()
    assert list(body[0]) == csv_header
    status, body = api.get_json("/api/v1/nodes?node=node-8&node=node-1")
    assert [row["node"] for row in body] == ["node-1", "node-8"]
    # node-8 has allocatable == capacity (sample README): its reservation is flagged
    assert body[1]["reserved_ok"] is False


def test_fit_total_row_and_eviction_ranks(api: Server) -> None:
    status, body = api.get_json("/api/v1/fit?cpu=1&memory=2Gi")
    assert status == 200
    assert body[-1]["node"] == "TOTAL"
    assert body[-1]["fits"] == sum(row["fits"] for row in body[:-1])
    assert {"node", "fits", "limited_by"} <= set(body[0])
    status, body = api.get_json("/api/v1/eviction?node=node-8")
    assert status == 200
    assert set("node rank namespace pod qos_class priority memory_request_bytes memory_usage_bytes "
               "exceeds_request oom_score_adj".split()) <= set(body[0])
    assert [row["rank"] for row in body] == list(range(1, len(body) + 1))


@pytest.mark.parametrize("path, words", [
    ("/api/v1/nodes?window=fortnight", ["fortnight"]),
    ("/api/v1/nodes?colour=blue", ["colour"]),
    ("/api/v1/nodes?low=some", ["low"]),
    ("/api/v1/fit?replicas=2", ["memory"]),
    ("/api/v1/fit?cpu=lots&memory=1Gi", ["lots"]),
    ("/api/v1/fit?cpu=1&replicas=0", ["replicas"]),
    ("/api/v1/eviction?view=everything", ["view", "everything"]),
    ("/api/v1/eviction?usage=median", ["usage"]),
    ("/api/v1/recommendations?strategy=guess", ["guess"]),
    ("/api/v1/recommendations?cpu_percentile=150", ["cpu_percentile"]),
    ("/api/v1/recommendations?memory_cost=-1", ["memory_cost"]),
    ("/api/v1/recommendations?allow_hpa=maybe", ["allow_hpa"]),
    ("/api/v1/recommendations?risk=reckless", ["reckless"]),
    ("/api/v1/forecast?min_days=-1", ["min_days"]),
    ("/api/v1/report?top=0", ["top"]),
    ("/api/v1/whatif?apply=guess", ["guess"]),
    ("/api/v1/whatif?view=all", ["view"]),
])
def test_bad_parameters_are_400_with_a_json_error(api: Server, path: str, words: list[str]) -> None:
    status, body = api.get_json(path)
    assert status == 400, body
    assert body["status"] == 400
    for word in words:
        assert word in body["error"], body


def test_the_cli_refuses_what_the_api_refuses(sample_db_readonly: Path, runner) -> None:
    """One validation for both: the same rule, the CLI spelling of the option."""
    from capplan.cli import app

    db = ["--db", str(sample_db_readonly)]
    for args, word in ((["recommend", "--cpu-percentile", "150"], "--cpu-percentile"),
                       (["recommend", "--memory-cost", "-1"], "--memory-cost"),
                       (["eviction", "--view", "everything"], "--view"),
                       (["fit", "--replicas", "2"], "--memory"),
                       (["fit", "--cpu", "1", "--replicas", "0"], "--replicas")):
        result = runner.invoke(app, args + db)
        assert result.exit_code == 2, (args, result.stderr)
        assert word in result.stderr, (args, result.stderr)


def test_unknown_paths_are_404_json(api: Server) -> None:
    for path in ("/api/v1/nowhere", "/wp-login.php", "/api/v2/nodes"):
        status, body = api.get_json(path)
        assert status == 404 and body["status"] == 404 and "no such endpoint" in body["error"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_wrong_methods_are_405_json_with_allow(api: Server, method: str) -> None:
    for path in ("/api/v1/nodes", "/metrics", "/healthz", "/api/v1/report"):
        status, body, headers = api.request(path, method=method)
        assert status == 405, (path, body)
        assert headers["Content-Type"].startswith("application/json")
        assert json.loads(body)["status"] == 405
        assert set(headers["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}


def test_head_answers_without_a_body(api: Server) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=30)
    try:
        conn.request("HEAD", "/healthz")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == b""
    finally:
        conn.close()


def test_openapi_describes_every_endpoint_and_its_parameters(api: Server) -> None:
    status, spec = api.get_json("/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.")
    for endpoint in ENDPOINTS:
        operation = spec["paths"][endpoint.path]["get"]
        assert [p["name"] for p in operation["parameters"]] == [p.name for p in endpoint.query_params]
    view = next(p for p in spec["paths"]["/api/v1/eviction"]["get"]["parameters"] if p["name"] == "view")
    assert view["schema"]["enum"] == ["pods", "nodes", "containers", "qos", "advice"]
    status, page, headers = api.get("/docs")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    for endpoint in ENDPOINTS:
        assert f"GET {endpoint.path}" in page
    status, index = api.get_json("/api/v1")
    assert status == 200 and set(index) == {e.name for e in ENDPOINTS}


def test_report_json_and_html(api: Server) -> None:
    status, body = api.get_json("/api/v1/report")
    assert status == 200
    assert [row["node"] for row in body["nodes"]] == [f"node-{i}" for i in range(1, 9)]
    status, html, headers = api.get("/report.html")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "<svg" in html and "node-8" in html


def test_empty_database_is_404_no_data(tmp_path: Path) -> None:
    db = tmp_path / "empty.duckdb"
    store.open_db(db).close()
    srv = start_server(db, tmp_path, "--max-staleness", "0")
    try:
        status, body = srv.get_json("/api/v1/nodes")
        assert status == 404 and "no usage samples" in body["error"]
        assert srv.get_json("/readyz")[0] == 200  # the DB opens; freshness is not checked
    finally:
        assert stop_server(srv)[0] == 0


def test_a_newer_schema_is_503_with_the_reason(sample_db: Path, tmp_path: Path) -> None:
    con = store.open_db(sample_db)
    try:
        con.execute("UPDATE schema_version SET version = version + 100")
    finally:
        con.close()
    srv = start_server(sample_db, tmp_path, "--max-staleness", "0")
    try:
        for path in ("/api/v1/nodes", "/api/v1/report", "/readyz"):
            status, body = srv.get_json(path)
            assert status == 503, (path, body)
            reason = body.get("error") or body.get("reason")
            assert "newer than this capplan supports" in reason, body
        assert srv.get("/api/v1/nodes")[2]["Retry-After"]
        samples = _samples(srv.get("/metrics")[1])
        assert samples[("capplan_metrics_section_up", (("section", "collection"),))] == 0.0
        assert srv.get_json("/healthz")[0] == 200
    finally:
        assert stop_server(srv)[0] == 0


def test_default_host_is_loopback(sample_db_readonly: Path, tmp_path: Path) -> None:
    srv = start_server(sample_db_readonly, tmp_path, "--max-staleness", "0", host=None)
    try:
        # the kernel's own table of listening sockets: bound to 127.0.0.1, not 0.0.0.0
        listening = set()
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port = local.split(":")
            if state == "0A" and int(port, 16) == srv.port:  # 0A = LISTEN
                listening.add(address)
        assert listening == {"0100007F"}, listening  # 127.0.0.1, little-endian hex
        assert srv.get_json("/healthz")[0] == 200
    finally:
        stop_server(srv)


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
    rows = _library_records(api.db, lambda con: nodes_overview(con, FOURTEEN_DAYS, None, 20.0, 50.0))
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
    for section in ("collection", "nodes", "eviction", "recommendations", "forecast"):
        assert samples[("capplan_metrics_section_up", (("section", section),))] == 1.0
    con = store.open_db(api.db, read_only=True)
    try:
        newest = store.sample_range(con)[1]
    finally:
        con.close()
    assert samples[("capplan_newest_sample_timestamp_seconds", ())] == newest.replace(tzinfo=UTC).timestamp()


def test_metrics_carry_eviction_recommendations_and_forecast(api: Server) -> None:
    samples = _samples(api.get("/metrics")[1])
    nodes = _library_records(api.db, lambda con: eviction_report(con, EvictionOptions()).nodes)
    for row in nodes:
        labels = (("node", row["node"]),)
        assert samples[("capplan_node_memory_pressure_share", labels)] == pytest.approx(row["share_under_hard"])
        assert samples[("capplan_node_evictions_to_relieve", labels)] == row["evictions_to_relieve"]
    # node-8 is the sample's memory-pressure node: the kubelet must evict there
    assert samples[("capplan_node_evictions_to_relieve", (("node", "node-8"),))] >= 1
    rows = _library_records(api.db, lambda con: recommend(con, DEFAULT_STRATEGY, FOURTEEN_DAYS))
    assert rows
    for row in rows:
        labels = tuple(sorted((k, str(row[k] or "")) for k in ("namespace", "owner_kind", "owner_name", "container")))
        for metric, column in (("capplan_container_cpu_request_cores", "cpu_request_current"),
                               ("capplan_container_memory_request_recommended_bytes", "memory_request_recommended")):
            if row[column] is None:
                assert (metric, labels) not in samples
            else:
                assert samples[(metric, labels)] == pytest.approx(row[column], rel=1e-9)
    rows = _library_records(api.db, lambda con: forecast_report(con, FOURTEEN_DAYS))
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


def test_junk_paths_do_not_grow_metrics(server: Server) -> None:
    """3,000 scanner requests (unknown paths and methods) add no series: one `other` label."""
    server.get("/api/v1/nodes")
    server.get("/metrics")  # so that /metrics' own 200 series exists before the count
    before = server.get("/metrics")[1]
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        for i in range(3000):
            path = f"/api/v1/junk{i}" if i % 3 else f"/scan/{i}/.env?x={i}"
            conn.request("POST" if i % 7 == 0 else "GET", path)
            resp = conn.getresponse()
            resp.read()
            assert resp.status in (404, 405)
    finally:
        conn.close()
    after = server.get("/metrics")[1]
    series_before = {k for k in _samples(before) if not k[0].startswith("process_")}
    series_after = {k for k in _samples(after) if not k[0].startswith("process_")}
    routes = {dict(labels)["route"] for name, labels in series_after if name == "capplan_http_requests_total"}
    assert routes <= {"/api/v1/nodes", "/metrics", "other"}, routes
    new = series_after - series_before
    # at most the `other` route's status codes appear (404, and 404s for POST: no route, so no 405)
    assert {(name, dict(labels)["route"]) for name, labels in new} <= {("capplan_http_requests_total", "other")}
    assert len(after) < len(before) + 500, (len(before), len(after))
    other = sum(v for (name, labels), v in _samples(after).items()
                if name == "capplan_http_requests_total" and dict(labels)["route"] == "other")
    assert other == 3000


def test_metrics_are_computed_once_per_data_version(server: Server) -> None:
    def renders() -> float:
        return _samples(server.get("/metrics")[1])[("capplan_metrics_renders_total", ())]

    first = renders()
    assert first == 1.0
    for _ in range(5):
        assert renders() == first  # the store did not change: the cached text is served
    now = _utcnow()
    _record_run(server.db, 1, now - timedelta(minutes=2), now - timedelta(minutes=1), "ok", 77)
    samples = _samples(server.get("/metrics")[1])
    assert samples[("capplan_metrics_renders_total", ())] == first + 1  # a commit: computed again
    assert samples[("capplan_last_collection_samples", ())] == 77
    assert renders() == first + 1


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


# --- auth --------------------------------------------------------------------------------------------


def test_bearer_token_guards_the_api_and_is_never_echoed(sample_db_readonly: Path, tmp_path: Path) -> None:
    token = "s3cret-Token-0123456789abcdef"
    wrong = "wrong-Token-fedcba9876543210"
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    srv = start_server(sample_db_readonly, tmp_path, "--max-staleness", "0", "--auth-token-file", str(token_file),
                       "--access-log", "--log-level", "debug")
    try:
        status, body, headers = srv.get("/api/v1/nodes")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
        assert json.loads(body) == {"error": "missing bearer token", "status": 401}
        for header in (f"Bearer {wrong}", f"Basic {token}", token, f"Bearer {token}x"):
            status, body, _ = srv.get("/api/v1/nodes", {"Authorization": header})
            assert status == 401, header
            assert token not in body and wrong not in body
        status, body, _ = srv.get("/api/v1/nodes", {"Authorization": f"Bearer {token}"})
        assert status == 200 and len(json.loads(body)) == 8
        assert srv.get("/api/v1/report", {"Authorization": f"bearer {token}"})[0] == 200
        assert srv.get("/nowhere")[0] == 401  # unknown paths are not probed without the token
        # probes and /metrics stay open
        for path in ("/healthz", "/readyz", "/metrics"):
            assert srv.get(path)[0] == 200, path
    finally:
        code, out, err = stop_server(srv)
    assert code == 0, err
    assert "/api/v1/nodes" in err  # the access log ran
    assert token not in out + err and wrong not in out + err


def test_auth_metrics_guards_metrics_but_not_the_probes(sample_db_readonly: Path, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("tok-42")
    srv = start_server(sample_db_readonly, tmp_path, "--max-staleness", "0", "--auth-token-file", str(token_file),
                       "--auth-metrics")
    try:
        assert srv.get("/metrics")[0] == 401
        assert srv.get("/metrics", {"Authorization": "Bearer tok-42"})[0] == 200
        assert srv.get("/healthz")[0] == 200 and srv.get("/readyz")[0] == 200
    finally:
        assert stop_server(srv)[0] == 0


def test_auth_options_are_checked_at_start(sample_db_readonly: Path, tmp_path: Path, runner) -> None:
    from capplan.cli import app

    empty = tmp_path / "empty"
    empty.write_text("\n")
    base = ["serve", "--db", str(sample_db_readonly), "--port", "0", "--termination-log", str(tmp_path / "log")]
    for extra, words in ((["--auth-token-file", str(empty)], "is empty"),
                         (["--auth-token-file", str(tmp_path / "absent")], "absent"),
                         (["--auth-metrics"], "--auth-token-file"),
                         (["--log-level", "loud"], "--log-level")):
        result = runner.invoke(app, base + extra)
        assert result.exit_code == 2, (extra, result.stderr)
        assert words in result.stderr


# --- probes ----------------------------------------------------------------------------------------


def test_readyz_on_an_imported_database_says_why(sample_db: Path, tmp_path: Path) -> None:
    srv = start_server(sample_db, tmp_path, "--max-staleness", "1h")
    try:
        status, body = srv.get_json("/readyz")
        assert status == 503 and body["ready"] is False
        assert "imported" in body["reason"] and "--max-staleness 0" in body["reason"], body
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
        assert srv.get_json("/healthz")[0] == 200  # liveness does not depend on the data
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


def test_readyz_with_max_staleness_0_serves_imported_data(api: Server) -> None:
    status, body = api.get_json("/readyz")
    assert status == 200 and body["ready"] is True and "max_staleness" not in body


def test_readyz_fails_when_the_database_is_missing(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "absent.duckdb", tmp_path, "--max-staleness", "0")
    try:
        status, body = srv.get_json("/readyz")
        assert status == 503 and "no database" in body["reason"]
        assert srv.get_json("/healthz")[0] == 200
    finally:
        assert stop_server(srv)[0] == 0
    assert not (tmp_path / "absent.duckdb").exists()  # the service never creates it


def test_sigterm_during_a_request_answers_it_then_exits_0(server: Server) -> None:
    expected = _library_records(server.db, lambda con: nodes_overview(con, FOURTEEN_DAYS, None, 20.0, 50.0))
    # A writer (as a collector committing a chunk) holds the file: the request waits for it
    # (up to 3 s), so it is in flight when SIGTERM arrives.
    writer = duckdb.connect(str(server.db))
    try:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=20)
        sock.sendall(b"GET /api/v1/nodes HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.5)
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.7)
        assert server.proc.poll() is None, "exited with a request in flight"
        # no new connections once it is draining
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", server.port), timeout=2).recv(1)
    finally:
        writer.close()
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert_same_records(json.loads(body), expected)
    code, out, err = stop_server(server, send=False)
    assert code == 0, err
    assert "stopped cleanly" in out
    assert not server.termination_log.exists()


def test_a_drain_past_the_shutdown_timeout_exits_1_with_the_reason(sample_db: Path, tmp_path: Path) -> None:
    srv = start_server(sample_db, tmp_path, "--max-staleness", "0", "--shutdown-timeout", "1s")
    writer = duckdb.connect(str(sample_db))  # the request waits 3 s for it: longer than the timeout
    try:
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=20)
        sock.sendall(b"GET /api/v1/nodes HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.5)
        started = time.monotonic()
        code, out, err = stop_server(srv)
        took = time.monotonic() - started
    finally:
        writer.close()
        _finish(srv)
    sock.close()
    assert code == 1, (out, err)
    assert took < 10
    assert "shutdown did not finish within 1s" in err
    assert "shutdown did not finish within 1s" in srv.termination_log.read_text()


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
        assert "collection interrupted" in out
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
