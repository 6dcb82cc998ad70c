"""One value as table text: humanised units (1.5Gi), yes/no, unset as empty."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from capplan.quantity import format_bytes

_NOT_BYTES = ("ratio", "share", "pct", "containers", "count", "points", "days", "probability", "rank", "pods")


def _is_bytes_column(name: str) -> bool:
    # CSV keeps bytes; a table shows 1.5Gi. Contract names like memory_request_current carry no
    # unit suffix, so any memory amount that is not a ratio or a count is bytes.
    if name.endswith("_bytes"):
        return True
    if name.endswith(("_gib", "_mib")):  # already in a named unit (memory_savings_gib)
        return False
    return name.startswith("memory") and not any(word in name for word in _NOT_BYTES)


def _is_spec_column(name: str) -> bool:
    """Requests, limits and QoS: null there means "not known" (no spec data), shown as "?" so it
    is never read as zero or as "not set" (issue 13). Quota columns are null for "no quota"."""
    return not name.startswith("quota_") and (
        "request" in name or "limit" in name or name.startswith("qos") or name == "pods")


def cell(name: str, value: Any) -> str:
    if value is None:
        return "?" if _is_spec_column(name) else ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and math.isinf(value):
        return "unbounded" if value > 0 else "-unbounded"
    if _is_bytes_column(name) and isinstance(value, (int, float)):
        return format_bytes(value)
    if isinstance(value, float):
        if name.endswith("_ratio") or name.endswith("_share"):
            # two decimals, but a small non-zero share keeps its first digits (0.001, not 0.00)
            return f"{value:.2f}" if value == 0 or abs(value) >= 0.01 else f"{value:.2g}"
        return f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)
