"""HTTP access to a Prometheus-compatible API (Prometheus, Thanos, Mimir, VictoriaMetrics).

Plain `requests` with our own retry loop, and orjson to decode (stdlib json.loads was 48% of a
first run's wall time, bench/RESULTS.md):

- bounded retries with exponential backoff for connection errors, timeouts, 408/429/5xx;
  401/403 and other 4xx are not retried (they will not heal by themselves);
- `Accept-Encoding: identity`: on large answers gzip costs ~2.6x the time on a fast link;
- long queries are POSTed as forms (Prometheus and VictoriaMetrics accept both; long name
  regexes stay out of URL length limits);
- the bearer token comes from a file or the environment and never appears in a message;
- every failure becomes a one-line SourceError (exit 3) naming the URL and the server's own error
  text, or a BadInputError (exit 4) for a malformed answer (an HTML page says which page answered).
"""

from __future__ import annotations

import re
import threading
import time
import urllib.parse
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from capplan.errors import BadInputError, SourceError, UsageError

RETRY_STATUS = {408, 429, 500, 502, 503, 504}
# Error texts of answers refused for their size (split them and ask again), from Prometheus
# (promql/engine.go: ErrTooManySamples; web/api/v1: the 11,000-point limit) and VictoriaMetrics
# (app/vmselect: -search.maxSamplesPerQuery, -search.maxPointsPerTimeseries, -search.maxUniqueTimeseries,
# -search.maxResponseSeries). Any other 4xx is an error to report with its text (VictoriaMetrics
# answers every query error with 422).
TOO_LARGE_TEXTS = ("too many samples", "would load too many samples", "11,000 points", "11000 points",
                   "maximum resolution", "maxsamplesperquery", "maxpointspertimeseries", "maxuniquetimeseries",
                   "maxresponseseries", "maxseries", "too many points", "too many time series",
                   "too many timeseries")
# Queries longer than this are POSTed as forms (a few proxies limit request lines to 8 KB); shorter
# ones use GET, which every proxy and cache forwards.
MAX_GET_QUERY = 4096
MAX_ERROR_TEXT = 600  # characters of a server's error text kept in the one-line message


class TooLarge(Exception):
    """The server refused a query as too large (too many samples or points): split it."""


