"""The API described as OpenAPI 3.1 (`/openapi.json`) and as a plain page (`/docs`), both made
from the endpoint list and its parameter declarations, so the description cannot drift from
what the service validates. The page needs no network (no script or stylesheet from elsewhere)."""

from __future__ import annotations

import html
from typing import Any

from capplan import __version__
from capplan.serve.endpoints import API_PREFIX, ENDPOINTS
from capplan.serve.pages import REPORT_PARAMS
from capplan.serve.query import OPENAPI_TYPES, Param

ERROR_SCHEMA = {
    "type": "object", "required": ["error", "status"],
    "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
}
ROWS_SCHEMA = {"type": "array", "items": {"type": "object",
                                          "description": "One row; the keys are the CLI command's CSV columns."}}

# Paths other than the analysis endpoints: (path, summary, response media type).
FIXED_PATHS: tuple[tuple[str, str, str], ...] = (
    ("/healthz", "Liveness: 200 while the process serves; never touches the database.", "application/json"),
    ("/readyz", "Readiness: 200 when the database opens and the last collection is fresh enough "
                "(--max-staleness); 503 with the reason otherwise.", "application/json"),
    ("/metrics", "Prometheus exposition of the capplan_* gauges.", "text/plain"),
    (API_PREFIX, "The analysis endpoints and their parameters.", "application/json"),
    (f"{API_PREFIX}/report", "The whole report (`capplan report --format json`).", "application/json"),
    ("/report.html", "The HTML report (also at /).", "text/html"),
    ("/openapi.json", "This description.", "application/json"),
    ("/docs", "This description as a page.", "text/html"),
)


def _parameter(param: Param) -> dict[str, Any]:
    schema = dict(OPENAPI_TYPES[param.kind])
    if param.choices:
        schema["enum"] = list(param.choices)
    if param.default is not None:
        schema["default"] = param.default if isinstance(param.default, (str, int, float, bool)) else str(param.default)
    out: dict[str, Any] = {"name": param.name, "in": "query", "required": False, "description": param.doc,
                           "schema": schema}
    if param.kind == "list":
        out["style"], out["explode"] = "form", True
    return out


def _errors() -> dict[str, Any]:
    content = {"application/json": {"schema": ERROR_SCHEMA}}
    return {
        "400": {"description": "A wrong parameter (unknown name, bad duration or quantity, out of range).", "content": content},
        "401": {"description": "Missing or wrong bearer token (only with --auth-token-file).", "content": content},
        "404": {"description": "No data for what was asked (empty database or window).", "content": content},
        "405": {"description": "A method other than GET or HEAD (the Allow header lists them).", "content": content},
        "503": {"description": "The database cannot be used now: newer schema, not a database, or held by a "
                               "writer for more than 3 s (Retry-After).", "content": content},
    }


def openapi_spec() -> dict[str, Any]:
    """The OpenAPI document."""
    paths: dict[str, Any] = {}
    for endpoint in ENDPOINTS:
        paths[endpoint.path] = {"get": {
            "operationId": endpoint.name, "summary": endpoint.doc,
            "parameters": [_parameter(p) for p in endpoint.query_params],
            "responses": {"200": {"description": "The rows.", "content": {"application/json": {"schema": ROWS_SCHEMA}}},
                          **_errors()},
        }}
    for path, summary, media in FIXED_PATHS:
        params = [_parameter(p) for p in REPORT_PARAMS] if path in (f"{API_PREFIX}/report", "/report.html") else []
        paths[path] = {"get": {"summary": summary, "parameters": params,
                               "responses": {"200": {"description": "OK", "content": {media: {}}}, **_errors()}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "capplan", "version": __version__,
                 "description": "Capacity planning for Kubernetes: the CLI's analyses over HTTP."},
        "paths": paths,
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


def docs_page(spec: dict[str, Any]) -> str:
    """The OpenAPI document as a readable page: one section per path with its parameters."""
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>capplan API</title>",
             "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}"
             "code{background:#f4f4f4}</style></head><body>",
             f"<h1>capplan API {html.escape(spec['info']['version'])}</h1>",
             "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a>. Errors are JSON "
             "<code>{\"error\": \"...\", \"status\": N}</code>.</p>"]
    for path, item in spec["paths"].items():
        op = item["get"]
        parts.append(f"<h2 id='{html.escape(path)}'><code>GET {html.escape(path)}</code></h2>"
                     f"<p>{html.escape(op['summary'])}</p>")
        if op["parameters"]:
            parts.append("<table><tr><th>parameter</th><th>type</th><th>default</th><th>meaning</th></tr>")
            for p in op["parameters"]:
                schema = p["schema"]
                kind = schema["type"] + (f" ({', '.join(schema['enum'])})" if "enum" in schema else "")
                default = schema.get("default", "")
                parts.append(f"<tr><td><code>{html.escape(p['name'])}</code></td><td>{html.escape(kind)}</td>"
                             f"<td>{html.escape(str(default))}</td><td>{html.escape(p['description'])}</td></tr>")
            parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)
