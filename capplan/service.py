"""`capplan serve`: the JSON API, `/metrics`, health probes, and optional in-process collection.

The API mirrors the CLI: each endpoint calls the same library function its command calls and
answers with the same keys as the command's CSV columns (`render.to_records`). An analysis that
is not built answers 501 with a JSON error.

How the service reaches DuckDB: every request (and the readiness probe) opens the file read-only
and closes it when done (`store.open_db(read_only=True)`); the service itself never writes.
DuckDB lets one process write a file or several read it, never both at once, and refuses a
read-only and a read-write connection to one file inside one process. The collector
(capplan.collect) opens the file by path for each chunk it commits, so it cannot share a
database object with the API; `--collect-every` therefore runs each collection as a child
`capplan collect` process (the same code and options as the CronJob). The child holds the write
lock only while it commits a chunk; a request that arrives then waits for it (`lock_wait_seconds`,
3 s) and answers from the committed data, or 503 with Retry-After if the commit takes longer.
A separate CronJob writing the same file works the same way (its run is skipped, exit 5, when
the service's collection holds the collection lock, and vice versa).

Shutdown (SIGTERM or SIGINT): readiness turns 503 at once, the listener stops accepting, in-flight
requests finish, a running collection gets SIGTERM (it finishes and commits its current chunk and
records the run as interrupted), and the process exits 0 within `--shutdown-timeout` (default 20 s, well inside Kubernetes' 30 s
grace period before SIGKILL). On an error exit a one-line reason goes to the termination log
(`/dev/termination-log`, where Kubernetes shows it in the pod status) when that path is writable.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import duckdb
import polars as pl

from capplan import render, store
from capplan.errors import BadInputError, CapplanError, LockedError, NoDataError, SourceError, UsageError
from capplan.quantity import format_duration, parse_cpu_cores, parse_duration, parse_memory_bytes

DEFAULT_TERMINATION_LOG = Path("/dev/termination-log")
API_PREFIX = "/api/v1"


class NotBuiltError(CapplanError):
    """The analysis behind an endpoint is not part of this build (HTTP 501)."""

    exit_code = 1


@dataclass
class ServeOptions:
    """Everything `capplan serve` takes."""

    db: Path | None  # None: $CAPPLAN_DB, else ./capplan.duckdb (store.resolve_db_path)
    host: str = "0.0.0.0"
    port: int = 8080
    window: timedelta = timedelta(days=14)
    # Readiness fails when the newest finished collection is older than this; zero disables it.
    max_staleness: timedelta = timedelta(hours=2)
    collect_every: timedelta | None = None
    # Options for the child `capplan collect` (--step, ...; never a token or the URL itself).
    collect_args: list[str] = field(default_factory=list)
    # Passed to the child as $CAPPLAN_PROMETHEUS_URL.
    prometheus_url: str | None = None
    shutdown_timeout: float = 20.0
    termination_log: Path | None = DEFAULT_TERMINATION_LOG
    access_log: bool = False
    # Seconds a request waits for a writer in another process before answering 503.
    lock_wait_seconds: float = 3.0


# --- database access ---------------------------------------------------------------------------


class Database:
    """The service's way into DuckDB: a read-only connection per request (module docstring)."""

    def __init__(self, path: Path | None, *, lock_wait_seconds: float = 3.0) -> None:
        self.path = store.resolve_db_path(path)
        self.lock_wait_seconds = lock_wait_seconds

    @contextlib.contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection for one request; closed afterwards."""
        con = store.open_db(self.path, read_only=True, wait_seconds=self.lock_wait_seconds)
        try:
            yield con
        finally:
            con.close()


def data_version(con: duckdb.DuckDBPyConnection) -> tuple[Any, ...]:
    """A cheap fingerprint of the stored data: it changes whenever a collection or import commits
    (newest sample, row counts, newest spec observation, newest collection run)."""
    return tuple(con.execute(store.load_sql("service_data_version")).fetchone() or ())


@dataclass
class CollectionStatus:
    """The newest collection run recorded in the store (collection_runs)."""

    started_at: datetime | None
    finished_at: datetime | None
    status: str | None
    samples: int | None
    series: int | None
    last_ok_finished_at: datetime | None

    @property
    def duration_seconds(self) -> float | None:
        """Wall-clock seconds the newest finished run took."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