def redact_url(url: str) -> str:
    """The URL without user:password@ and without a query string (for messages and the DB)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


@dataclass(frozen=True)
class Body:
    """A successful (HTTP 200) answer, undecoded."""

    data: bytes
    content_type: str


@dataclass
class ClientOptions:
    """How to reach the Prometheus API."""

    url: str
    token: str | None = None
    ca_file: str | None = None
    insecure_skip_tls_verify: bool = False
    timeout_seconds: float = 60.0
    retries: int = 3
    backoff_seconds: float = 0.5
    pool_size: int = 8
    extra_headers: dict[str, str] = field(default_factory=dict)


class PromClient:
    """A thread-safe client counting the queries it sends."""

    def __init__(self, options: ClientOptions) -> None:
        parts = urllib.parse.urlsplit(options.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"--prometheus-url must be an http(s) URL, not {redact_url(options.url) or options.url[:60]!r}")
        self.options = options
        self.display_url = redact_url(options.url)
        self.base = self.display_url  # without credentials and query string
        self.base_params = dict(urllib.parse.parse_qsl(parts.query))  # e.g. a tenant id kept from the URL
        self.queries = 0
        self._lock = threading.Lock()
        session = requests.Session()
        # passed with every request: requests lets $REQUESTS_CA_BUNDLE override a session's setting
        self.verify: bool | str = True
        if options.insecure_skip_tls_verify:
            self.verify = False
            warnings.filterwarnings("ignore", message="Unverified HTTPS request")
        elif options.ca_file:
            self.verify = options.ca_file
        session.headers.update({"Accept-Encoding": "identity", "Accept": "application/json", **options.extra_headers})
        if options.token:
            session.headers["Authorization"] = f"Bearer {options.token}"
        if parts.username:
            session.auth = (urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or ""))
        # Our own retry loop below; urllib3 must not retry behind our back.
        no_retry = Retry(total=0, connect=0, read=0, status=0, redirect=3, raise_on_status=False)
        adapter = HTTPAdapter(max_retries=no_retry, pool_connections=options.pool_size, pool_maxsize=options.pool_size)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        self.session = session

    def _redact(self, text: str) -> str:
        """`text` without the token or the URL's password (servers may echo what they received)."""
        for secret in (self.options.token, urllib.parse.urlsplit(self.options.url).password):
            if secret:
                text = text.replace(secret, "***")
        return text

    def close(self) -> None:
        """Release the connection pool."""
        self.session.close()

    # -- the calls ---------------------------------------------------------------------------

    def query_range(self, promql: str, start: datetime, end: datetime, step_seconds: int) -> list[dict[str, Any]]:
        """`/api/v1/query_range`; raises TooLarge when the server says the answer is too big."""
        return self.results(self.query_range_body(promql, start, end, step_seconds), "query_range")

    def query_range_body(self, promql: str, start: datetime, end: datetime, step_seconds: int) -> Body:
        """query_range's successful answer, undecoded (capplan.collect.matrix decodes large ones
        without a Python object per point; `results` decodes any)."""
        return self._call("query_range", "/api/v1/query_range", {
            "query": promql, "start": _ts(start), "end": _ts(end), "step": str(int(step_seconds)),
            "timeout": f"{int(self.options.timeout_seconds)}s"}, raw=True)

    def query(self, promql: str, at: datetime) -> list[dict[str, Any]]:
        """`/api/v1/query` at an explicit time (a range selector returns raw samples)."""
        return self.results(self.query_body(promql, at), "query")

    def query_body(self, promql: str, at: datetime) -> Body:
        """query's successful answer, undecoded (see query_range_body)."""
        return self._call("query", "/api/v1/query", {"query": promql, "time": _ts(at),
                                                      "timeout": f"{int(self.options.timeout_seconds)}s"}, raw=True)

    def results(self, body: Body, what: str) -> list[dict[str, Any]]:
        """The result list of a successful query or query_range answer (`what`), decoded and checked."""
        return _result(self._decode(body.data, body.content_type, what), what, self.display_url)

    def label_values(self, label: str, start: datetime, end: datetime, match: list[str] | None = None) -> list[str]:
        """`/api/v1/label/<label>/values` over [start, end] (index only, cheap)."""
        params: dict[str, Any] = {"start": _ts(start), "end": _ts(end)}
        if match:
            params["match[]"] = match
        data = self._call("labels", f"/api/v1/label/{urllib.parse.quote(label)}/values", params, method="GET")
        return _list(data, "labels", self.display_url)

    def series(self, match: str, start: datetime, end: datetime) -> list[dict[str, str]]:
        """`/api/v1/series`: label sets of the series matching `match` over [start, end]."""
        data = self._call("series", "/api/v1/series", {"match[]": match, "start": _ts(start), "end": _ts(end)})
        return _list(data, "series", self.display_url)

    def probe(self) -> None:
        """One cheap query that any Prometheus-compatible API answers (`1` at time 0); raises a
        one-line error saying what answered instead (an HTML page, another JSON) before anything
        is created."""
        data = self._call("probe", "/api/v1/query", {"query": "1", "time": "0"})
        # Prometheus answers a scalar, VictoriaMetrics a one-element vector
        if not isinstance(data, dict) or data.get("resultType") not in ("scalar", "vector"):
            raise BadInputError(f"malformed probe response from {self.display_url}: it answered /api/v1/query "
                                "without a Prometheus result; is this the Prometheus API base URL?")

    # -- retries and error mapping -----------------------------------------------------------

    def _call(self, what: str, path: str, params: dict[str, Any], method: str = "POST", raw: bool = False) -> Any:
        attempts = self.options.retries + 1
        delay = self.options.backoff_seconds
        url = self.base + path
        params = {**self.base_params, **params}
        for attempt in range(1, attempts + 1):
            with self._lock:
                self.queries += 1
            try:
                if method == "POST" and len(urllib.parse.urlencode(params, doseq=True)) > MAX_GET_QUERY:
                    resp = self.session.post(url, data=params, timeout=self.options.timeout_seconds, verify=self.verify)
                else:
                    resp = self.session.get(url, params=params, timeout=self.options.timeout_seconds, verify=self.verify)
                body = resp.content
            except requests.exceptions.SSLError as exc:
                raise SourceError(
                    f"TLS verification failed for {self.display_url}: {_short(exc)} (use --ca-file for a private CA)"
                ) from None
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                    requests.exceptions.ChunkedEncodingError) as exc:
                if attempt < attempts:
                    time.sleep(delay)
                    delay *= 2
                    continue
                if isinstance(exc, requests.exceptions.Timeout) or "timed out" in str(exc).lower():
                    cause = f"timed out after {self.options.timeout_seconds:g}s"
                else:
                    cause = f"cannot connect ({_short(exc)})"
                raise SourceError(f"{self.display_url}: {cause} ({attempts} attempt{'s' if attempts != 1 else ''})") from None
            except requests.exceptions.RequestException as exc:
                raise SourceError(f"{self.display_url}: {type(exc).__name__}: {_short(exc)}") from None
            status = resp.status_code
            if status == 200:
                content_type = resp.headers.get("Content-Type", "")
                return Body(body, content_type) if raw else self._decode(body, content_type, what)
            cause = self._redact(_error_text(body, resp.headers.get("Content-Type", "")))
            if status in (401, 403):
                raise SourceError(
                    f"{self.display_url} refused access (HTTP {status}{': ' + cause if cause else ''}); "
                    "check --token-file / $CAPPLAN_PROMETHEUS_TOKEN"
                ) from None
            if status in (400, 422, 503) and any(t in cause.lower() for t in TOO_LARGE_TEXTS):
                raise TooLarge(cause) from None
            if status in RETRY_STATUS and attempt < attempts:
                time.sleep(max(delay, _retry_after_seconds(resp.headers.get("Retry-After"))))
                delay *= 2
                continue
            after = f" after {attempt} attempts" if attempt > 1 else ""
            error = SourceError(f"{self.display_url} answered HTTP {status}{after} to {path}: {cause or 'no error text'}")
            error.status = status  # type: ignore[attr-defined]
            raise error from None
        raise AssertionError("unreachable")

    def _decode(self, body: bytes, content_type: str, what: str) -> Any:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            page = _html_title(body, content_type)
            if page is not None:
                raise BadInputError(f"malformed {what} response from {self.display_url}: an HTML page{page} answered, "
                                    "not the Prometheus HTTP API (give the API base URL, e.g. http://host:9090 or "
                                    "http://victoriametrics:8428)") from None
            raise BadInputError(f"malformed {what} response from {self.display_url}: not JSON ({str(exc)[:80]})") from None
        if not isinstance(doc, dict) or "data" not in doc:
            raise BadInputError(f"malformed {what} response from {self.display_url}: JSON without a `data` field")
        if doc.get("status") not in ("success", None):
            raise SourceError(f"{self.display_url} answered status {doc.get('status')!r} to {what}: "
                              f"{self._redact(_one_line(str(doc.get('error', ''))))}")
        return doc["data"]


