"""Comparing two answers of capplan row for row, cell for cell.

Floats are compared to 1e-9 of their size: DuckDB sums in parallel in no fixed order, so an
aggregate of floats can differ in its last bits between two runs over the same database (forecast
on the bundled sample does, run after run). Everything else must be equal.
"""

from __future__ import annotations

import io

import polars as pl
from polars.testing import assert_frame_equal

FLOAT_RTOL = 1e-9


def read_csv(text: str) -> pl.DataFrame:
    """A CSV answer as a frame (every column as the CSV types it)."""
    return pl.read_csv(io.StringIO(text), infer_schema_length=None)


def assert_same_frames(got: pl.DataFrame, expected: pl.DataFrame) -> None:
    """Same columns in the same order, same rows in the same order, floats to FLOAT_RTOL."""
    assert got.columns == expected.columns
    assert got.height == expected.height
    assert_frame_equal(got, expected, check_exact=False, rel_tol=FLOAT_RTOL, abs_tol=0.0, check_dtypes=False)


def assert_same_csv(got: str, expected: str) -> None:
    """Two CSV answers: the same header, and the same rows in order (floats to FLOAT_RTOL)."""
    assert got.splitlines()[:1] == expected.splitlines()[:1]
    assert_same_frames(read_csv(got), read_csv(expected))
