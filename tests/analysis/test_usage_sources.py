"""The queries that read the stored samples through the table macro usage_stored_in(lo, hi) (raw
samples and rollups) give, run on usage_raw alone (store.query's raw: usage_raw_in), the rows they
give on the union wherever no rolled-up sample is: on a store of raw samples only, and on one with
hourly and daily rollups over a span of raw samples. Each answer is also checked against a
brute-force model in Python: of the usage_samples view's rows (the union's answer), and of
usage_raw's rows alone (the raw answer over a span that reaches the rollups, where the two differ).
The raw plan scans usage_raw alone, with its bounds pushed into the scan (row groups pruned on ts).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from capplan import rollup, store
from capplan.analysis.rollup_span import stored_bounds
from capplan.analysis.strategies import vpa

T0 = datetime(2026, 3, 1)
DAYS = 5
# (pod, container, node, first day): pod a has two containers, pod b starts a day late
CONTAINERS = [("a", "app", "n1", 0), ("a", "side", "n1", 0), ("b", "app", "n1", 1), ("c", "app", "n2", 0)]
PLACEMENT = pl.DataFrame({"namespace": ["ns"] * 3, "pod": ["a", "b", "c"], "node": ["x", "y", "x"]})
QUERIES = ["pod_last_seen", "pod_memory_at_moments", "whatif_peak_memory",
           "recommend_memory_peaks_stored", "recommend_daily_stats_stored"]
EPOCH = datetime(1970, 1, 1)


def _rows() -> pl.DataFrame:
    """5-minute samples; every 13th working set of a container unknown (NULL), repeated values
    (ties for the peaks)."""
    rng = random.Random(7)
    rows = []
    for pod, container, node, first_day in CONTAINERS:
        for step in range(first_day * 288 + 3, DAYS * 288):
            memory = None if step % 13 == 0 else float(rng.choice([512, 1024, rng.randint(1, 4000)]) * 2**20)
            rows.append({"namespace": "ns", "pod": pod, "container": container, "node": node,
                         "ts": T0 + timedelta(minutes=5 * step), "cpu_cores": round(rng.uniform(0, 2), 3),
                         "memory_bytes": memory})
    return pl.DataFrame(rows, schema_overrides={"memory_bytes": pl.Float64})


def _store(path: Path, compact: bool) -> Path:
    con = store.open_db(path)
    try:
        with store.transaction(con):
            store.write_usage(con, _rows())
        if compact:  # older than 2 days: hours; hours older than 3 days: days
            with store.transaction(con):
                rollup.compact(con, raw_retention=timedelta(days=2), daily_after=timedelta(days=3))
    finally:
        con.close()
    return path


@pytest.fixture(scope="module")
def raw_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _store(tmp_path_factory.mktemp("sources") / "raw.duckdb", compact=False)


@pytest.fixture(scope="module")
def rolled_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _store(tmp_path_factory.mktemp("sources") / "rolled.duckdb", compact=True)


@pytest.fixture
def con_of() -> Iterator[Callable[[Path], duckdb.DuckDBPyConnection]]:
    opened: list[duckdb.DuckDBPyConnection] = []

    def open_(path: Path) -> duckdb.DuckDBPyConnection:
        con = store.open_db(path, read_only=True)
        ids = PLACEMENT.select("node").unique().sort("node").with_row_index("node_id")
        con.register("whatif_placement", PLACEMENT.join(ids, on="node").to_arrow())
        opened.append(con)
        return con

    yield open_
    for con in opened:
        con.close()


# --- the brute-force models, over (series_id, ts, memory_bytes, cpu_cores) rows and the series' names

def _view_rows(con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime) -> list[tuple]:
    """The usage_samples view's rows in [lo, hi]: what the union reads."""
    return con.execute("SELECT series_id, ts, memory_bytes, cpu_cores FROM usage_samples WHERE ts BETWEEN $lo AND $hi",
                       {"lo": lo, "hi": hi}).fetchall()


def _raw_rows(con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime) -> list[tuple]:
    """usage_raw's rows in [lo, hi] (converted by hand): what usage_raw alone holds."""
    return [(sid, ts, None if kib is None else kib * 1024, None if mcores is None else mcores / 1000)
            for sid, ts, kib, mcores in con.execute(
                "SELECT series_id, CAST(ts AS TIMESTAMP), memory_kib, cpu_mcores FROM usage_raw").fetchall()
            if lo <= ts <= hi]


def _firsts(con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime) -> dict[int, float]:
    """Each series' first sample in [lo, hi] (the view's), in epoch seconds: recommend's _rec_first."""
    firsts: dict[int, datetime] = {}
    for sid, ts, _, _ in _view_rows(con, lo, hi):
        firsts[sid] = min(firsts.get(sid, ts), ts)
    return {sid: (ts - EPOCH).total_seconds() for sid, ts in firsts.items()}


def _names(con: duckdb.DuckDBPyConnection) -> dict[int, tuple[str, str, str]]:
    return {sid: (node, ns, pod) for sid, node, ns, pod in con.execute("SELECT series_id, node, namespace, pod FROM series").fetchall()}


