"""Query-string parameters: declared per endpoint, validated before any analysis runs.

Each endpoint declares its parameters (name, kind, default, doc); the same declarations
validate a request (400 with the reason) and describe the endpoint in /openapi.json.
Repeatable parameters take `?node=a&node=b` or `?node=a,b`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from capplan import options
from capplan.errors import UsageError

Kind = Literal["duration", "number", "integer", "string", "list", "bool"]

# OpenAPI type of each kind (durations and quantities are strings such as 14d, 500m, 1Gi).
OPENAPI_TYPES: dict[str, dict[str, Any]] = {
    "duration": {"type": "string", "pattern": "^([0-9.]+(ms|s|m|h|d|w|y))+$"},
    "number": {"type": "number"},
    "integer": {"type": "integer"},
    "string": {"type": "string"},
    "list": {"type": "array", "items": {"type": "string"}},
    "bool": {"type": "boolean"},
}


@dataclass(frozen=True)
class Param:
    """One query parameter of an endpoint."""

    name: str
    kind: Kind
    doc: str
    default: Any = None
    choices: tuple[str, ...] = ()


def _one(name: str, values: Sequence[str]) -> str:
    # The last value wins when a single-valued parameter is repeated (as in most web frameworks).
    return values[-1]


def _convert(param: Param, values: Sequence[str]) -> Any:
    if param.kind == "list":
        return [item for value in values for item in value.split(",") if item]
    text = _one(param.name, values)
    if param.kind == "duration":
        return options.duration(text, param.name, options.api_spelling)
    if param.kind == "number":
        try:
            value = float(text)
        except ValueError:
            raise UsageError(f"{param.name} must be a number, not {text!r}") from None
        if not math.isfinite(value):
            raise UsageError(f"{param.name} must be a finite number")
        return value
    if param.kind == "integer":
        try:
            return int(text)
        except ValueError:
            raise UsageError(f"{param.name} must be a whole number, not {text!r}") from None
    if param.kind == "bool":
        lowered = text.lower()
        if lowered not in ("true", "false", "1", "0"):
            raise UsageError(f"{param.name} must be true or false, not {text!r}")
        return lowered in ("true", "1")
    if param.choices and text not in param.choices:
        raise UsageError(f"{param.name} must be one of {', '.join(param.choices)}, not {text!r}")
    return text


def parse_query(declared: Sequence[Param], query: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """Every declared parameter by name (its default when absent); an unknown name is a 400."""
    by_name = {p.name: p for p in declared}
    # An empty value (`?window=`) is the same as leaving the parameter out.
    query = {k: [v for v in values if v != ""] for k, values in query.items()}
    query = {k: values for k, values in query.items() if values}
    unknown = sorted(set(query) - set(by_name))
    if unknown:
        raise UsageError(f"unknown parameter(s) {', '.join(unknown)}; allowed: {', '.join(by_name) or 'none'}")
    out: dict[str, Any] = {}
    for param in declared:
        values = query.get(param.name)
        if values:
            out[param.name] = _convert(param, values)
        else:
            out[param.name] = [] if param.kind == "list" and param.default is None else param.default
    return out


def canonical(query: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """A hashable form of parsed parameters (the cache key)."""
    def freeze(value: Any) -> Any:
        if isinstance(value, list):
            return tuple(value)
        if isinstance(value, timedelta):
            return value.total_seconds()
        return value
    return tuple(sorted((k, freeze(v)) for k, v in query.items()))
