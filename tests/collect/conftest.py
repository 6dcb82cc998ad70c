"""Collector fixtures: one real Prometheus per session serving 36 hours of the sample cluster
(kube-state-metrics v2 + cAdvisor series with real label sets), and a tiny HTTP proxy for faults
a real Prometheus cannot produce (auth refusal in front of it, 503s, garbage, stalls, slowness).
"""

from __future__ import annotations

import http.server
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from tests import tools
from tests.conftest import run_shared_dir
from tests.promharness import PrometheusServer, build_cluster_tsdb, cached_tsdb

WINDOW_START = datetime(2026, 11, 2, 0, 0)
WINDOW_END = datetime(2026, 11, 3, 11, 55)   # 36 hours at the sample's 5-minute step
SAMPLE_USAGE = Path(__file__).resolve().parents[2] / "data" / "samples" / "cluster" / "usage.parquet"


@pytest.fixture(scope="session")
def prom_tsdb(sample_cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample cluster over WINDOW_START..WINDOW_END, backfilled once per run. Read-only: copy it."""
    tools.require("prometheus", "promtool")
    # kube-state-metrics configured to export node labels (--metric-labels-allowlist=nodes=[*]);
    # built once per run, shared by the xdist workers (each server reads its own copy of it)
    built = cached_tsdb(run_shared_dir(tmp_path_factory) / "tsdb", "collect-36h", lambda out: build_cluster_tsdb(
        sample_cluster, out / "tsdb", WINDOW_START, WINDOW_END, node_labels=True))
    return built / "tsdb"


@pytest.fixture(scope="session")
def prom(prom_tsdb: Path) -> Iterator[PrometheusServer]:
    """A real Prometheus on its own copy of the TSDB (read-only use by the tests)."""
    with PrometheusServer(prom_tsdb) as server:
        yield server


@pytest.fixture(scope="session")
def sample_usage_window() -> pl.DataFrame:
    """The bundled sample's usage rows (what `capplan import` loads) within the window."""
    return pl.read_parquet(SAMPLE_USAGE).filter(pl.col("ts").is_between(WINDOW_START, WINDOW_END))


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    return tmp_path / "collect.duckdb"


class FaultProxy:
    """A local HTTP server in front of (or instead of) Prometheus.

    mode: "forward" (optionally requiring `token`; over TLS with `tls=(cert, key)`), "status" (always `status`), "garbage"
    (200 with a non-JSON body), "stall" (sleep `delay` before answering). `delay` also slows
    forwarding. `requests` counts requests per path.
    """

    def __init__(self, upstream: str | None = None, mode: str = "forward", token: str | None = None,
                 status: int = 503, delay: float = 0.0, tls: tuple[str, str] | None = None) -> None:
        self.upstream, self.mode, self.token, self.status, self.delay = upstream, mode, token, status, delay
        self.requests: dict[str, int] = {}
        self.auth_seen: list[str] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                proxy.handle(self)

            do_POST = do_GET

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.scheme = "http"
        if tls:
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}"

    def count(self, prefix: str = "/api/") -> int:
        with self.lock:
            return sum(n for path, n in self.requests.items() if path.startswith(prefix))

    def handle(self, h: http.server.BaseHTTPRequestHandler) -> None:
        path = h.path.split("?", 1)[0]
        with self.lock:
            self.requests[path] = self.requests.get(path, 0) + 1
            self.auth_seen.append(h.headers.get("Authorization", ""))
        if self.delay:
            time.sleep(self.delay)
        if self.mode == "status":
            return self._send(h, self.status, json.dumps({"status": "error", "errorType": "internal",
                                                         "error": f"injected {self.status}"}).encode())
        if self.mode == "garbage":
            return self._send(h, 200, b"<html>this is not the Prometheus API</html>")
        if self.mode == "stall":
            return self._send(h, 200, b"{}")
        if self.token is not None and h.headers.get("Authorization") != f"Bearer {self.token}":
            return self._send(h, 401, b"Unauthorized\n", "text/plain")
        try:
            with urllib.request.urlopen(self.upstream + h.path, timeout=60) as resp:
                return self._send(h, resp.status, resp.read(), resp.headers.get("Content-Type", "application/json"))
        except urllib.error.HTTPError as err:
            return self._send(h, err.code, err.read())

    @staticmethod
    def _send(h: http.server.BaseHTTPRequestHandler, status: int, body: bytes, ctype: str = "application/json") -> None:
        try:
            h.send_response(status)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def fault_proxy():
    """A factory of FaultProxy servers, all stopped after the test."""
    made: list[FaultProxy] = []

    def make(**kwargs) -> FaultProxy:
        proxy = FaultProxy(**kwargs).__enter__()
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.__exit__()
