"""Running the service: logging, the listening socket, uvicorn, signals and an orderly shutdown.

Shutdown (SIGTERM or SIGINT): /readyz turns 503 at once, the listener closes, requests in flight
are answered (uvicorn's graceful shutdown), a running scheduled collection gets SIGTERM (it
finishes and commits its current chunk and records the run as interrupted), and the process
exits 0 within --shutdown-timeout (default 20 s, inside Kubernetes' 30 s grace period before
SIGKILL). Past the timeout, requests still running are cancelled, the collection is killed, the
reason goes to the termination log (/dev/termination-log, shown in the pod status) and the exit
code is 1.

Logs: the `capplan.serve` logger; informational lines (listening, collections, stopped) on
stdout, warnings and errors on stderr, each prefixed `capplan serve:`. `--access-log` adds one
line per request (uvicorn's access log) on stderr. No log line carries the auth token.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
import time
from types import FrameType

import uvicorn

from capplan.errors import UsageError
from capplan.quantity import format_duration
from capplan.serve.app import build_app
from capplan.serve.collector import ScheduledCollection
from capplan.serve.config import ServeOptions
from capplan.serve.state import ServiceState
from capplan.serve.termination import write_termination_log

log = logging.getLogger("capplan.serve")



class _Below(logging.Filter):
    """Passes records below a level (the stdout half of the split)."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < self.level


class _Prefixed(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.WARNING:
            return f"capplan serve: {record.levelname.lower()}: {text}"
        return f"capplan serve: {text}"


def configure_logging(level_name: str, access_log: bool) -> None:
    """capplan.serve: info on stdout, warnings and errors on stderr; uvicorn's own logger on
    stderr, only warnings unless --log-level debug (its start-up chatter must not come before
    our `listening on` line, which scripts read first)."""
    level = getattr(logging, level_name.upper())
    formatter = _Prefixed("%(message)s")
    out = logging.StreamHandler(sys.stdout)
    out.addFilter(_Below(logging.WARNING))
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(logging.WARNING)
    for handler in (out, err):
        handler.setFormatter(formatter)
    ours = logging.getLogger("capplan.serve")
    ours.handlers[:] = [out, err]
    ours.setLevel(level)
    ours.propagate = False
    server = logging.getLogger("uvicorn.error")
    server_handler = logging.StreamHandler(sys.stderr)
    server_handler.setFormatter(formatter)
    server.handlers[:] = [server_handler]
    server.setLevel(logging.DEBUG if level <= logging.DEBUG else max(level, logging.WARNING))
    server.propagate = False
    access = logging.getLogger("uvicorn.access")
    access_handler = logging.StreamHandler(sys.stderr)
    access_handler.setFormatter(logging.Formatter("capplan serve: %(message)s"))
    access.handlers[:] = [access_handler]
    access.setLevel(logging.INFO)
    access.propagate = False
    access.disabled = not access_log


def bind(host: str, port: int) -> socket.socket:
    """The listening socket (bound here so `--port 0` can name the port it got)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                            flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, telling the service when shutdown begins and whether the drain ended."""

    def __init__(self, config: uvicorn.Config, state: ServiceState, collection: ScheduledCollection | None,
                 announce: str) -> None:
        super().__init__(config)
        self.state, self.collection, self.announce = state, collection, announce
        self.drained = False
        self.stop_requested_at: float | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            log.info("%s", self.announce)
            if self.collection is not None:
                self.collection.start()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.stop_requested_at is None:
            self.stop_requested_at = time.monotonic()
            self.state.stopping.set()  # readiness fails from now on
            if self.collection is not None:
                self.collection.interrupt()
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets=sockets)
        # uvicorn waits for every connection to close, up to --shutdown-timeout; past it, it
        # cancels the requests still running, whose connections are then still open here.
        self.drained = not self.server_state.connections


def run(options: ServeOptions) -> int:
    """Serve until SIGTERM/SIGINT; the exit code (0 after a clean shutdown). Main thread only."""
    configure_logging(options.log_level, options.access_log)
    state = ServiceState(options)
    app = build_app(state)
    sock = bind(options.host, options.port)
    port = sock.getsockname()[1]
    collection = ScheduledCollection(state) if options.collect_every is not None else None
    mode = (f"collecting every {format_duration(options.collect_every)}" if options.collect_every
            else "read-only")
    auth = ", bearer token required" if options.auth_token else ""
    config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=options.access_log,
                            timeout_graceful_shutdown=max(1, int(options.shutdown_timeout_seconds)),
                            server_header=False, headers=[("server", "capplan")])
    server = _Server(config, state, collection,
                     f"listening on http://{options.host}:{port} (db {state.database.path}, {mode}{auth})")
    # uvicorn re-raises the signal it caught once it has shut down, under the handlers that were
    # there before it: make that ours too, so a graceful stop ends in our exit code, not in SIGTERM.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, server.handle_exit)
    server.run(sockets=[sock])
    stopped = server.stop_requested_at or time.monotonic()
    left = options.shutdown_timeout_seconds - (time.monotonic() - stopped)
    collected = collection.join(left) if collection is not None else True
    took = time.monotonic() - stopped
    if not (server.drained and collected):
        message = (f"capplan serve: shutdown did not finish within {options.shutdown_timeout_seconds:g}s "
                   "(requests or a collection chunk still running)")
        write_termination_log(options.termination_log, message)
        log.error("shutdown did not finish within %gs (requests or a collection chunk still running)",
                  options.shutdown_timeout_seconds)
        return 1
    log.info("stopped cleanly in %.1fs", took)
    return 0