def _moments(rows: list[tuple], names: dict[int, tuple[str, str, str]]) -> list[tuple[str, datetime]]:
    """Per node, its first, middle and last sample time."""
    out = []
    for node in sorted({names[sid][0] for sid, *_ in rows}):
        times = sorted({ts for sid, ts, *_ in rows if names[sid][0] == node})
        out += [(node, times[0]), (node, times[len(times) // 2]), (node, times[-1])]
    return sorted(set(out))


def _model(name: str, rows: list[tuple], names: dict[int, tuple[str, str, str]],
           moments: list[tuple[str, datetime]], firsts: dict[int, float]) -> list[tuple]:
    if name.startswith("recommend_"):
        # per series and interval of a day from its first sample: the memory peak (and the CPU
        # values' sum and count)
        stats: dict[tuple[int, int], list] = {}
        for sid, ts, mem, cpu in rows:
            index = math.floor(((ts - EPOCH).total_seconds() - firsts[sid]) / vpa.MEMORY_INTERVAL_SECONDS)
            m = stats.setdefault((sid, index), [None, 0.0, 0])
            m[0] = m[0] if mem is None else max(m[0] or 0, mem)
            m[1], m[2] = (m[1], m[2]) if cpu is None else (m[1] + cpu, m[2] + 1)
        width = 3 if name == "recommend_memory_peaks_stored" else 5
        return sorted((*k, *v)[:width] for k, v in stats.items())
    known = [(sid, ts, mem) for sid, ts, mem, _ in rows if mem is not None]
    if name == "pod_last_seen":
        last: dict[tuple, datetime] = {}
        for sid, ts, _ in known:
            key = names[sid]
            last[key] = max(last.get(key, ts), ts)
        return sorted((*k, v) for k, v in last.items())
    if name == "pod_memory_at_moments":
        sums: dict[tuple, int] = {}
        for sid, ts, mem in known:
            node, ns, pod = names[sid]
            if (node, ts) in moments:
                sums[(node, ts, ns, pod)] = sums.get((node, ts, ns, pod), 0) + mem
        return sorted((*k, v) for k, v in sums.items())
    # whatif_peak_memory: per placed node, the sums per time; the largest known sum, first reached
    node_of = {(r["namespace"], r["pod"]): r["node"] for r in PLACEMENT.iter_rows(named=True)}
    ids = {node: i for i, node in enumerate(sorted(set(node_of.values())))}
    per_time: dict[tuple[int, datetime], int | None] = {}
    for sid, ts, mem, _ in rows:
        node = node_of.get(names[sid][1:])
        if node is not None:
            key = (ids[node], ts)
            per_time[key] = (per_time.get(key) or 0) + mem if mem is not None else per_time.get(key)
    peaks = []
    for node_id in sorted({k[0] for k in per_time}):
        sums_at = sorted((ts, s) for (i, ts), s in per_time.items() if i == node_id)
        known_sums = [(ts, s) for ts, s in sums_at if s is not None]
        if not known_sums:
            peaks.append((node_id, None, sums_at[0][0]))
            continue
        peak = max(s for _, s in known_sums)
        peaks.append((node_id, peak, min(ts for ts, s in known_sums if s == peak)))
    return peaks


def _run(con: duckdb.DuckDBPyConnection, name: str, lo: datetime, hi: datetime,
         moments: list[tuple[str, datetime]], firsts: dict[int, float], raw: bool) -> list[tuple]:
    params: dict = dict(stored_bounds(lo, hi))
    if name == "pod_memory_at_moments":
        params |= {"nodes": [m[0] for m in moments], "ts": [m[1] for m in moments]}
    if name.startswith("recommend_"):
        params |= {"interval_s": vpa.MEMORY_INTERVAL_SECONDS}
        staged = pl.DataFrame({"series_id": list(firsts), "first_s": list(firsts.values())},
                              schema={"series_id": pl.Int32, "first_s": pl.Float64})
        with store.staged_table(con, "_rec_first", staged):
            rows = _sliced(con, name, params, raw)
    else:
        rows = store.query(con, name, params, raw=raw).rows()
    return sorted(rows, key=lambda r: tuple((v is None, v) for v in r))


def _sliced(con: duckdb.DuckDBPyConnection, name: str, params: dict, raw: bool) -> list[tuple]:
    """A recommend query's rows over [lo, hi] as its caller gets them, unsorted: run on slices of at most one
    interval (what the query takes), the slices' rows of one series and interval merged (the largest
    peak, NULL without a known one; the CPU sums and counts added)."""
    interval = timedelta(seconds=vpa.MEMORY_INTERVAL_SECONDS)
    merged: dict[tuple[int, int], list] = {}
    lo = params["lo"]
    while lo <= params["hi"]:
        hi = min(params["hi"], lo + interval - timedelta(seconds=1))
        for sid, index, peak, *cpu in store.query(con, name, {**params, "lo": lo, "hi": hi}, raw=raw).rows():
            m = merged.setdefault((sid, index), [None, *([0.0, 0] if cpu else [])])
            m[0] = peak if m[0] is None else m[0] if peak is None else max(m[0], peak)
            if cpu:
                m[1], m[2] = m[1] + (cpu[0] or 0.0), m[2] + cpu[1]
        lo += interval
    return [(*k, *v) for k, v in merged.items()]


def _close(got: list[tuple], expected: list[tuple]) -> bool:
    """The same rows, floats (recommend's summed CPU: REAL values) to float precision."""
    return len(got) == len(expected) and all(
        len(g) == len(e) and all(a == b or (isinstance(a, float) and math.isclose(a, b, rel_tol=1e-6))
                                 for a, b in zip(g, e, strict=True))
        for g, e in zip(got, expected, strict=True))


def _windows(con: duckdb.DuckDBPyConnection) -> list[tuple[datetime, datetime]]:
    """The whole span, a span of bounds that are not whole seconds, the last day."""
    oldest, newest = store.sample_range(con)
    return [(oldest, newest), (oldest + timedelta(hours=30, microseconds=250_000), newest - timedelta(hours=7, microseconds=1)),
            (newest - timedelta(days=1), newest)]


def _check(con: duckdb.DuckDBPyConnection, name: str, lo: datetime, hi: datetime,
           names: dict[int, tuple[str, str, str]]) -> tuple[list[tuple], list[tuple]]:
    """Both sources' answers over [lo, hi], each checked against its model: the union's of the
    view's rows, the raw one's of usage_raw's rows."""
    rows = _view_rows(con, lo, hi)
    moments, firsts = _moments(rows, names), _firsts(con, lo, hi)
    union = _run(con, name, lo, hi, moments, firsts, raw=False)
    raw = _run(con, name, lo, hi, moments, firsts, raw=True)
    assert _close(union, _model(name, rows, names, moments, firsts)), (name, lo, hi)
    assert _close(raw, _model(name, _raw_rows(con, lo, hi), names, moments, firsts)), (name, lo, hi)
    return union, raw


@pytest.mark.parametrize("name", QUERIES)
def test_raw_only_store_same_rows_from_either_source(raw_db: Path, name: str, con_of) -> None:
    con = con_of(raw_db)
    names = _names(con)
    for lo, hi in _windows(con):
        union, raw = _check(con, name, lo, hi, names)
        assert union and raw == union, (name, lo, hi)


@pytest.mark.parametrize("name", QUERIES)
def test_store_with_rollups_same_rows_where_no_rollup_is(rolled_db: Path, name: str, con_of) -> None:
    con = con_of(rolled_db)
    counts = [con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("usage_raw", "usage_hourly", "usage_daily")]
    assert all(counts), counts
    names = _names(con)
    raw_from = con.execute("SELECT CAST(min(ts) AS TIMESTAMP) FROM usage_raw").fetchone()[0]
    oldest, newest = store.sample_range(con)
    # the raw samples' span: both sources give the same rows
    for lo, hi in ((raw_from, newest), (raw_from + timedelta(hours=5, microseconds=10), newest - timedelta(hours=1))):
        union, raw = _check(con, name, lo, hi, names)
        assert union and raw == union, (name, lo, hi)
    # the whole span, and the rollups' alone: the union reads the rollups too, usage_raw alone only
    # the raw samples (none in the rollups' span)
    _check(con, name, oldest, newest, names)
    union, raw = _check(con, name, oldest, raw_from - timedelta(seconds=1), names)
    assert union and not raw


def _plan(con: duckdb.DuckDBPyConnection, sql: str, params: dict) -> list[dict]:
    """The scans of the physical plan: table and filters."""
    scans: list[dict] = []

    def walk(node: dict) -> None:
        if node["name"] == "SEQ_SCAN":
            scans.append(node["extra_info"])
        for child in node["children"]:
            walk(child)

    for root in json.loads(con.execute("EXPLAIN (FORMAT json) " + sql, params).fetchall()[0][1]):
        walk(root)
    return scans


def test_the_raw_plan_scans_usage_raw_alone_pruned_on_ts(rolled_db: Path, con_of) -> None:
    con = con_of(rolled_db)
    oldest, newest = store.sample_range(con)
    params = stored_bounds(oldest, newest - timedelta(hours=1))
    union = [s["Table"] for s in _plan(con, store.load_sql("whatif_peak_memory"), params)]
    assert {t.split(".")[-1] for t in union} >= {"usage_raw", "usage_hourly", "usage_daily"}
    scans = [s for s in _plan(con, store.load_sql("whatif_peak_memory", raw=True), params)
             if "usage" in s["Table"]]
    assert [s["Table"].split(".")[-1] for s in scans] == ["usage_raw"]
    assert "ts>=" in scans[0]["Filters"] and "ts<=" in scans[0]["Filters"]


def test_raw_needs_a_query_reading_usage_stored_in() -> None:
    assert "usage_raw_in($lo, $hi)" in store.load_sql("pod_last_seen", raw=True)
    assert "usage_stored_in(" not in store.load_sql("pod_last_seen", raw=True)
    with pytest.raises(ValueError, match="window_nodes"):
        store.load_sql("window_nodes", raw=True)
