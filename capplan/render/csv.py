"""CSV by the CONTRACT conventions: one header row, ',' separator, CPU in cores (float), memory
in bytes (integer), timestamps ISO 8601 UTC, unset values as empty cells."""

from __future__ import annotations

import json

import polars as pl


def _csv_frame(frame: pl.DataFrame) -> pl.DataFrame:
    exprs = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if dtype == pl.Datetime or isinstance(dtype, pl.Datetime):
            exprs.append(col.dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias(name))
        elif dtype.is_float() and name.endswith("_bytes"):
            # whole bytes; an unbounded sum (a container without a limit) is written "inf"
            exprs.append(
                pl.when(col.is_infinite()).then(pl.lit("inf"))
                .otherwise(col.round(0).cast(pl.Int64, strict=False).cast(pl.Utf8)).alias(name)
            )
        elif isinstance(dtype, (pl.List, pl.Struct)):
            exprs.append(col.map_elements(lambda v: json.dumps(v, default=str), return_dtype=pl.Utf8).alias(name))
        else:
            exprs.append(col)
    return frame.select(exprs)


def to_csv(frame: pl.DataFrame) -> str:
    """CSV text of a frame by the CONTRACT conventions."""
    out = _csv_frame(frame)
    out = out.with_columns([pl.col(c).fill_nan(None) for c, t in out.schema.items() if t.is_float()])
    return out.write_csv(null_value="", float_precision=None)