def collection_status(con: duckdb.DuckDBPyConnection) -> CollectionStatus:
    """The newest collection run and the newest successful one."""
    row = con.execute(store.load_sql("service_last_collection")).fetchone()
    if row is None:
        return CollectionStatus(None, None, None, None, None, None)
    return CollectionStatus(*row)


def _utcnow() -> datetime:
    # The store keeps naive UTC timestamps.
    return datetime.now(UTC).replace(tzinfo=None)


def _epoch(ts: datetime) -> float:
    return ts.replace(tzinfo=UTC).timestamp()


# --- the endpoints: the same library calls as the CLI -------------------------------------------


def records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """`render.to_records`, with DuckDB's exact decimals (a sum of BIGINTs) as plain numbers."""
    out = render.to_records(frame)
    for row in out:
        for key, value in row.items():
            if isinstance(value, Decimal):
                row[key] = int(value) if value == value.to_integral_value() else float(value)
    return out


def _library(module_name: str, *names: str) -> Callable[..., Any]:
    """The first of `names` in `module_name`; NotBuiltError when neither the module nor the
    function exists yet (the analysis is built by another issue)."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise NotBuiltError(f"{module_name} is not built yet") from exc
        raise
    for name in names:
        func = getattr(module, name, None)
        if func is not None:
            return func
    raise NotBuiltError(f"{module_name}.{names[0]} is not built yet")


class QueryParams:
    """Query-string parameters with the CLI's parsing; unknown names are wrong usage (400)."""

    def __init__(self, query: dict[str, list[str]], allowed: tuple[str, ...]) -> None:
        unknown = sorted(set(query) - set(allowed))
        if unknown:
            raise UsageError(f"unknown parameter(s) {', '.join(unknown)}; allowed: {', '.join(allowed) or 'none'}")
        self.query = query

    def one(self, name: str, default: str | None = None) -> str | None:
        """The single value of `name` (the last one when repeated)."""
        values = self.query.get(name)
        return values[-1] if values else default

    def many(self, name: str) -> list[str]:
        """All values of a repeatable parameter (`?namespace=a&namespace=b` or `a,b`)."""
        out: list[str] = []
        for value in self.query.get(name, []):
            out.extend(v for v in value.split(",") if v)
        return out

    def duration(self, name: str, default: timedelta) -> timedelta:
        """A duration parameter (`14d`); bad values are 400."""
        text = self.one(name)
        return default if text is None else parse_duration(text)

    def number(self, name: str, default: float) -> float:
        """A plain number parameter (percent thresholds)."""
        text = self.one(name)
        if text is None:
            return default
        try:
            value = float(text)
        except ValueError as exc:
            raise UsageError(f"{name} must be a number, not {text!r}") from exc
        if not math.isfinite(value):
            raise UsageError(f"{name} must be a finite number")
        return value

    def integer(self, name: str, default: int | None = None, minimum: int = 0) -> int | None:
        """A whole-number parameter."""
        text = self.one(name)
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError as exc:
            raise UsageError(f"{name} must be a whole number, not {text!r}") from exc
        if value < minimum:
            raise UsageError(f"{name} must be at least {minimum}")
        return value


@dataclass(frozen=True)
class Endpoint:
    """One `/api/v1/NAME` endpoint: its parameters and the library call that answers it."""

    name: str
    params: tuple[str, ...]
    call: Callable[[duckdb.DuckDBPyConnection, QueryParams, ServeOptions], pl.DataFrame]
    doc: str


def _nodes(con: duckdb.DuckDBPyConnection, p: QueryParams, o: ServeOptions) -> pl.DataFrame:
    window, nodes = p.duration("window", o.window), p.many("node") or None
    try:
        overview = _library("capplan.analysis.nodes_overview", "nodes_overview")
    except NotBuiltError:  # the plain node table of capplan.analysis.nodes
        from capplan.analysis.nodes import nodes_report

        return nodes_report(con, window, nodes)
    return overview(con, window, nodes, p.number("low", 20.0), p.number("high", 50.0))


def _cluster(con: duckdb.DuckDBPyConnection, p: QueryParams, o: ServeOptions) -> pl.DataFrame:
    func = _library("capplan.analysis.n_minus_1", "cluster_report")
    return func(con, p.duration("window", o.window))


def _namespaces(con: duckdb.DuckDBPyConnection, p: QueryParams, o: ServeOptions) -> pl.DataFrame:
    func = _library("capplan.analysis.namespaces", "namespaces_report")
    return func(con, p.duration("window", o.window), p.many("namespace") or None)


