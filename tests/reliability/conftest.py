"""Reliability fixtures: one real Prometheus serving 6 hours of the sample cluster, the DB of an
uninterrupted collection (the reference every damaged run must end up equal to), and a warm
fork server for kill tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests import tools
from tests.conftest import run_shared_dir
from tests.promharness import PrometheusServer, build_cluster_tsdb, cached_tsdb
from tests.reliability._runner import ForkServer, integrity, snapshot

W_START = datetime(2026, 11, 2, 0, 0)
W_END = W_START + timedelta(hours=6)
STEP = "5m"
CHUNK = "1h"  # 7 chunks: many commit points to be killed between
HALF = W_START + timedelta(hours=3)


def collect_args(url: str, db: Path, *extra: str) -> list[str]:
    """`capplan collect` over the test window (explicit --end so runs are reproducible)."""
    return ["collect", "--prometheus-url", url, "--db", str(db), "--step", STEP, "--chunk", CHUNK,
            "--concurrency", "1", "--end", W_END.isoformat(), "--since", "6h", *extra]


@pytest.fixture(scope="session")
def rel_tsdb(sample_cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample cluster over the test window, backfilled once per run (shared by the xdist
    workers). Read-only: copy it."""
    tools.require("prometheus", "promtool")
    # kube-state-metrics with node labels allowed (--metric-labels-allowlist), as the checks expect
    built = cached_tsdb(run_shared_dir(tmp_path_factory) / "tsdb", "reliability-6h", lambda out: build_cluster_tsdb(
        sample_cluster, out / "tsdb", W_START, W_END, node_labels=True))
    return built / "tsdb"


@pytest.fixture(scope="session")
def rel_prom(rel_tsdb: Path) -> Iterator[PrometheusServer]:
    with PrometheusServer(rel_tsdb) as server:
        yield server


@pytest.fixture(scope="session")
def forkserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForkServer]:
    server = ForkServer(tmp_path_factory.mktemp("forks"))
    yield server
    server.close()


@pytest.fixture(scope="session")
def reference(rel_prom: PrometheusServer, forkserver: ForkServer, tmp_path_factory) -> dict:
    """An uninterrupted first run over the window: its DB snapshot and its duration."""
    db = tmp_path_factory.mktemp("reference") / "ref.duckdb"
    run = forkserver.run(collect_args(rel_prom.url, db, "--start", W_START.isoformat()))
    assert run.code == 0, run.err
    snap = snapshot(db)
    assert len(snap["usage"]) > 1000 and snap["containers"] and snap["nodes"]
    assert all(v == 0 for v in integrity(db).values())
    return {"db": db, "snapshot": snap, "seconds": run.seconds, "summary": run.out}


@pytest.fixture(scope="module")
def half_db(rel_prom: PrometheusServer, forkserver: ForkServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DB holding the first half of the window (later runs continue from its marks)."""
    db = tmp_path_factory.mktemp("half") / "half.duckdb"
    args = collect_args(rel_prom.url, db, "--start", W_START.isoformat())
    args[args.index("--end") + 1] = HALF.isoformat()
    run = forkserver.run(args)
    assert run.code == 0, run.err
    return db