MAX_RETRY_AFTER = 60.0  # seconds: a cron run waits no longer than this for one retry


def _retry_after_seconds(value: str | None) -> float:
    """Retry-After as seconds (delta-seconds or an HTTP date), 0 when absent, capped."""
    if not value:
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        try:
            from email.utils import parsedate_to_datetime

            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError, IndexError):
            return 0.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _utc(dt: datetime) -> datetime:
    """Naive datetimes are UTC in capplan."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _ts(dt: datetime) -> str:
    return f"{_utc(dt).timestamp():.3f}"


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text[:MAX_ERROR_TEXT] + ("..." if len(text) > MAX_ERROR_TEXT else "")


def _html_title(body: bytes, content_type: str) -> str | None:
    """' (title "X")' when the body is an HTML page, '' for an untitled one, None otherwise."""
    head = body[:4096].lstrip().lower()
    if "html" not in content_type.lower() and not head.startswith((b"<!doctype html", b"<html", b"<")):
        return None
    found = re.search(rb"<title[^>]*>(.*?)</title>", body[:65536], re.S | re.I)
    if not found:
        return ""
    return f' (title "{_one_line(found[1].decode("utf-8", "replace"))[:80]}")'


def _error_text(body: bytes, content_type: str) -> str:
    """The `error` field of a Prometheus/VictoriaMetrics error body, else what the body is."""
    try:
        doc = orjson.loads(body)
        if isinstance(doc, dict) and doc.get("error"):
            return _one_line(str(doc["error"]))
    except orjson.JSONDecodeError:
        pass
    page = _html_title(body, content_type)
    if page is not None:
        return f"an HTML page{page}"
    return _one_line(body.decode("utf-8", "replace"))


def _short(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ")
    # requests nests urllib3 reasons; the last parenthesised reason is the useful one
    found = re.findall(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if found:
        return found[-1].strip()
    return text[:200]


def _result(data: Any, what: str, url: str) -> list[dict[str, Any]]:
    if not isinstance(data, dict) or not isinstance(data.get("result"), list):
        raise BadInputError(f"malformed {what} response from {url}: no result list")
    result = data["result"]
    for item in result:
        if not isinstance(item, dict) or not isinstance(item.get("metric"), dict) or not (
            isinstance(item.get("values"), list) or isinstance(item.get("value"), list)
        ):
            raise BadInputError(f"malformed {what} response from {url}: a result lacks metric/values")
    return result


def _list(data: Any, what: str, url: str) -> list[Any]:
    if not isinstance(data, list):
        raise BadInputError(f"malformed {what} response from {url}: expected a list, got {type(data).__name__}")
    return data
