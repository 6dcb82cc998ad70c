"""Hypothesis-generated long-format frames against a plain-Python model of the gate: a file is
refused iff some row is bad by the model, the message names the first bad row's line and column
and counts the bad rows, and a refused file leaves the database as it was; an accepted one stores
one sample per container and time."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capplan.errors import BadInputError
from capplan.importer import import_long_format

NOW = datetime.now(UTC).replace(tzinfo=None)
PAST = datetime(2026, 11, 10)
NUMBERS = st.one_of(
    st.floats(min_value=0, max_value=64, allow_nan=False),
    st.sampled_from([math.nan, math.inf, -math.inf, -1.0, -1e-9, 1e19, 9.3e18, 2e4, 2.0**50 * 2, 0.0]),
)
ROW = st.fixed_dictionaries({
    "pod": st.sampled_from(["a", "b", ""]),
    "minute": st.integers(0, 5),
    "future": st.sampled_from([False] * 9 + [True]),
    "cpu_cores": NUMBERS,
    "memory_bytes": NUMBERS.map(lambda v: v * 2**20 if math.isfinite(v) and 0 <= v <= 64 else v),
})


def _value_bad(column: str, v: float) -> bool:
    upper = 10_000 if column == "cpu_cores" else 2.0**50
    return math.isnan(v) or math.isinf(v) or v < 0 or v > upper


def model(rows: list[dict]) -> tuple[int | None, str | None, int]:
    """(index of the first bad row, its column, number of bad rows) by the rules of docs/import.md."""
    bad = []
    for i, r in enumerate(rows):
        if r["pod"] == "":
            bad.append((i, "pod"))
        elif r["future"]:
            bad.append((i, "timestamp"))
        elif _value_bad("cpu_cores", r["cpu_cores"]):
            bad.append((i, "cpu_cores"))
        elif _value_bad("memory_bytes", r["memory_bytes"]):
            bad.append((i, "memory_bytes"))
    if bad:
        return bad[0][0], bad[0][1], len(bad)
    seen: dict[tuple, tuple] = {}
    clashes = []
    for i, r in enumerate(rows):
        key = (r["pod"], r["minute"])
        value = (r["cpu_cores"], round(r["memory_bytes"]))
        if key in seen and seen[key] != value:
            clashes.append(i)
        seen.setdefault(key, value)
    if clashes:
        return clashes[0], None, -1
    return None, None, 0


def _write(rows: list[dict], path: Path) -> None:
    frame = pl.DataFrame({
        "namespace": ["ns"] * len(rows), "pod": [r["pod"] for r in rows], "container": ["c"] * len(rows),
        "timestamp": [(NOW + timedelta(days=400) if r["future"] else PAST + timedelta(minutes=r["minute"]))
                      for r in rows],
        "cpu_cores": [r["cpu_cores"] for r in rows], "memory_bytes": [r["memory_bytes"] for r in rows],
    })
    if path.suffix == ".csv":
        frame.with_columns(pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%SZ")).write_csv(path)
    else:
        frame.write_parquet(path)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(ROW, min_size=1, max_size=12))
def test_gate_matches_the_model(rows, suffix, tmp_path) -> None:
    path = tmp_path / f"rows{suffix}"
    db = tmp_path / "db.duckdb"
    db.unlink(missing_ok=True)
    _write(rows, path)
    first, column, count = model(rows)
    if first is None:
        summary = import_long_format(path, db)
        distinct = {(r["pod"], r["minute"]) for r in rows}
        assert summary.samples == len(distinct)
        con = duckdb.connect(str(db), read_only=True)
        assert con.execute("SELECT count(*) FROM usage_samples").fetchone()[0] == len(distinct)
        con.close()
        return
    with pytest.raises(BadInputError) as refused:
        import_long_format(path, db)
    line = first + (2 if suffix == ".csv" else 1)
    message = str(refused.value)
    if column is not None:
        assert message.startswith(f"{path}:{line}: {column}: "), (message, rows)
        assert f"({count:,} bad row" in message, message
    else:
        assert "the same container and time twice" in message, message
    assert not db.exists()
