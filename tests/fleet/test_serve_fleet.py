"""`capplan serve` on a store of two clusters: every endpoint answers per cluster what the
library answers on a store of that cluster alone, `?cluster=` picks, /metrics labels by cluster."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from capplan import store
from capplan.analysis.nodes_overview import nodes_overview
from capplan.analysis.recommend import DEFAULT_STRATEGY, recommend
from capplan.analysis.strategies import StrategyParams
from capplan.serve.endpoints import records
from tests.fleet.conftest import FleetStores
from tests.test_service import Server, _finish, assert_same_records, start_server

WINDOW = timedelta(days=14)


@pytest.fixture(scope="module")
def fleet_api(fleet_stores: FleetStores, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(fleet_stores.fleet, tmp_path_factory.mktemp("fleet-api"), "--max-staleness", "0")
    yield srv
    _finish(srv)


def _alone(path, call) -> list[dict]:
    con = store.open_db(path, read_only=True)
    try:
        return json.loads(json.dumps(records(call(con)), default=str))
    finally:
        con.close()


@pytest.mark.parametrize("endpoint, call", [
    ("nodes", lambda con: nodes_overview(con, WINDOW, None, 20.0, 50.0)),
    ("recommendations", lambda con: recommend(con, DEFAULT_STRATEGY, WINDOW, None, StrategyParams())),
])
def test_each_cluster_answers_as_the_store_of_that_cluster_alone(endpoint, call, fleet_api: Server,
                                                                  fleet_stores: FleetStores) -> None:
    status, rows = fleet_api.get_json(f"/api/v1/{endpoint}")
    assert status == 200
    assert sorted({r["cluster"] for r in rows}) == ["east", "west"]
    for cluster, path in fleet_stores.alone.items():
        mine = [{k: v for k, v in r.items() if k != "cluster"} for r in rows if r["cluster"] == cluster]
        assert_same_records(mine, _alone(path, call))
        status, picked = fleet_api.get_json(f"/api/v1/{endpoint}?cluster={cluster}")
        assert status == 200 and {r["cluster"] for r in picked} == {cluster}
        assert_same_records([{k: v for k, v in r.items() if k != "cluster"} for r in picked],
                            _alone(path, call))


def test_an_unknown_cluster_is_a_400_naming_the_stored_ones(fleet_api: Server) -> None:
    status, body = fleet_api.get_json("/api/v1/nodes?cluster=north")
    assert status == 400
    assert "east, west" in json.dumps(body)


def test_metrics_carry_the_cluster(fleet_api: Server, fleet_stores: FleetStores) -> None:
    status, text, _ = fleet_api.get("/metrics")
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = families["capplan_node_cpu_allocatable_cores"].samples
    by_cluster: dict[str, dict[str, float]] = {}
    for s in samples:
        by_cluster.setdefault(s.labels["cluster"], {})[s.labels["node"]] = s.value
    for cluster, path in fleet_stores.alone.items():
        expected = {r["node"]: r["cpu_allocatable_cores"] for r in _alone(path, lambda c: nodes_overview(c, WINDOW, None, 20.0, 50.0))}
        assert by_cluster[cluster] == expected


def test_the_report_is_the_fleets_and_the_page_one_clusters(fleet_api: Server) -> None:
    status, report = fleet_api.get_json("/api/v1/report")
    assert status == 200
    assert list(report)[:2] == ["fleet", "actions"]
    assert [r["cluster"] for r in report["fleet"]] == ["east", "west"]
    status, _, _ = fleet_api.get("/report.html")
    assert status == 400
    status, page, _ = fleet_api.get("/report.html?cluster=west")
    assert status == 200 and "<html" in page.lower()
