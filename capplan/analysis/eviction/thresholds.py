"""Eviction thresholds (`memory.available<100Mi`, `10%`) as bytes of a node's capacity."""

from __future__ import annotations

from capplan.errors import BadInputError
from capplan.quantity import parse_memory_bytes


def threshold_bytes(spec: str, capacity_bytes: float) -> int:
    """An eviction threshold (`100Mi`, `1Gi`, `5%`) in bytes for a node of that capacity
    (pkg/kubelet/eviction/api `GetThresholdQuantity`: a percentage is of capacity)."""
    text = str(spec).strip()
    if text.endswith("%"):
        try:
            share = float(text[:-1])
        except ValueError:
            raise BadInputError(f"eviction threshold {spec!r}: not a quantity or percentage") from None
        if not 0 <= share <= 100:
            raise BadInputError(f"eviction threshold {spec!r}: a percentage must be within 0..100")
        # GetThresholdQuantity: int64(float64(capacity.Value()) * float64(percentage))
        return int(float(capacity_bytes) * share / 100.0)
    try:
        value = parse_memory_bytes(text)
    except BadInputError as exc:
        raise BadInputError(f"eviction threshold {spec!r}: {exc}") from None
    if value < 0:
        raise BadInputError(f"eviction threshold {spec!r} is negative")
    return value


def check_threshold(spec: str) -> str:
    """Validate a threshold spec early (exit 4 on a bad one)."""
    threshold_bytes(spec, 1)
    return spec
