"""Kubernetes quantities and durations: the one place they are parsed and formatted.

Quantities follow k8s.io/apimachinery/pkg/api/resource (quantity.go): a signed decimal number
with an optional suffix, either a binary SI suffix (Ki, Mi, Gi, Ti, Pi, Ei), a decimal SI suffix
(n, u, m, "", k, M, G, T, P, E) or a decimal exponent (e3, E3).
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from decimal import ROUND_CEILING, Decimal

from capplan.errors import BadInputError

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL_EXACT = {"n": "1e-9", "u": "1e-6", "m": "1e-3", "": "1", "k": "1e3", "M": "1e6", "G": "1e9",
                  "T": "1e12", "P": "1e15", "E": "1e18"}
# Far beyond any real memory size; int() of a longer Decimal would raise ValueError (4,300 digits).
_MAX_BYTES = Decimal("1e300")
_QUANTITY_RE = re.compile(
    r"^(?P<num>[+-]?(?:\d+\.?\d*|\.\d+))"
    r"(?:(?P<exp>[eE][+-]?\d+)|(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$"
)


def _parse_exact(text: str | int | float) -> Decimal:
    if isinstance(text, bool):
        raise BadInputError(f"not a Kubernetes quantity: {text!r}")
    if isinstance(text, (int, float)):
        # math.isfinite of a huge int overflows; ints are finite, floats may not be.
        if isinstance(text, float) and not math.isfinite(text):
            raise BadInputError(f"not a finite quantity: {text!r}")
        return Decimal(repr(text)) if isinstance(text, float) else Decimal(text)
    raw = str(text).strip()
    match = _QUANTITY_RE.match(raw)
    if match is None:
        raise BadInputError(f"not a Kubernetes quantity: {raw[:80]!r}")
    number = Decimal(match["num"])
    if match["exp"]:
        exponent = int(match["exp"][1:])
        if abs(exponent) > 30:
            raise BadInputError(f"quantity out of range: {raw[:80]!r}")
        return number.scaleb(exponent)
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    return number * Decimal(_DECIMAL_EXACT[suffix])


def parse_quantity(text: str | int | float) -> float:
    """Parse a Kubernetes quantity ("500m", "1.5Gi", "1e9", 2) into a plain number.

    Raises BadInputError (exit 4) naming the value when it is not a quantity.
    """
    value = float(_parse_exact(text))
    if not math.isfinite(value):
        raise BadInputError(f"quantity out of range: {str(text)[:80]!r}")
    return value


def parse_cpu_cores(text: str | int | float) -> float:
    """Parse a CPU quantity into cores ("250m" -> 0.25). Negative values are rejected."""
    cores = parse_quantity(text)
    if cores < 0:
        raise BadInputError(f"negative CPU quantity: {text!r}")
    return cores


def parse_memory_bytes(text: str | int | float) -> int:
    """Parse a memory quantity into whole bytes ("1.5Gi" -> 1610612736), rounding up as the
    apiserver does for fractional bytes. Negative values are rejected."""
    value = _parse_exact(text)
    if value < 0:
        raise BadInputError(f"negative memory quantity: {text!r}")
    if value > _MAX_BYTES:
        raise BadInputError(f"memory quantity out of range: {str(text)[:80]!r}")
    return int(value.to_integral_value(rounding=ROUND_CEILING))


def format_cpu(cores: float | None) -> str:
    """Format cores the way kubectl shows them: "250m" below ten cores when fractional, else cores."""
    if cores is None or (isinstance(cores, float) and math.isnan(cores)):
        return ""
    if cores == int(cores) and cores >= 1:
        return str(int(cores))
    millis = round(cores * 1000)
    return f"{millis}m"


def format_bytes(value: float | int | None) -> str:
    """Format bytes with the largest binary suffix that keeps a readable number ("1.5Gi")."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    value = float(value)
    for suffix, factor in (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if abs(value) >= factor:
            scaled = value / factor
            text = f"{scaled:.1f}".rstrip("0").rstrip(".")
            return f"{text}{suffix}"
    return str(int(round(value)))


_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as "30s", "5m", "6h", "14d", "1h30m" (Prometheus style).

    Raises BadInputError naming the value when it is not a positive duration.
    """
    raw = str(text).strip()
    pos = 0
    seconds = 0.0
    for match in _DURATION_RE.finditer(raw):
        if match.start() != pos:
            break
        seconds += float(match[1]) * _DURATION_UNITS[match[2]]
        pos = match.end()
    if pos != len(raw) or not raw or seconds <= 0 or not math.isfinite(seconds):
        raise BadInputError(f"not a duration (use e.g. 30s, 5m, 6h, 14d): {raw[:80]!r}")
    try:
        return timedelta(seconds=seconds)
    except OverflowError as exc:  # beyond timedelta's 999,999,999 days
        raise BadInputError(f"duration out of range: {raw[:80]!r}") from exc


def format_duration(delta: timedelta) -> str:
    """Format a duration with the largest exact unit ("14d", "90m", "45s")."""
    seconds = delta.total_seconds()
    for unit in ("d", "h", "m", "s"):
        size = _DURATION_UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def cpu_quantity(cores: float) -> str:
    """A CPU value as a manifest quantity, rounded UP to the millicore (the apiserver's
    precision for CPU): whole cores as "2", else millicores "250m"."""
    millis = math.ceil(round(cores * 1000, 6))  # round() first: 0.29 * 1000 is 289.99999999999994
    if millis <= 0:
        raise BadInputError(f"CPU quantity must be positive: {cores!r}")
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def memory_quantity(value_bytes: float) -> str:
    """A memory value as a manifest quantity, rounded UP to the mebibyte: "512Mi", or "2Gi"
    when it is a whole number of gibibytes."""
    mib = math.ceil(round(value_bytes / 2**20, 6))
    if mib <= 0:
        raise BadInputError(f"memory quantity must be positive: {value_bytes!r}")
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"
