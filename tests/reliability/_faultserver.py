"""A tiny local HTTP(S) server for the faults a real Prometheus cannot produce on demand.

It forwards to a real Prometheus (`upstream`) for the first `after` API requests, then injects
`fault` on every later one: garbage / wrong-shape JSON, a truncated body, an HTTP status (500,
429 with Retry-After, 401, 403, ...), a stall, a reset connection, or an error body that echoes
the caller's Authorization header (as some misconfigured proxies do). It records every request
(path, arrival time, Authorization header) for the tests to check retries and secrets.
"""

from __future__ import annotations

import http.server
import json
import socket
import ssl
import struct
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass


@dataclass
class Seen:
    path: str
    at: float
    authorization: str


@dataclass
class Fault:
    kind: str = "forward"           # forward, garbage, shape, truncate, status, stall, reset, echo
    status: int = 500
    retry_after: str | None = None
    stall_seconds: float = 5.0
    after: int = 0                  # API requests forwarded before the fault starts
    times: int | None = None        # faulty answers before forwarding again (None: forever)


class FaultServer:
    """Use as a context manager; `.url`, `.fault` (change it at any time), `.seen`."""

    def __init__(self, upstream: str | None, fault: Fault | None = None,
                 tls: tuple[str, str] | None = None) -> None:
        self.upstream = upstream
        self.fault = fault or Fault()
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.api_requests = 0
        self.faults_sent = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                owner._handle(self)

            do_POST = do_GET

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.scheme = "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True,
                                                     do_handshake_on_connect=False)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FaultServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def api_seen(self) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.path.startswith("/api/")]

    # -- answering ----------------------------------------------------------------------------

    def _handle(self, h: http.server.BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        path = h.path.split("?", 1)[0]
        fault = self.fault
        with self.lock:
            self.seen.append(Seen(path, time.monotonic(), h.headers.get("Authorization", "")))
            inject = False
            if path.startswith("/api/"):
                self.api_requests += 1
                if fault.kind != "forward" and self.api_requests > fault.after and (
                        fault.times is None or self.faults_sent < fault.times):
                    inject = True
                    self.faults_sent += 1
        if not inject:
            return self._forward(h, body)
        kind = fault.kind
        if kind == "garbage":
            return self._send(h, 200, b'{"status": "success", "data": {"resultType": "matrix", "result": [{"metr')
        if kind == "shape":
            bad = {"status": "success", "data": {"resultType": "matrix",
                                                  "result": [{"metric": {"__name__": "x"}, "values": [["soon", "lots"]]}]}}
            return self._send(h, 200, json.dumps(bad).encode())
        if kind == "truncate":
            return self._send(h, 200, b'{"status":"success","data":{"resultType":"matrix","result":[' + b" " * 50,
                              declared=100_000)
        if kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return self._send(h, fault.status, json.dumps({"status": "error", "errorType": "injected",
                                                           "error": f"injected {fault.status}"}).encode(), headers)
        if kind == "echo":
            # A proxy that puts what it got into its error text.
            text = f"invalid credentials: {h.headers.get('Authorization', '')} for {h.path}"
            return self._send(h, 401, json.dumps({"status": "error", "errorType": "auth", "error": text}).encode())
        if kind == "stall":
            time.sleep(fault.stall_seconds)
            return self._forward(h, body)
        if kind == "reset":
            # RST instead of an answer.
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.connection.close()
            h.close_connection = True
            return None
        raise AssertionError(f"unknown fault {kind}")

    def _forward(self, h: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        if self.upstream is None:
            return self._send(h, 200, b'{"status":"success","data":[]}')
        request = urllib.request.Request(self.upstream + h.path, data=body or None, method=h.command,
                                         headers={"Content-Type": h.headers.get("Content-Type",
                                                                                "application/x-www-form-urlencoded")})
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:
                return self._send(h, resp.status, resp.read())
        except urllib.error.HTTPError as err:
            return self._send(h, err.code, err.read())
        except OSError:
            return self._send(h, 502, b'{"status":"error","errorType":"unavailable","error":"upstream down"}')

    @staticmethod
    def _send(h: http.server.BaseHTTPRequestHandler, status: int, body: bytes, headers: dict | None = None,
              declared: int | None = None) -> None:
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(declared if declared is not None else len(body)))
            for key, value in (headers or {}).items():
                h.send_header(key, value)
            if declared is not None:
                h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(body)
            h.wfile.flush()
            if declared is not None:
                h.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            pass