def _fit(con: duckdb.DuckDBPyConnection, p: QueryParams, o: ServeOptions) -> pl.DataFrame:
    cpu, memory = p.one("cpu"), p.one("memory")
    if cpu is None and memory is None:
        raise UsageError("fit needs the pod shape: cpu and/or memory, e.g. /api/v1/fit?cpu=500m&memory=1Gi")
    func = _library("capplan.analysis.fit", "fit_report")
    from capplan.analysis.taints import parse_toleration

    return func(con, parse_cpu_cores(cpu) if cpu is not None else 0.0,
                parse_memory_bytes(memory) if memory is not None else 0,
                tolerations=[parse_toleration(t) for t in p.many("tolerate")],
                replicas=p.integer("replicas", None, minimum=1), window=p.duration("window", o.window),
                nodes=p.many("node") or None)


EVICTION_VIEWS = ("pods", "nodes", "containers", "qos", "advice")


def _eviction(con: duckdb.DuckDBPyConnection, p: QueryParams, o: ServeOptions) -> pl.DataFrame:
    func = _library("capplan.analysis.eviction", "eviction_report")
    from capplan.analysis import eviction as ev

    view = p.one("view", "pods") or "pods"
    if view not in EVICTION_VIEWS:
        raise UsageError(f"view must be one of {', '.join(EVICTION_VIEWS)}, not {view!r}")
    usage = p.one("usage", "peak") or "peak"
    if usage not in ev.USAGE_BASES:
        raise UsageError(f"usage must be one of {', '.join(ev.USAGE_BASES)}, not {usage!r}")
    options = ev.EvictionOptions(
        window=p.duration("window", o.window), usage=usage,
        eviction_hard=ev.check_threshold(p.one("eviction_hard", ev.DEFAULT_EVICTION_HARD) or ""),
        eviction_soft=ev.check_threshold(p.one("eviction_soft", ev.DEFAULT_EVICTION_SOFT) or ""),
        # PriorityClass values by NAME=VALUE only: the service reads no file a client names.
        priorities=ev.load_priority_map(None, p.query.get("priority") or None),
        namespaces=p.many("namespace"), nodes=p.many("node"),
    )
    result = func(con, options)
    if not hasattr(result, view):
        raise NotBuiltError(f"the eviction analysis of this build has no {view} view")
    return getattr(result, view)


def _recommendations(con: duckdb.DuckDBPyConnection, p: QueryParams, o: ServeOptions) -> pl.DataFrame:
    func = _library("capplan.analysis.recommend", "recommend")
    from capplan.analysis.strategies import DEFAULT_STRATEGY, StrategyParams, get_strategy

    strategy = p.one("strategy", DEFAULT_STRATEGY) or DEFAULT_STRATEGY
    get_strategy(strategy)  # an unknown name is wrong usage
    # the same bounds as `capplan recommend`
    cpu_percentile = p.number("cpu_percentile", 95.0)
    memory_buffer = p.number("memory_buffer", 15.0)
    target = p.number("target_utilization", 0.7)
    if not 0 < cpu_percentile <= 100:
        raise UsageError("cpu_percentile must be in (0, 100]")
    if memory_buffer < 0:
        raise UsageError("memory_buffer must not be negative")
    if not 0 < target <= 1:
        raise UsageError("target_utilization must be in (0, 1]")
    costs = {name: p.number(name, -1.0) for name in ("cpu_cost", "memory_cost")}
    if any(p.one(name) is not None and value < 0 for name, value in costs.items()):
        raise UsageError("cpu_cost and memory_cost must not be negative")
    allow_hpa = (p.one("allow_hpa", "false") or "false").lower()
    if allow_hpa not in ("true", "false", "1", "0"):
        raise UsageError("allow_hpa must be true or false")
    params = StrategyParams(cpu_percentile=cpu_percentile, memory_buffer_percent=memory_buffer,
                            target_utilization=target,
                            min_history=p.duration("min_history", timedelta(days=1)),
                            horizon=p.duration("horizon", timedelta(days=7)), allow_hpa=allow_hpa in ("true", "1"))
    return func(con, strategy, p.duration("window", o.window), p.many("namespace") or None, params,
                costs["cpu_cost"] if p.one("cpu_cost") is not None else None,
                costs["memory_cost"] if p.one("memory_cost") is not None else None)


