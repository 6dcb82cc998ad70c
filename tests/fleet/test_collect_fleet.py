"""Two clusters collected into one store, from two real Prometheus servers (`collect --cluster`)
and from one real Prometheus holding both under a `cluster` label (`collect --cluster-label`):
per cluster, the store and every answer equal those of a store collected from that cluster's
Prometheus alone."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from capplan import store
from capplan.cli import app
from capplan.collect import CollectOptions, collect
from capplan.collect.fleet import collect_clusters
from capplan.sample import generate_cluster
from tests import tools
from tests.answers import assert_same_frames, read_csv, rows_of_cluster
from tests.promharness import PrometheusServer, Series, build_tsdb, cluster_series

START = datetime(2026, 11, 2, 0, 0)
END = datetime(2026, 11, 2, 5, 55)  # six hours of the samples' 5-minute grid
STEP = 60
# A label value PromQL must escape: a quote and a backslash, never able to close the selector.
ODD = 'west "b"\\2'


@dataclass
class Sources:
    alone: dict[str, PrometheusServer]   # cluster -> a Prometheus holding that cluster alone
    central: PrometheusServer            # both, every series labelled cluster=<name>


def _labelled(series: Iterator[Series], name: str) -> Iterator[Series]:
    for s in series:
        yield Series(s.name, {**s.labels, "cluster": name}, s.ts, s.values, s.kind)


@pytest.fixture(scope="module")
def sources(sample_cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sources]:
    tools.require("prometheus", "promtool")
    root = tmp_path_factory.mktemp("fleet-prom")
    clusters = {"east": sample_cluster, ODD: generate_cluster(seed=11)}
    for i, cluster in enumerate(clusters.values()):
        build_tsdb(cluster_series(cluster, START, END, node_labels=True), root / f"alone{i}")
    build_tsdb((s for name, cluster in clusters.items()
                for s in _labelled(cluster_series(cluster, START, END, node_labels=True), name)), root / "central")
    servers = {name: PrometheusServer(root / f"alone{i}").start() for i, name in enumerate(clusters)}
    central = PrometheusServer(root / "central").start()
    try:
        yield Sources(servers, central)
    finally:
        central.stop()
        for server in servers.values():
            server.stop()


@dataclass
class Stores:
    alone: dict[str, Path]
    two_servers: Path
    one_server: Path


@pytest.fixture(scope="module")
def stores(sources: Sources, tmp_path_factory: pytest.TempPathFactory) -> Stores:
    root = tmp_path_factory.mktemp("fleet-collect")
    window = {"start": START, "end": END, "step_seconds": STEP}
    alone = {}
    for i, (name, server) in enumerate(sources.alone.items()):
        alone[name] = root / f"alone{i}.duckdb"
        assert collect(CollectOptions(url=server.url, db=alone[name], **window)).status == "ok"
    two = root / "two.duckdb"
    for name, server in sources.alone.items():
        assert collect(CollectOptions(url=server.url, db=two, cluster=name, **window)).status == "ok"
    one = root / "one.duckdb"
    done = collect_clusters(CollectOptions(url=sources.central.url, db=one, cluster_label="cluster", **window))
    assert sorted(name for name, _ in done) == sorted(sources.alone)
    assert all(summary.status == "ok" and summary.samples > 0 for _, summary in done)
    return Stores(alone, two, one)


def _usage(con) -> pl.DataFrame:
    return con.execute("SELECT s.namespace, s.pod, s.container, s.node, u.ts, u.cpu_cores, u.memory_bytes "
                       "FROM usage_samples AS u JOIN series AS s USING (series_id) ORDER BY ALL").pl()


@pytest.mark.parametrize("kind", ["two_servers", "one_server"])
def test_each_cluster_is_stored_as_collected_alone(kind: str, stores: Stores) -> None:
    fleet = store.open_db(getattr(stores, kind), read_only=True)
    try:
        assert store.clusters(fleet) == sorted(stores.alone)
        for name, path in stores.alone.items():
            alone = store.open_db(path, read_only=True)
            try:
                with store.scope(fleet, name), store.scope(alone, "default"):
                    got, expected = _usage(fleet), _usage(alone)
                    assert expected.height > 1000
                    assert got.equals(expected)
                    for table in ("nodes", "pods", "containers", "owners", "workloads", "resource_quotas"):
                        sql = f"SELECT * FROM {table} ORDER BY ALL"
                        assert fleet.execute(sql).pl().equals(alone.execute(sql).pl()), table
            finally:
                alone.close()
        # incremental marks of their own: per cluster and source
        marks = fleet.execute("SELECT cluster, count(*) FROM high_water_marks GROUP BY ALL ORDER BY ALL").fetchall()
        assert [m[0] for m in marks] == sorted(stores.alone) and marks[0][1] == marks[1][1] > 0
    finally:
        fleet.close()


@pytest.mark.parametrize("command", [["nodes"], ["namespaces"], ["eviction"], ["recommend", "--min-history", "1h"]])
def test_each_cluster_answers_as_collected_alone(command: list[str], stores: Stores) -> None:
    runner = CliRunner()
    for kind in ("two_servers", "one_server"):
        done = runner.invoke(app, [*command, "--db", str(getattr(stores, kind)), "-f", "csv"])
        assert done.exit_code == 0, done.output
        for name, path in stores.alone.items():
            alone = runner.invoke(app, [*command, "--db", str(path), "-f", "csv"])
            assert alone.exit_code == 0, alone.output
            expected = read_csv(alone.stdout)
            assert expected.height > 0
            assert_same_frames(rows_of_cluster(done.stdout, name), expected)


def test_a_second_run_per_cluster_adds_nothing(stores: Stores, sources: Sources, tmp_path: Path) -> None:
    path = tmp_path / "again.duckdb"
    path.write_bytes(stores.one_server.read_bytes())
    done = collect_clusters(CollectOptions(url=sources.central.url, db=path, cluster_label="cluster",
                                           start=START, end=END, step_seconds=STEP))
    assert [s.samples for _, s in done] == [0, 0]


def test_cli_cluster_label_prints_a_line_per_cluster(sources: Sources, tmp_path: Path) -> None:
    db = tmp_path / "cli.duckdb"
    done = CliRunner().invoke(app, ["collect", "--prometheus-url", sources.central.url, "--db", str(db),
                                    "--cluster-label", "cluster", "--start", "2026-11-02T04:00:00Z",
                                    "--end", "2026-11-02T05:55:00Z", "-f", "csv"])
    assert done.exit_code == 0, done.output
    rows = read_csv(done.stdout)
    assert rows.columns[0] == "cluster" and sorted(rows["cluster"].to_list()) == sorted(sources.alone)
    both = CliRunner().invoke(app, ["collect", "--prometheus-url", sources.central.url, "--db", str(db),
                                    "--cluster-label", "cluster", "--cluster", "east"])
    assert both.exit_code == 2
    bad = CliRunner().invoke(app, ["collect", "--prometheus-url", sources.central.url, "--db", str(db),
                                   "--cluster-label", "not-a-label"])
    assert bad.exit_code == 2 and "not a Prometheus label name" in bad.stderr
