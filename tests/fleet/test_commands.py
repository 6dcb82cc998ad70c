"""Every analysis command on a store of two clusters: per cluster, the answer of a store holding
that cluster alone, row for row; the cluster column only where several clusters are stored."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from capplan.cli import app
from tests.answers import assert_same_frames, read_csv, rows_of_cluster
from tests.fleet.conftest import FleetStores

COMMANDS = {
    "nodes": ["nodes"],
    "namespaces": ["namespaces"],
    "cluster": ["cluster"],
    "fit": ["fit", "--cpu", "500m", "--memory", "1Gi"],
    "eviction": ["eviction"],
    "eviction-advice": ["eviction", "--view", "advice"],
    "recommend": ["recommend"],
    "backtest": ["backtest", "--strategy", "simple", "--train", "7d", "--test", "7d"],
    "forecast": ["forecast"],
    "rollout": ["rollout"],
    "whatif": ["whatif", "--prices", "data/cloud/prices.csv"],
}


# Commands also run with --cluster (the selection is one code path for all: capplan.analysis.fleet).
PICKED = ("nodes", "recommend", "forecast", "whatif")
# Columns that measure the run, not the data: left out of the comparison.
TIMINGS = ("fit_seconds",)


def _csv(args: list[str]) -> str:
    done = CliRunner().invoke(app, [*args, "-f", "csv"])
    assert done.exit_code == 0, done.output
    return done.stdout


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_cluster_answers_as_the_store_of_that_cluster_alone(name: str, fleet_stores: FleetStores,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import ROOT

    monkeypatch.chdir(ROOT)
    args = COMMANDS[name]
    fleet_csv = _csv([*args, "--db", str(fleet_stores.fleet)])
    clusters = read_csv(fleet_csv)["cluster"].unique(maintain_order=True).to_list()
    assert clusters == ["east", "west"]
    for cluster, alone_db in fleet_stores.alone.items():
        alone_csv = _csv([*args, "--db", str(alone_db)])
        assert not alone_csv.startswith("cluster,")  # one stored cluster: the answer as before
        expected = read_csv(alone_csv).drop(TIMINGS, strict=False)
        assert expected.height > 0
        assert_same_frames(rows_of_cluster(fleet_csv, cluster).drop(TIMINGS, strict=False), expected)
        if name in PICKED:  # --cluster picks it; the column stays, since the store holds more than one
            picked = _csv([*args, "--db", str(fleet_stores.fleet), "--cluster", cluster])
            assert_same_frames(rows_of_cluster(picked, cluster).drop(TIMINGS, strict=False), expected)
            assert read_csv(picked)["cluster"].unique().to_list() == [cluster]


def test_the_fleet_report_holds_each_clusters_report(fleet_stores: FleetStores) -> None:
    done = CliRunner().invoke(app, ["report", "--db", str(fleet_stores.fleet), "-f", "json"])
    assert done.exit_code == 0, done.output
    fleet = json.loads(done.stdout)
    assert list(fleet)[:3] == ["fleet", "actions", "summary"]
    assert [r["cluster"] for r in fleet["fleet"]] == ["east", "west"]
    for cluster, alone_db in fleet_stores.alone.items():
        alone = json.loads(CliRunner().invoke(app, ["report", "--db", str(alone_db), "-f", "json"]).stdout)
        assert list(fleet)[1:] == list(alone)
        for key, rows in alone.items():
            mine = [{k: v for k, v in r.items() if k != "cluster"} for r in fleet[key] if r["cluster"] == cluster]
            if key == "actions":  # the command names the cluster
                for r in rows:
                    sub, *rest = r["command"].removeprefix("capplan ").split(" ", 1)
                    r["command"] = " ".join(["capplan", sub, "--cluster", cluster, *rest])
            assert len(mine) == len(rows), key
            for a, b in zip(mine, rows, strict=True):
                assert a.keys() == b.keys()
                for k in a:
                    assert a[k] == b[k] or a[k] == pytest.approx(b[k], rel=1e-9), (key, k)
        # the fleet row: this cluster's own numbers, from its report
        row = next(r for r in fleet["fleet"] if r["cluster"] == cluster)
        totals = {r["resource"]: r for r in alone["cluster"]}
        assert row["cpu_request_ratio"] == pytest.approx(totals["cpu"]["request_ratio"], rel=1e-12)
        assert row["memory_headroom_bytes"] == pytest.approx(totals["memory"]["headroom"], rel=1e-12)
        assert row["cpu_limit_ratio"] == totals["cpu"]["limit_ratio"]  # "inf" where a container has no limit
        assert row["nodes_under_memory_pressure"] == sum(r["under_pressure"] for r in alone["eviction_nodes"])
        soonest = min((r["days_to_exhaustion"] for r in alone["forecast"] if r["days_to_exhaustion"] is not None),
                      default=None)
        assert row["days_to_exhaustion"] == pytest.approx(soonest, rel=1e-9)


def test_an_unknown_cluster_is_wrong_usage_naming_the_stored_ones(fleet_stores: FleetStores) -> None:
    done = CliRunner().invoke(app, ["nodes", "--db", str(fleet_stores.fleet), "--cluster", "north"])
    assert done.exit_code == 2
    assert done.stderr == "capplan: --cluster north: no such cluster in the database; it holds east, west\n"
    assert done.stdout == ""


@pytest.mark.parametrize("args", [["resize-plan"], ["patch", "tests/data/manifests", "--format", "diff"],
                                  ["report", "--format", "html", "-o", "/dev/null"]])
def test_commands_acting_on_one_cluster_need_it_named(args: list[str], fleet_stores: FleetStores,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import ROOT

    monkeypatch.chdir(ROOT)
    done = CliRunner().invoke(app, [*args, "--db", str(fleet_stores.fleet)])
    assert done.exit_code == 2, done.output
    assert "name it with --cluster" in done.stderr and "east, west" in done.stderr


def test_prune_removes_only_the_named_clusters_rows(fleet_copy) -> None:
    from capplan import store

    def counts(cluster: str) -> tuple:
        con = store.open_db(fleet_copy, read_only=True)
        try:
            with store.scope(con, cluster):
                return con.execute("SELECT (SELECT count(*) FROM usage_samples), (SELECT max(ts) FROM usage_samples), "
                                   "(SELECT count(*) FROM pods), (SELECT max(valid_to) FROM pods)").fetchone()
        finally:
            con.close()

    east, west = counts("east"), counts("west")
    done = CliRunner().invoke(app, ["prune", "--after", "2026-11-10T00:00:00Z", "--cluster", "west",
                                    "--db", str(fleet_copy)])
    assert done.exit_code == 0, done.output
    assert counts("east") == east
    samples, newest, pods, last_seen = counts("west")
    assert samples < west[0] and str(newest) <= "2026-11-10 00:00:00" and str(last_seen) <= "2026-11-10 00:00:00"


@pytest.mark.parametrize("name", ["", "a\nb", "x" * 254])
def test_a_name_that_cannot_name_a_cluster_is_wrong_usage(name: str, tmp_path) -> None:
    from tests.conftest import SAMPLE_DIR

    db = tmp_path / "x.duckdb"
    done = CliRunner().invoke(app, ["import", str(SAMPLE_DIR), "--db", str(db), "--cluster", name])
    assert done.exit_code == 2, done.output
    assert done.stderr.startswith("capplan: --cluster: not a cluster name") and done.stderr.count("\n") == 1
    assert not db.exists()
