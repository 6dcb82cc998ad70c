"""Analyses that sum usage per sample time a slice of days at a time (issue 14: memory of a slice,
not of the window) give the answer of the whole window: checked against polars over every sample
of the bundled sample, with slices forced small (a few hundred samples: every day its own slice,
and more days than one in none)."""

from __future__ import annotations

import functools
from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from capplan import store
from capplan.analysis import namespaces, whatif
from capplan.analysis.day_slices import day_slices
from capplan.analysis.pods import load_current_containers, pod_resources

WINDOW = timedelta(days=30)


def all_samples(con: duckdb.DuckDBPyConnection, start, end) -> pl.DataFrame:
    """Every sample in [start, end] with its series' namespace and pod, as the view shows them."""
    return con.execute(
        "SELECT s.namespace, s.pod, u.ts, u.cpu_cores, u.memory_bytes FROM usage_samples AS u "
        "JOIN series AS s USING (series_id) WHERE u.ts BETWEEN $start AND $end", {"start": start, "end": end}).pl()


@pytest.fixture()
def small_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slices of at most 500 samples: each UTC day of the sample is a slice of its own; and the
    namespaces' percentiles taken of batches of at most 2,000 sums (one namespace a batch)."""
    tiny = functools.partial(day_slices, max_samples=500)
    monkeypatch.setattr(whatif, "day_slices", tiny)
    monkeypatch.setattr(namespaces, "day_slices", tiny)
    monkeypatch.setattr(namespaces, "PERCENTILE_BATCH_ROWS", 2_000)


def test_slices_cover_the_window_once_in_whole_days(sample_db_readonly: Path) -> None:
    con = store.open_db(sample_db_readonly, read_only=True)
    try:
        start, end = store.analysis_window(con, WINDOW)
        start = start + timedelta(hours=7, microseconds=3)  # a window that starts inside a day
        samples = all_samples(con, start, end)
        for budget in (500, 60_000, 10**9):
            slices = day_slices(con, start, end, max_samples=budget)
            assert slices[0][0] == start and slices[-1][1] == end
            counts = [samples.filter(pl.col("ts").is_between(lo, hi)).height for lo, hi in slices]
            assert sum(counts) == samples.height  # every sample in exactly one slice
            for (lo, hi), (next_lo, _) in zip(slices, slices[1:], strict=False):
                assert lo <= hi < next_lo and next_lo - hi == timedelta(microseconds=1)
                assert next_lo.time() == next_lo.time().min  # cut at midnight UTC
            days = [len({(t.date()) for t in samples.filter(pl.col("ts").is_between(lo, hi))["ts"].to_list()})
                    for lo, hi in slices]
            for n, d in zip(counts, days, strict=True):
                assert n <= budget or d == 1  # over the budget only a single day
        assert len(day_slices(con, start, end, max_samples=500)) == samples["ts"].dt.date().n_unique()
        assert len(day_slices(con, start, end, max_samples=10**9)) == 1
    finally:
        con.close()


@pytest.mark.parametrize("pending", [False, True], ids=["stored sums", "every day pending"])
def test_namespace_percentiles_in_slices_equal_the_whole_window_in_polars(sample_db: Path, small_slices: None,
                                                                           pending: bool) -> None:
    # the stored sums (schema 008) in batches; or, every day pending after a write, the sums of
    # the samples a day at a time
    con = store.open_db(sample_db)
    try:
        start, end = store.analysis_window(con, WINDOW)
        if pending:
            with store.transaction(con):
                store.mark_node_usage_pending(con, *store.sample_range(con))
            assert len(store.scope_usage_pending_days(con, start, end)) >= 14
        got = namespaces.load_namespace_usage(con, start, end)
        samples = all_samples(con, start, end)
    finally:
        con.close()
    sums = samples.group_by("namespace", "ts").agg(pl.col("cpu_cores").cast(pl.Float64).sum(),
                                                   pl.col("memory_bytes").sum())
    want = sums.group_by("namespace").agg(
        pl.len().alias("usage_points"),
        pl.col("cpu_cores").quantile(0.95, interpolation="linear").alias("cpu_p95"),
        pl.col("cpu_cores").max().alias("cpu_max"),
        pl.col("memory_bytes").cast(pl.Float64).quantile(0.95, interpolation="linear").alias("memory_p95"),
        pl.col("memory_bytes").max().alias("memory_max"),
    ).sort("namespace")
    assert got["namespace"].to_list() == want["namespace"].to_list() and got.height >= 5
    assert got["usage_points"].to_list() == want["usage_points"].to_list()
    assert got["cpu_usage_max_cores"].to_list() == want["cpu_max"].to_list()
    assert [int(v) for v in got["memory_usage_max_bytes"].to_list()] == want["memory_max"].to_list()
    assert got["cpu_usage_p95_cores"].to_list() == pytest.approx(want["cpu_p95"].to_list(), rel=1e-12)
    assert got["memory_usage_p95_bytes"].to_list() == pytest.approx(want["memory_p95"].to_list(), rel=1e-12)