def _forecast(con: duckdb.DuckDBPyConnection, p: QueryParams, o: ServeOptions) -> pl.DataFrame:
    func = _library("capplan.analysis.forecast", "forecast_report")
    from capplan.analysis import forecast as fc

    return func(con, p.duration("window", o.window), horizon=p.duration("horizon", fc.DEFAULT_HORIZON),
                namespaces=p.many("namespace") or None,
                pool_label=p.one("pool_label", fc.DEFAULT_POOL_LABEL) or fc.DEFAULT_POOL_LABEL,
                min_days=p.integer("min_days", fc.DEFAULT_MIN_DAYS, minimum=0) or 0)


def _rollout(con: duckdb.DuckDBPyConnection, p: QueryParams, o: ServeOptions) -> pl.DataFrame:
    func = _library("capplan.analysis.rollout", "rollout_report")
    return func(con, p.duration("window", o.window), p.many("namespace") or None)


ENDPOINTS: dict[str, Endpoint] = {
    e.name: e
    for e in (
        Endpoint("nodes", ("window", "node", "low", "high"), _nodes, "per-node overcommit and headroom (`capplan nodes`)"),
        Endpoint("cluster", ("window",), _cluster, "cluster totals and the N-1 check (`capplan cluster`)"),
        Endpoint("namespaces", ("window", "namespace"), _namespaces, "per-namespace requests, limits, usage (`capplan namespaces`)"),
        Endpoint("fit", ("cpu", "memory", "replicas", "tolerate", "window", "node"), _fit, "how many more pods of a shape fit (`capplan fit`)"),
        Endpoint("eviction", ("window", "node", "namespace", "view", "usage", "eviction_hard", "eviction_soft",
                              "priority"), _eviction, "memory-pressure eviction order (`capplan eviction`)"),
        Endpoint("recommendations", ("window", "namespace", "strategy", "cpu_percentile", "memory_buffer",
                                     "target_utilization", "min_history", "horizon", "allow_hpa", "cpu_cost",
                                     "memory_cost"), _recommendations, "right-sizing (`capplan recommend`)"),
        Endpoint("forecast", ("window", "horizon", "namespace", "pool_label", "min_days"), _forecast,
                 "days until exhaustion (`capplan forecast`)"),
        Endpoint("rollout", ("window", "namespace"), _rollout, "rollout headroom per Deployment (`capplan rollout`)"),
    )
}


# --- the service ---------------------------------------------------------------------------------


HTTP_STATUS = {UsageError: 400, BadInputError: 400, NoDataError: 404, LockedError: 503, SourceError: 502,
               NotBuiltError: 501}


def http_status(err: CapplanError) -> int:
    """The HTTP status for a CapplanError."""
    for cls in type(err).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


