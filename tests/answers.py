"""Comparing two answers of capplan row for row, cell for cell.

Cells are compared as the CSV writes them; two cells that differ must both be numbers within 1e-9
of each other's size: DuckDB sums in parallel in no fixed order, so an aggregate of floats can
differ in its last bits between two runs over the same database (forecast on the bundled sample
does, run after run). Everything else must be equal.
"""

from __future__ import annotations

import io
import math

import polars as pl

FLOAT_RTOL = 1e-9


def read_csv(text: str) -> pl.DataFrame:
    """A CSV answer as a frame of strings (empty cells are None)."""
    return pl.read_csv(io.StringIO(text), infer_schema=False)


def _close(a: str | None, b: str | None) -> bool:
    if a == b:
        return True
    if a is None or b is None:
        return False
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return math.isclose(x, y, rel_tol=FLOAT_RTOL, abs_tol=0.0)


def assert_same_frames(got: pl.DataFrame, expected: pl.DataFrame) -> None:
    """Same columns in the same order, same rows in the same order, cells equal (numbers to
    FLOAT_RTOL). Frames of strings, as read_csv gives them."""
    assert got.columns == expected.columns
    assert got.height == expected.height
    for column in got.columns:
        for row, (a, b) in enumerate(zip(got[column].to_list(), expected[column].to_list(), strict=True)):
            assert _close(a, b), f"row {row}, column {column}: {a!r} != {b!r}"


def assert_same_csv(got: str, expected: str) -> None:
    """Two CSV answers: the same header, and the same rows in order (numbers to FLOAT_RTOL)."""
    assert got.splitlines()[:1] == expected.splitlines()[:1]
    assert_same_frames(read_csv(got), read_csv(expected))


def rows_of_cluster(fleet_csv: str, cluster: str) -> pl.DataFrame:
    """The rows of one cluster in a fleet answer (its leading cluster column dropped)."""
    frame = read_csv(fleet_csv)
    assert frame.columns[0] == "cluster"
    return frame.filter(pl.col("cluster") == cluster).drop("cluster")
