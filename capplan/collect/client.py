"""HTTP access to a Prometheus-compatible API (Prometheus, Thanos, Mimir, VictoriaMetrics).

Built on prometheus-api-client's PrometheusConnect with our own requests.Session so that we
control retries, TLS, auth and encoding:

- bounded retries with exponential backoff for connection errors, timeouts, 408/429/5xx;
  401/403 and other 4xx are not retried (they will not heal by themselves);
- `Accept-Encoding: identity`: on large answers gzip costs ~2.6x the time on a fast link;
- the bearer token comes from a file or the environment and never appears in a message;
- every failure becomes a one-line SourceError (exit 3) naming the URL and the cause, or a
  BadInputError (exit 4) for a malformed answer.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.parse
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from capplan.errors import BadInputError, SourceError, UsageError

RETRY_STATUS = {408, 429, 500, 502, 503, 504}
_STATUS_RE = re.compile(r"HTTP Status Code (\d{3}) \((.*)\)\s*$", re.S)


class TooLarge(Exception):
    """The server refused a query as too large (too many samples or points): split it."""


def redact_url(url: str) -> str:
    """The URL without user:password@ and without a query string (for messages and the DB)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


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
        self.url = options.url.rstrip("/")
        self.display_url = redact_url(options.url)
        self.queries = 0
        self._lock = threading.Lock()
        session = requests.Session()
        if options.insecure_skip_tls_verify:
            session.verify = False
            warnings.filterwarnings("ignore", message="Unverified HTTPS request")
        elif options.ca_file:
            session.verify = options.ca_file
        # Retry-After of the last answer, per thread (prometheus-api-client hides the response).
        self._retry_after = threading.local()
        session.hooks["response"].append(self._remember_retry_after)
        headers = {"Accept-Encoding": "identity", "Accept": "application/json", **options.extra_headers}
        if options.token:
            headers["Authorization"] = f"Bearer {options.token}"
        if parts.username:
            session.auth = (urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or ""))
            self.url = redact_url(options.url) + (f"?{parts.query}" if parts.query else "")
        # Our own retry loop below; urllib3 must not retry behind our back.
        no_retry = Retry(total=0, connect=0, read=0, status=0, redirect=3, raise_on_status=False)
        self.prom = PrometheusConnect(url=self.url, headers=headers, retry=no_retry, session=session,
                                      timeout=options.timeout_seconds)
        adapter = HTTPAdapter(max_retries=no_retry, pool_connections=options.pool_size, pool_maxsize=options.pool_size)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        self.prom._session.mount(self.url, adapter)

    def _redact(self, text: str) -> str:
        """`text` without the token or the URL's password (servers may echo what they received)."""
        for secret in (self.options.token, urllib.parse.urlsplit(self.options.url).password):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _remember_retry_after(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._retry_after.seconds = _retry_after_seconds(response.headers.get("Retry-After"))

    def close(self) -> None:
        """Release the connection pool."""
        self.prom.close()

    # -- the calls ---------------------------------------------------------------------------

    def query_range(self, promql: str, start: datetime, end: datetime, step_seconds: int) -> list[dict[str, Any]]:
        """`/api/v1/query_range`; raises TooLarge when the server says the answer is too big."""
        return self._call(
            "query_range",
            lambda: self.prom.custom_query_range(
                promql, start_time=_utc(start), end_time=_utc(end), step=str(int(step_seconds)),
                params={"timeout": f"{int(self.options.timeout_seconds)}s"},
            ),
        )

    def query(self, promql: str, at: datetime) -> list[dict[str, Any]]:
        """`/api/v1/query` at an explicit time."""
        return self._call(
            "query",
            lambda: self.prom.custom_query(promql, params={"time": f"{_utc(at).timestamp():.3f}",
                                                           "timeout": f"{int(self.options.timeout_seconds)}s"}),
        )

    def label_values(self, label: str, start: datetime, end: datetime, match: list[str] | None = None) -> list[str]:
        """`/api/v1/label/<label>/values` over [start, end] (index only, cheap)."""
        params: dict[str, Any] = {"start": f"{_utc(start).timestamp():.3f}", "end": f"{_utc(end).timestamp():.3f}"}
        if match:
            params["match[]"] = match
        return self._call("labels", lambda: self.prom.get_label_values(label, params=params), kind="list")

    def series(self, match: str, start: datetime, end: datetime) -> list[dict[str, str]]:
        """`/api/v1/series`: label sets of the series matching `match` over [start, end]."""
        return self._call("series", lambda: self.prom.get_series(_utc(start), _utc(end), params={"match[]": match}),
                          kind="list")

    # -- retries and error mapping -----------------------------------------------------------

    def _call(self, what: str, fn, kind: str = "result") -> Any:
        attempts = self.options.retries + 1
        delay = self.options.backoff_seconds
        for attempt in range(1, attempts + 1):
            with self._lock:
                self.queries += 1
            self._retry_after.seconds = 0.0
            try:
                data = fn()
            except PrometheusApiClientException as exc:
                status, body = _status_of(exc)
                cause = self._redact(_error_text(body))  # a proxy may echo the Authorization header
                if status in (401, 403):
                    raise SourceError(
                        f"{self.display_url} refused access (HTTP {status}{': ' + cause if cause else ''}); "
                        "check --token-file / $CAPPLAN_PROMETHEUS_TOKEN"
                    ) from None
                if status == 422 or (status == 400 and ("too many" in cause or "11,000" in cause or "resolution" in cause)):
                    raise TooLarge(cause or f"HTTP {status}") from None
                if status in RETRY_STATUS and attempt < attempts:
                    time.sleep(max(delay, self._retry_after.seconds))  # the server's Retry-After, if longer
                    delay *= 2
                    continue
                after = f" after {attempt} attempts" if attempt > 1 else ""
                error = SourceError(f"{self.display_url} answered HTTP {status}{after}: {cause or 'no error text'}")
                error.status = status  # type: ignore[attr-defined]
                raise error from None
            except requests.exceptions.JSONDecodeError as exc:
                raise BadInputError(f"malformed {what} response from {self.display_url}: not JSON ({_short(exc)})") from None
            except requests.exceptions.SSLError as exc:
                raise SourceError(
                    f"TLS verification failed for {self.display_url}: {_short(exc)} (use --ca-file for a private CA)"
                ) from None
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
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
            except (ValueError, KeyError, TypeError, IndexError) as exc:  # JSON decode or shape
                raise BadInputError(f"malformed {what} response from {self.display_url}: {_short(exc)}") from None
            return _check(data, kind, what, self.display_url)
        raise AssertionError("unreachable")


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

            seconds = (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds()
        except (TypeError, ValueError, IndexError):
            return 0.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _utc(dt: datetime) -> datetime:
    """Naive datetimes are UTC in capplan (prometheus-api-client would take them as local time)."""
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def _status_of(exc: PrometheusApiClientException) -> tuple[int, str]:
    match = _STATUS_RE.search(str(exc))
    if not match:
        return 0, str(exc)
    return int(match[1]), match[2]


def _error_text(body: str) -> str:
    """The `error` field of a Prometheus error body, else the body's first line, shortened."""
    text = body
    if text.startswith(("b'", 'b"')):
        text = text[2:-1]
    found = re.search(r'"error"\s*:\s*"((?:[^"\\]|\\.)*)"', text)
    if found:
        text = found[1]
    text = text.replace("\\n", " ").strip()
    return text.splitlines()[0][:200] if text else ""


def _short(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ")
    # requests nests urllib3 reasons; the last parenthesised reason is the useful one
    found = re.findall(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if found:
        return found[-1].strip()
    return text[:200]


def _check(data: Any, kind: str, what: str, url: str) -> Any:
    if not isinstance(data, list):
        raise BadInputError(f"malformed {what} response from {url}: expected a list, got {type(data).__name__}")
    if kind == "result":
        for item in data:
            if not isinstance(item, dict) or not isinstance(item.get("metric"), dict) or not (
                isinstance(item.get("values"), list) or isinstance(item.get("value"), list)
            ):
                raise BadInputError(f"malformed {what} response from {url}: a result lacks metric/values")
    return data
