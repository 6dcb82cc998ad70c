"""series_parts.run_parts: a per-series exact percentile run over several parts of the series gives
the rows of one part and of numpy on the written samples; the parts are contiguous ranges of
series ids covering every id once, each a query of its own."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from capplan import store
from capplan.analysis import series_parts

T0 = datetime(2026, 5, 1)
SERIES = 150  # more than two stored blocks of series (store.CLUSTER_SERIES_BLOCK = 64): up to three parts
STEPS = 40

# the query a part runs: a percentile and a count per series of the part's id range
PART_SQL = """
SELECT series_id, count(*) AS samples, quantile_cont(cpu_mcores, 0.9) AS cpu_p90_mcores
FROM usage_raw WHERE series_id BETWEEN $first_id AND $last_id GROUP BY series_id ORDER BY series_id
"""


@pytest.fixture(scope="module")
def samples() -> pl.DataFrame:
    rng = np.random.default_rng(14)
    n = SERIES * STEPS
    # a series' samples are a random count of the steps (some series have few)
    keep = rng.random(n) < np.repeat(rng.uniform(0.2, 1.0, SERIES), STEPS)
    return pl.DataFrame({
        "namespace": ["ns"] * n, "pod": [f"p{i:03d}" for i in range(SERIES) for _ in range(STEPS)],
        "container": ["c"] * n, "node": ["n1"] * n,
        "ts": [T0 + timedelta(minutes=5 * s) for _ in range(SERIES) for s in range(STEPS)],
        "cpu_cores": rng.integers(0, 4000, n) / 1000, "memory_bytes": rng.uniform(1e6, 1e9, n),
    }).filter(pl.Series(keep))


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, samples: pl.DataFrame) -> Path:
    path = tmp_path_factory.mktemp("parts") / "db.duckdb"
    con = store.open_db(path)
    with store.transaction(con):
        store.write_usage(con, samples)
    con.close()
    return path


def _brute_force(con, samples: pl.DataFrame) -> dict[int, tuple[int, float]]:
    """Per series id: the sample count and numpy's linear p90 of the written millicores."""
    ids = dict(con.execute("SELECT pod, series_id FROM series").fetchall())
    out = {}
    for (pod,), rows in samples.group_by("pod"):
        mcores = np.round(rows["cpu_cores"].to_numpy() * 1000)
        out[ids[pod]] = (rows.height, float(np.percentile(mcores, 90)))
    return out


def _run(con, start: datetime, end: datetime, samples_per_part: int, *, open_ends: bool = False):
    parts: list[series_parts.Part] = []

    def run_part(part: series_parts.Part) -> pl.DataFrame:
        parts.append(part)
        return con.execute(PART_SQL.replace("$first_id", str(part.first_id)).replace("$last_id", str(part.last_id))).pl()

    return series_parts.run_parts(con, start, end, run_part, samples_per_part, open_ends=open_ends), parts


def test_several_parts_equal_one_and_numpy(db: Path, samples: pl.DataFrame) -> None:
    con = store.open_db(db, read_only=True)
    try:
        start, end = store.sample_range(con)
        expected = _brute_force(con, samples)
        one, one_parts = _run(con, start, end, 10**9)
        assert len(one_parts) == 1
        for per_part in (samples.height // 2, samples.height // 3, 1):
            many, parts = _run(con, start, end, per_part)
            assert len(parts) > 1
            assert [p.part for p in parts] == list(range(len(parts)))
            assert all(p.parts == len(parts) for p in parts)
            # contiguous ranges from the first id with samples to the last, each once
            ids = sorted(expected)
            assert parts[0].first_id == ids[0] and parts[-1].last_id == ids[-1]
            assert all(b.first_id == a.last_id + 1 for a, b in zip(parts, parts[1:], strict=False))
            assert many.equals(one)
        got = {r["series_id"]: (r["samples"], r["cpu_p90_mcores"]) for r in one.iter_rows(named=True)}
        assert got.keys() == expected.keys()
        for series_id, (count, p90) in expected.items():
            assert got[series_id][0] == count
            assert got[series_id][1] == pytest.approx(p90, rel=1e-12)
    finally:
        con.close()


def test_open_ends_reach_past_every_id(db: Path, samples: pl.DataFrame) -> None:
    con = store.open_db(db, read_only=True)
    try:
        start, end = store.sample_range(con)
        frame, parts = _run(con, start, end, samples.height // 3, open_ends=True)
        assert len(parts) > 1
        assert parts[0].first_id == -(2**63) and parts[-1].last_id == 2**63 - 1
        assert frame.height == SERIES
    finally:
        con.close()


def test_a_window_without_samples_is_one_empty_part(db: Path) -> None:
    con = store.open_db(db, read_only=True)
    try:
        _, end = store.sample_range(con)
        later = end + timedelta(days=3)
        frame, parts = _run(con, later, later + timedelta(days=1), 1)
        assert len(parts) == 1 and parts[0].last_id < parts[0].first_id
        assert frame.is_empty()
    finally:
        con.close()
