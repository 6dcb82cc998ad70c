"""The ASGI application: routes, error answers, request metrics and authentication.

Every route is a GET (HEAD comes with it); another method gets 405 with `Allow`. Every answer
is JSON except /metrics (Prometheus text), the HTML report and /docs. Errors are JSON
`{"error": "...", "status": N}`: 400 a wrong parameter, 401 a missing or wrong token, 404 no
such path or no data, 405 a wrong method, 503 (with Retry-After) the database cannot be used
now, 500 a bug. Computations run in Starlette's thread pool; the event loop only routes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import duckdb
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from capplan.errors import (
    BadInputError,
    CapplanError,
    LockedError,
    NoDataError,
    SourceError,
    UsageError,
)
from capplan.serve import auth
from capplan.serve.answers import answer
from capplan.serve.database import DatabaseUnavailable
from capplan.serve.endpoints import API_PREFIX, ENDPOINTS, Endpoint
from capplan.serve.metrics import CONTENT_TYPE, OTHER_ROUTE, MetricsExporter
from capplan.serve.openapi import docs_page, openapi_spec
from capplan.serve.pages import report_html, report_json
from capplan.serve.probes import readiness
from capplan.serve.state import ServiceState

log = logging.getLogger("capplan.serve")

HTTP_STATUS: dict[type[CapplanError], int] = {
    UsageError: 400, BadInputError: 400, NoDataError: 404, DatabaseUnavailable: 503, LockedError: 503,
    SourceError: 502,
}
RETRY_AFTER_SECONDS = "5"


def http_status(err: CapplanError) -> int:
    """The HTTP status for a CapplanError (500 for any other kind: a bug)."""
    for cls in type(err).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


class PrettyJSON(JSONResponse):
    """JSON as the service has always answered it: indented by one, a final newline, no NaN."""

    def render(self, content: Any) -> bytes:
        return (json.dumps(content, indent=1, default=str, allow_nan=False) + "\n").encode()


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """The JSON error answer."""
    extra = dict(headers or {})
    if status == 503:
        extra.setdefault("Retry-After", RETRY_AFTER_SECONDS)
    return PrettyJSON({"error": message, "status": status}, status_code=status, headers=extra)


def _query(request: Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        out.setdefault(key, []).append(value)
    return out


def _guarded(work: Callable[[], Response]) -> Response:
    """Run `work`, answering a CapplanError or a database error as JSON."""
    try:
        return work()
    except CapplanError as err:
        return error_response(http_status(err), str(err))
    except duckdb.Error as err:
        log.error("database error: %s", str(err).splitlines()[0])
        return error_response(500, f"database error: {str(err).splitlines()[0]}")


def build_app(state: ServiceState) -> Starlette:
    """The application for one ServiceState."""
    metrics = MetricsExporter(state)
    spec = openapi_spec()
    docs = docs_page(spec)

    def healthz(_request: Request) -> Response:
        return PrettyJSON({"alive": True})

    def readyz(_request: Request) -> Response:
        ready, body = readiness(state)
        return PrettyJSON(body, status_code=200 if ready else 503)

    def metrics_page(_request: Request) -> Response:
        return _guarded(lambda: Response(metrics.exposition(), media_type=CONTENT_TYPE))

    def index(_request: Request) -> Response:
        return PrettyJSON({e.name: {"path": e.path, "parameters": [p.name for p in e.query_params], "doc": e.doc}
                           for e in ENDPOINTS})

    def endpoint_route(endpoint: Endpoint) -> Route:
        def handle(request: Request) -> Response:
            return _guarded(lambda: PrettyJSON(answer(state, endpoint, _query(request))))
        handle.__name__ = f"api_{endpoint.name}"
        return Route(endpoint.path, handle, methods=["GET"])

    def report(request: Request) -> Response:
        return _guarded(lambda: PrettyJSON(report_json(state, _query(request))))

    def report_page(request: Request) -> Response:
        return _guarded(lambda: HTMLResponse(report_html(state, _query(request))))

    def openapi(_request: Request) -> Response:
        return PrettyJSON(spec)

    def docs_html(_request: Request) -> Response:
        return HTMLResponse(docs)

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_page, methods=["GET"]),
        Route(API_PREFIX, index, methods=["GET"]),
        *(endpoint_route(e) for e in ENDPOINTS),
        Route(f"{API_PREFIX}/report", report, methods=["GET"]),
        Route("/", report_page, methods=["GET"]),
        Route("/report.html", report_page, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", docs_html, methods=["GET"]),
    ]

    async def http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            message = f"no such endpoint {_request.url.path}; see {API_PREFIX} or /docs"
        elif exc.status_code == 405:
            message = f"method {_request.method} not allowed; allowed: {(exc.headers or {}).get('Allow', 'GET')}"
        else:
            message = exc.detail
        return error_response(exc.status_code, message, exc.headers)

    async def bug(_request: Request, exc: Exception) -> Response:
        log.error("internal error on %s", _request.url.path, exc_info=exc)
        text = str(exc).splitlines()[0] if str(exc) else ""
        return error_response(500, f"internal error: {type(exc).__name__}: {text}")

    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: bug})
    # Outermost first: every answer (a 401 included) is counted under its route.
    app.add_middleware(AuthMiddleware, token=state.options.auth_token,
                       open_paths=auth.open_paths(state.options.auth_metrics))
    app.add_middleware(RequestMetrics, routes=routes, count=metrics.count_request)
    app.state.metrics = metrics
    return app


def route_template(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """The path template of the route `scope` asks for (a wrong method still names its route),
    or OTHER_ROUTE: unknown paths share one label, whatever they are."""
    for route in routes:
        match, _ = route.matches(scope)
        if match in (Match.FULL, Match.PARTIAL) and isinstance(route, Route):
            return route.path
    return OTHER_ROUTE


class RequestMetrics:
    """Counts each answer by route template and status, and marks answers not cacheable."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute], count: Callable[[str, int], None]) -> None:
        self.app, self.routes, self.count = app, routes, count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = route_template(self.routes, scope)
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.count(route, status[0])


class AuthMiddleware:
    """Refuses requests without the bearer token (when one is configured), except open paths."""

    def __init__(self, app: ASGIApp, token: str | None, open_paths: frozenset[str]) -> None:
        self.app, self.token, self.open_paths = app, token, open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.token is None or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        header = None
        for key, value in scope.get("headers", []):
            if key == b"authorization":
                header = value.decode("latin-1")
                break
        if auth.authorized(header, self.token):
            await self.app(scope, receive, send)
            return
        message = "missing bearer token" if header is None else "wrong bearer token"
        response = error_response(401, message, {"WWW-Authenticate": 'Bearer realm="capplan"'})
        await response(scope, receive, send)
