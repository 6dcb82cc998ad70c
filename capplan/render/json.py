"""JSON: a list of objects keyed like the CSV columns (bytes as integers, NaN as null)."""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import polars as pl


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):  # DuckDB sums of BIGINT come back as DECIMAL
        value = float(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    return value


def to_records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts with JSON-safe values (bytes as integers, NaN as null)."""
    records = []
    for row in frame.iter_rows(named=True):
        record = {}
        for key, value in row.items():
            value = _json_value(value)
            if key.endswith("_bytes") and isinstance(value, float) and math.isfinite(value):
                value = int(round(value))
            record[key] = value
        records.append(record)
    return records


def to_json(frame: pl.DataFrame) -> str:
    """JSON text: a list of objects keyed like the CSV columns."""
    return json.dumps(to_records(frame), indent=1, default=str)