class Service:
    """The running service: HTTP server, data cache, metrics, collector thread and shutdown."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        self.stopping = threading.Event()
        self.database = Database(options.db, lock_wait_seconds=options.lock_wait_seconds)
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._cache_lock = threading.Lock()
        self._inflight = 0
        self._inflight_cond = threading.Condition()
        self._collector: threading.Thread | None = None
        self.collect_child: subprocess.Popen[str] | None = None
        self.collections = {"ok": 0, "failed": 0, "interrupted": 0}
        from capplan.service_metrics import MetricsExporter

        self.metrics = MetricsExporter(self)
        self.server = _Server((options.host, options.port), _Handler, self)

    @property
    def port(self) -> int:
        """The port actually bound (useful with --port 0)."""
        return int(self.server.server_address[1])

    # cache: results per (what, parameters, data version); a collection or import changes the version
    def cached(self, con: duckdb.DuckDBPyConnection, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        """`compute()` once per data version and key."""
        full_key = key + (data_version(con),)
        with self._cache_lock:
            if full_key in self._cache:
                return self._cache[full_key]
        value = compute()
        with self._cache_lock:
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[full_key] = value
        return value

    def api(self, name: str, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        """The records `/api/v1/NAME` answers."""
        endpoint = ENDPOINTS[name]
        params = QueryParams(query, endpoint.params)
        key = ("api", name, tuple(sorted((k, tuple(v)) for k, v in query.items())))
        with self.database.reader() as con:
            return self.cached(con, key, lambda: records(endpoint.call(con, params, self.options)))

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready when not shutting down, the DB opens, and the last collection is fresh enough."""
        if self.stopping.is_set():
            return False, {"ready": False, "reason": "shutting down"}
        try:
            with self.database.reader() as con:
                status = collection_status(con)
        except CapplanError as err:
            return False, {"ready": False, "reason": str(err)}
        except duckdb.Error as err:
            return False, {"ready": False, "reason": f"database error: {str(err).splitlines()[0]}"}
        body: dict[str, Any] = {"db": str(self.database.path)}
        if status.last_ok_finished_at is not None:
            age = _utcnow() - status.last_ok_finished_at
            body["last_collection"] = status.last_ok_finished_at.strftime("%Y-%m-%dT%H:%M:%SZ")
            body["age_seconds"] = round(age.total_seconds(), 1)
        limit = self.options.max_staleness
        if limit.total_seconds() <= 0:
            return True, {"ready": True, **body}
        body["max_staleness"] = format_duration(limit)
        if status.last_ok_finished_at is None:
            return False, {"ready": False, "reason": "no finished collection recorded", **body}
        if _utcnow() - status.last_ok_finished_at > limit:
            return False, {"ready": False, "reason": f"last collection older than {format_duration(limit)}", **body}
        return True, {"ready": True, **body}

    # in-flight accounting for a graceful shutdown
    def connection_opened(self) -> None:
        """A connection was accepted."""
        with self._inflight_cond:
            self._inflight += 1

    def connection_closed(self) -> None:
        """A connection was answered and closed."""
        with self._inflight_cond:
            self._inflight -= 1
            self._inflight_cond.notify_all()

    def wait_idle(self, deadline: float) -> bool:
        """Wait until no request is in flight or the monotonic deadline passes."""
        with self._inflight_cond:
            while self._inflight > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._inflight_cond.wait(left)
        return True

    # collection: a child `capplan collect` per tick (module docstring says why)
    def _collect_loop(self) -> None:
        from capplan.service_collect import run_collection

        every = self.options.collect_every
        assert every is not None
        while not self.stopping.is_set():
            status = run_collection(self, self.options.collect_args, self.options.prometheus_url)
            self.collections[status] = self.collections.get(status, 0) + 1
            if self.stopping.wait(every.total_seconds()):
                break

    def start(self) -> None:
        """Start serving (and collecting) in background threads."""
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                         name="capplan-http", daemon=True).start()
        if self.options.collect_every is not None:
            self._collector = threading.Thread(target=self._collect_loop, name="capplan-collect", daemon=True)
            self._collector.start()

    def shutdown(self) -> bool:
        """Stop accepting, drain requests, let the collector commit, close the DB. True when all
        of it finished within the shutdown timeout."""
        deadline = time.monotonic() + self.options.shutdown_timeout
        self.stopping.set()
        self.server.shutdown()  # stops the accept loop; in-flight handlers keep running
        self.server.server_close()
        child = self.collect_child
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)  # finish the current chunk, commit, stop
        drained = self.wait_idle(deadline)
        collected = True
        if self._collector is not None:
            self._collector.join(max(0.0, deadline - time.monotonic()))
            collected = not self._collector.is_alive()
            child = self.collect_child
            if not collected and child is not None and child.poll() is None:
                # Past the deadline: kill it. Committed chunks stay whole; the chunk in progress is
                # rolled back, and the next run resumes from the high-water mark.
                child.kill()
        return drained and collected


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Joining handler threads is done by Service.wait_idle, with a deadline.
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], service: Service) -> None:
        self.service = service
        try:
            super().__init__(address, handler)
        except OSError as exc:
            raise UsageError(f"cannot listen on {address[0]}:{address[1]}: {exc.strerror or exc}") from exc

    # A connection counts as in flight from accept to close, so a request whose headers are still
    # arriving when SIGTERM comes is answered too.
    def process_request(self, request: Any, client_address: Any) -> None:
        self.service.connection_opened()
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.service.connection_closed()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.service.connection_closed()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "capplan"
    # A stalled client must not hold a thread (or the shutdown) for long.
    timeout = 10

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.service.options.access_log:
            sys.stderr.write(f"capplan serve: {self.address_string()} {format % args}\n")

    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.server.service.metrics.count_request(self._route, status)

    def _json(self, status: int, payload: Any, extra: dict[str, str] | None = None) -> None:
        body = (json.dumps(payload, indent=1, default=str, allow_nan=False) + "\n").encode()
        self._send(status, body, "application/json", extra)

    def _error(self, status: int, message: str) -> None:
        extra = {"Retry-After": "5"} if status == 503 else None
        self._json(status, {"error": message, "status": status}, extra)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        self._route = path if path in _ROUTES or path.startswith(API_PREFIX) else "other"
        try:
            self._dispatch(path, parse_qs(url.query, keep_blank_values=False))
        except CapplanError as err:
            self._error(http_status(err), str(err))
        except duckdb.Error as err:
            self._error(500, f"database error: {str(err).splitlines()[0]}")
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # a bug: one line, the service keeps running
            self._error(500, f"internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")

    def _dispatch(self, path: str, query: dict[str, list[str]]) -> None:
        service = self.server.service
        if path == "/healthz":
            # Liveness: the process serves requests. It must not depend on the DB, or a slow
            # collection would get the pod restarted.
            self._json(200, {"alive": True})
        elif path == "/readyz":
            ready, state = service.readiness()
            self._json(200 if ready else 503, state)
        elif path == "/metrics":
            exposition, content_type = service.metrics.exposition()
            self._send(200, exposition, content_type)
        elif path == API_PREFIX:
            self._json(200, {name: {"path": f"{API_PREFIX}/{name}", "parameters": list(e.params), "doc": e.doc}
                             for name, e in ENDPOINTS.items()})
        elif path.startswith(API_PREFIX + "/") and path[len(API_PREFIX) + 1:] in ENDPOINTS:
            self._json(200, service.api(path[len(API_PREFIX) + 1:], query))
        elif path == f"{API_PREFIX}/report":
            self._json(200, self._report_json(query))
        elif path in ("/", "/report.html"):
            self._send(200, self._report_html(query).encode(), "text/html; charset=utf-8")
        else:
            self._error(404, f"no such endpoint {path}; see {API_PREFIX}")

    def _report_options(self, query: dict[str, list[str]]) -> Any:
        from capplan.report import ReportOptions

        p = QueryParams(query, ("window", "namespace", "node", "top"))
        return ReportOptions(window=p.duration("window", self.server.service.options.window),
                             namespaces=p.many("namespace"), nodes=p.many("node"),
                             top=p.integer("top", 10, minimum=1) or 10)

    def _report_json(self, query: dict[str, list[str]]) -> dict[str, Any]:
        from capplan.report.compose import build_report

        options = self._report_options(query)
        service = self.server.service
        with service.database.reader() as con:
            return service.cached(con, ("report", repr(options)), lambda: json.loads(
                json.dumps({s.key: records(s.frame) for s in build_report(con, options)}, default=str)))

    def _report_html(self, query: dict[str, list[str]]) -> str:
        from capplan.render.html import render_html
        from capplan.report.charts import build_page

        options = self._report_options(query)
        service = self.server.service
        with service.database.reader() as con:
            return service.cached(con, ("html", repr(options)), lambda: render_html(build_page(con, options)))


