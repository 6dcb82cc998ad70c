"""What `capplan serve` is started with (the CLI builds it; nothing here parses text)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

DEFAULT_TERMINATION_LOG = Path("/dev/termination-log")
# Loopback by default: the API is opened to the network on purpose (the Deployment passes 0.0.0.0).
DEFAULT_HOST = "127.0.0.1"
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass
class ServeOptions:
    """Everything `capplan serve` takes."""

    db: Path | None
    host: str = DEFAULT_HOST
    port: int = 8080
    window: timedelta = timedelta(days=14)
    # Readiness fails when the newest finished collection is older than this; zero disables it.
    max_staleness: timedelta = timedelta(hours=2)
    collect_every: timedelta | None = None
    # Options for the child `capplan collect` (--step, ...; never a token or the URL itself).
    collect_args: list[str] = field(default_factory=list)
    # Passed to the child as $CAPPLAN_PROMETHEUS_URL.
    prometheus_url: str | None = None
    shutdown_timeout_seconds: float = 20.0
    termination_log: Path | None = DEFAULT_TERMINATION_LOG
    access_log: bool = False
    log_level: str = "info"
    # Seconds a request waits for a writer in another process before answering 503.
    lock_wait_seconds: float = 3.0
    # Bearer token the API requires (None: no auth). Read from --auth-token-file; never logged.
    auth_token: str | None = field(default=None, repr=False)
    # With a token: whether /metrics needs it too (probes never do).
    auth_metrics: bool = False
