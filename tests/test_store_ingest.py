"""store.write_usage against a plain-Python model of what it must store.

write_usage has a fast path for frames grouped by series with rising timestamps and no stored
samples in the chunk's range (issue 8, ingest speed); these cases drive every path: shuffled and
grouped rows, duplicates within a frame (last wins), overlaps with stored samples, new and known
series, a missing node column.
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capplan import store

T0 = datetime(2026, 11, 1)
SERIES = [("ns-a", "p1", "c1", "n1"), ("ns-a", "p1", "c2", "n1"), ("ns-b", "p2", "c1", "n2"), ("ns-b", "p3", "c1", "")]

row = st.tuples(st.integers(0, len(SERIES) - 1), st.integers(0, 11), st.integers(1, 1000), st.integers(1, 10**9))
frame_rows = st.lists(row, min_size=1, max_size=40)


def _frame(rows: list[tuple[int, int, int, int]], grouped: bool) -> pl.DataFrame:
    if grouped:  # by series, time rising: the collector's and the generator's layout
        rows = sorted(rows, key=lambda r: (r[0], r[1]))
    return pl.DataFrame({
        "namespace": [SERIES[s][0] for s, *_ in rows],
        "pod": [SERIES[s][1] for s, *_ in rows],
        "container": [SERIES[s][2] for s, *_ in rows],
        "node": [SERIES[s][3] for s, *_ in rows],
        "ts": [T0 + timedelta(minutes=5 * t) for _, t, _, _ in rows],
        "cpu_cores": [c / 1000 for _, _, c, _ in rows],
        "memory_bytes": [m for *_, m in rows],
    })


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(writes=st.lists(st.tuples(frame_rows, st.booleans()), min_size=1, max_size=3))
def test_write_usage_matches_a_plain_model(writes: list[tuple[list, bool]]) -> None:
    expected: dict[tuple[int, int], tuple[float, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        con = store.open_db(Path(tmp) / "db.duckdb")
        try:
            for rows, grouped in writes:
                frame = _frame(rows, grouped)
                # model: within the frame the last row of a (series, ts) wins; stored ones stay
                last: dict[tuple[int, int], tuple[float, int]] = {}
                for s, t, c, m in (rows if not grouped else sorted(rows, key=lambda r: (r[0], r[1]))):
                    last[(s, t)] = (c / 1000, m)
                new = {k: v for k, v in last.items() if k not in expected}
                with store.transaction(con):
                    assert store.write_usage(con, frame) == len(new)
                expected.update(new)
            stored = con.execute(
                "SELECT s.namespace, s.pod, s.container, s.node, u.ts, u.cpu_cores, u.memory_bytes "
                "FROM usage_samples AS u JOIN series AS s USING (series_id)"
            ).fetchall()
            got = {
                (SERIES.index((ns, pod, ctr, node)), int((ts - T0) / timedelta(minutes=5))): (round(cpu, 6), mem)
                for ns, pod, ctr, node, ts, cpu, mem in stored
            }
            assert len(stored) == len(got)  # no (series, ts) twice
            assert got.keys() == expected.keys()
            for key, (cpu, mem) in expected.items():
                # stored in whole millicores (exact here: the model's CPU is c/1000) and whole KiB:
                # the nearest multiple of 1024 bytes (schema 003)
                assert got[key][0] == round(float(pl.Series([cpu], dtype=pl.Float32)[0]), 6)
                assert got[key][1] % 1024 == 0 and abs(got[key][1] - mem) <= 512
            series_rows = con.execute("SELECT count(*), count(DISTINCT series_id) FROM series").fetchone()
            assert series_rows[0] == series_rows[1] == len({s for s, _ in expected})
        finally:
            con.close()


def test_frame_without_node_column_lands_with_empty_node(tmp_path: Path) -> None:
    con = store.open_db(tmp_path / "db.duckdb")
    frame = _frame([(0, 0, 100, 5), (0, 1, 200, 6)], grouped=True).drop("node")
    assert store.write_usage(con, frame) == 2
    assert con.execute("SELECT DISTINCT node FROM series").fetchall() == [("",)]
    assert store.write_usage(con, frame) == 0  # the same window again adds nothing
    con.close()


def test_interleaved_series_and_repeated_runs(tmp_path: Path) -> None:
    # series A, B, A again: A is two runs, so the frame is not "clustered" and must be deduped and sorted
    con = store.open_db(tmp_path / "db.duckdb")
    frame = _frame([(0, 0, 1, 1024), (1, 0, 2, 2048), (0, 1, 3, 3072), (0, 0, 4, 4096)], grouped=False)
    assert store.write_usage(con, frame) == 3  # (A, t0) twice: the later row (cpu 0.004) wins
    rows = con.execute(
        "SELECT s.container, u.ts, u.memory_bytes FROM usage_samples u JOIN series s USING (series_id) "
        "ORDER BY s.container, u.ts"
    ).fetchall()
    assert rows == [("c1", T0, 4096), ("c1", T0 + timedelta(minutes=5), 3072), ("c2", T0, 2048)]
    con.close()