_ROUTES = {"/healthz", "/readyz", "/metrics", "/", "/report.html", API_PREFIX}


# --- running it ----------------------------------------------------------------------------------


def write_termination_log(path: Path | None, message: str) -> None:
    """Leave a short reason where Kubernetes reads it (terminationMessagePath); silent when the
    path is not writable (not in a container)."""
    if path is None:
        return
    with contextlib.suppress(OSError):
        with open(path, "w") as fh:
            fh.write(message[:4000] + "\n")


def run(options: ServeOptions, ready_line: Callable[[str], None] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; return the exit code (0 after a clean shutdown).

    Must be called from the main thread (it installs the signal handlers)."""
    say = ready_line or (lambda text: print(text, flush=True))
    service = Service(options)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    # The handlers stay installed until the process exits: a second SIGTERM during the drain
    # must not kill it half way.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    service.start()
    mode = (f"collecting every {format_duration(options.collect_every)}" if options.collect_every
            else "read-only")
    say(f"capplan serve: listening on http://{options.host}:{service.port} "
        f"(db {service.database.path}, {mode})")
    while not stop.wait(0.5):
        pass
    started = time.monotonic()
    clean = service.shutdown()
    took = time.monotonic() - started
    if not clean:
        message = (f"capplan serve: shutdown did not finish within {options.shutdown_timeout:g}s "
                   "(requests or a collection chunk still running)")
        write_termination_log(options.termination_log, message)
        print(message, file=sys.stderr, flush=True)
        return 1
    say(f"capplan serve: stopped cleanly in {took:.1f}s")
    return 0