def test_whatif_peaks_in_slices_equal_the_whole_window_in_polars(sample_db_readonly: Path, small_slices: None) -> None:
    con = store.open_db(sample_db_readonly, read_only=True)
    try:
        start, end = store.analysis_window(con, WINDOW)
        pods = pod_resources(load_current_containers(con, end)).filter(pl.col("node").is_not_null())
        # a hypothetical placement: the pods dealt round-robin over three of the nodes
        targets = sorted(set(pods["node"].to_list()))[:3]
        placement = pods.select("namespace", "pod").sort("namespace", "pod").with_columns(
            pl.Series("node", [targets[i % 3] for i in range(pods.height)]))
        got = whatif.peak_memory(con, placement, start, end)
        samples = all_samples(con, start, end)
    finally:
        con.close()
    sums = samples.join(placement, on=["namespace", "pod"]).group_by("node", "ts").agg(pl.col("memory_bytes").sum())
    peaks = sums.group_by("node").agg(pl.col("memory_bytes").max().alias("peak"))
    first = sums.join(peaks, on="node").filter(pl.col("memory_bytes") == pl.col("peak")).group_by("node").agg(
        pl.col("ts").min().alias("at"), pl.col("peak").first())
    want = first.sort("node")
    assert got["node"].to_list() == want["node"].to_list() == targets
    assert got["peak_memory_bytes"].to_list() == want["peak"].to_list()
    assert got["peak_at"].to_list() == want["at"].to_list()


def test_whatif_peak_ties_and_nodes_without_memory_by_hand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # web/p1 + web/p2 placed on node-x sum to 2, 4, 4 GiB (the last two either side of midnight, so
    # in two slices) and 4 GiB again the next hour: the peak is 4 GiB, first reached at 23:55; web/p3
    # on node-y has CPU samples only: a NULL peak at its first sample time, as the placement's
    # nodes always got
    from datetime import datetime

    from tests.analysis.cluster_builder import GiB, build_store, ctr, node, pod

    monkeypatch.setattr(whatif, "day_slices", functools.partial(day_slices, max_samples=1))
    t = [datetime(2026, 1, 1, 23, 50), datetime(2026, 1, 1, 23, 55), datetime(2026, 1, 2, 0, 0),
         datetime(2026, 1, 2, 1, 0)]
    p1, p2 = [1, 3, 2, 3], [1, 1, 2, 1]
    usage = [{"namespace": "web", "pod": pod_name, "container": "app", "node": "node-a", "ts": ts,
              "cpu_cores": 0.1, "memory_bytes": None if pod_name == "p3" else values[i] * GiB}
             for pod_name, values in (("p1", p1), ("p2", p2), ("p3", p1)) for i, ts in enumerate(t)]
    db = build_store(tmp_path / "ties.duckdb", [node("node-a", 4.0, 16 * GiB)],
                     [pod("web", p, "node-a", "ReplicaSet") for p in ("p1", "p2", "p3")],
                     [ctr("web", p, "app", 0.1, None, GiB, None) for p in ("p1", "p2", "p3")], usage)
    placement = pl.DataFrame({"namespace": ["web"] * 3, "pod": ["p1", "p2", "p3"], "node": ["node-x", "node-x", "node-y"]})
    con = store.open_db(db, read_only=True)
    try:
        assert len(day_slices(con, t[0], t[-1], max_samples=1)) == 2
        got = whatif.peak_memory(con, placement, t[0], t[-1])
    finally:
        con.close()
    assert got.to_dicts() == [
        {"node": "node-x", "peak_memory_bytes": 4 * GiB, "peak_at": t[1]},
        {"node": "node-y", "peak_memory_bytes": None, "peak_at": t[0]},
    ]
