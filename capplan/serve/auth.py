"""Optional bearer-token authentication (`--auth-token-file`).

The token is compared in constant time (hmac.compare_digest) and never logged, echoed or put
in an error. The probes (/healthz, /readyz) are always open, since the kubelet sends no token;
/metrics is open unless --auth-metrics (Prometheus can send a bearer token:
`authorization.credentials_file` or a ServiceMonitor's `bearerTokenSecret`).
"""

from __future__ import annotations

import hmac
from pathlib import Path

from capplan.errors import UsageError

ALWAYS_OPEN = frozenset({"/healthz", "/readyz"})


def read_token_file(path: Path) -> str:
    """The token in `path` (surrounding whitespace removed); wrong usage when unreadable or empty."""
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise UsageError(f"--auth-token-file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--auth-token-file {path} is not text") from None
    if not token:
        raise UsageError(f"--auth-token-file {path} is empty")
    return token


def open_paths(auth_metrics: bool) -> frozenset[str]:
    """Paths answered without a token."""
    return ALWAYS_OPEN if auth_metrics else ALWAYS_OPEN | {"/metrics"}


def authorized(header: str | None, token: str) -> bool:
    """Whether an Authorization header carries the token (`Bearer TOKEN`), in constant time."""
    if not header:
        return False
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.strip().encode(), token.encode())
