"""Rollout headroom: maxSurge defaults, first-fit placement where the sum fits but no node
does (worked by hand), taints, quotas, strategies, and the sample's ml/inference."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from capplan import store
from capplan.analysis.nodes import nodes_report
from capplan.analysis.rollout import (
    FreeNode,
    eligible,
    free_nodes,
    max_surge_pods,
    place,
    rollout_headroom,
    rollout_report,
)
from capplan.report import ReportOptions
from capplan.report.results import ReportResults
from capplan.report.rollout import rollout_sections as report_section

GiB = 2**30
TAINT = json.dumps([{"key": "dedicated", "value": "batch", "effect": "NoSchedule"}])


def nodes_frame(rows: list[tuple]) -> pl.DataFrame:
    """(node, cpu allocatable, memory allocatable GiB, pods allocatable, taints JSON)."""
    return pl.DataFrame(
        [(n, c, m * GiB, p, t) for n, c, m, p, t in rows],
        schema={"node": pl.Utf8, "cpu_allocatable_cores": pl.Float64, "memory_allocatable_bytes": pl.Int64,
                "pods_allocatable": pl.Int64, "taints": pl.Utf8}, orient="row")


def pods_frame(rows: list[tuple]) -> pl.DataFrame:
    """(namespace, pod, node, cpu request, memory request GiB, workload kind, workload name)."""
    return pl.DataFrame(
        [(ns, pod, node, c, m * GiB, k, w) for ns, pod, node, c, m, k, w in rows],
        schema={"namespace": pl.Utf8, "pod": pl.Utf8, "node": pl.Utf8, "cpu_request_cores": pl.Float64,
                "memory_request_bytes": pl.Float64, "workload_kind": pl.Utf8, "workload_name": pl.Utf8},
        orient="row")


def deployments_frame(rows: list[tuple]) -> pl.DataFrame:
    """(namespace, deployment, replicas, strategy, max_surge_pods)."""
    return pl.DataFrame(rows, schema={"namespace": pl.Utf8, "deployment": pl.Utf8, "replicas": pl.Int64,
                                      "strategy": pl.Utf8, "max_surge_pods": pl.Int64}, orient="row")


@pytest.mark.parametrize(("replicas", "collected", "expected"), [
    (1, None, 1),    # ceil(0.25) = 1
    (4, None, 1),    # ceil(1.0) = 1
    (5, None, 2),    # ceil(1.25) = 2
    (10, None, 3),   # ceil(2.5) = 3
    (0, None, 0),
    (10, 0, 0),      # maxSurge: 0 as collected
    (10, 4, 4),
])
def test_max_surge_default_is_25_percent_rounded_up(replicas: int, collected: int | None, expected: int) -> None:
    assert max_surge_pods(replicas, collected) == expected


def test_sum_of_free_capacity_fits_but_no_node_does() -> None:
    # Three nodes of 4 cores and 16Gi, each already holding 2.5 cores of requests: 1.5 cores free
    # on each, 4.5 in all. The web/app Deployment (1 replica of 2 cores, 1Gi, maxSurge 1) needs
    # one 2-core pod: 2 <= 4.5 in sum, but 2 > 1.5 on every node, so nothing can be placed.
    nodes = nodes_frame([("a", 4.0, 16, 110, None), ("b", 4.0, 16, 110, None), ("c", 4.0, 16, 110, None)])
    pods = pods_frame([
        ("web", "app-1", "a", 2.0, 1, "Deployment", "app"),
        ("web", "filler-b", "b", 2.5, 1, None, None),
        ("web", "filler-c", "c", 2.5, 1, None, None),
        ("web", "other-a", "a", 0.5, 1, None, None),
    ])
    out = rollout_headroom(deployments_frame([("web", "app", 1, "RollingUpdate", 1)]), pods, nodes).row(0, named=True)
    assert out["rolling_extra_pods"] == 1 and out["rolling_extra_cpu_cores"] == 2.0
    assert out["rolling_placeable_pods"] == 0
    assert out["can_roll"] is False and out["can_blue_green"] is False
    assert out["blocked_by"] == "rolling:placement,blue_green:placement"
    assert "free sums to enough: 4.5 cores" in out["reason"]


def test_blue_green_places_only_part_of_the_replicas() -> None:
    # Free cpu after requests: a 4, b 4, c 2 (10 cores in all). Blue-green of 3 replicas of 3
    # cores needs 9 <= 10, but first fit puts one on a (4 - 3 = 1 left), one on b, none on c:
    # 2 of 3. The rolling update (maxSurge 1) needs one 3-core pod: it fits on a.
    nodes = nodes_frame([("a", 8.0, 32, 110, None), ("b", 8.0, 32, 110, None), ("c", 8.0, 32, 110, None)])
    pods = pods_frame([
        ("ns", "x-1", "a", 3.0, 2, "Deployment", "x"), ("ns", "x-2", "b", 3.0, 2, "Deployment", "x"),
        ("ns", "x-3", "c", 3.0, 2, "Deployment", "x"),
        ("ns", "fill-a", "a", 1.0, 1, None, None), ("ns", "fill-b", "b", 1.0, 1, None, None),
        ("ns", "fill-c", "c", 3.0, 1, None, None),
    ])
    out = rollout_headroom(deployments_frame([("ns", "x", 3, "RollingUpdate", None)]), pods, nodes).row(0, named=True)
    assert out["max_surge"] == 1  # default 25% of 3, rounded up
    assert out["can_roll"] is True and out["rolling_placeable_pods"] == 1
    assert out["blue_green_extra_pods"] == 3 and out["blue_green_extra_cpu_cores"] == 9.0
    assert out["blue_green_placeable_pods"] == 2 and out["can_blue_green"] is False
    assert out["blocked_by"] == "blue_green:placement"
    assert "2 of 3 pods" in out["reason"] and "free sums to enough: 10 cores" in out["reason"]


def test_cpu_on_one_node_memory_on_another_is_not_room() -> None:
    # a: 3 cores and 1Gi free; b: 0.5 cores and 20Gi free. A 2-core/4Gi pod fits on neither,
    # although the sums (3.5 cores, 21Gi) cover it.
    nodes = nodes_frame([("a", 4.0, 8, 110, None), ("b", 4.0, 24, 110, None)])
    pods = pods_frame([("ns", "y-1", "a", 1.0, 7, "Deployment", "y"), ("ns", "fill", "b", 3.5, 4, None, None)])
    free = free_nodes(nodes, pods)
    assert [(n.cpu_m, n.memory_b) for n in free] == [(3000, 1 * GiB), (500, 20 * GiB)]
    assert place(free, 2.0, 4 * GiB, 1) == {}
    assert place(free, 0.5, 1 * GiB, 3) == {"a": 1, "b": 1}  # memory on a, cpu on b: one each


def test_first_fit_order_and_pod_slots() -> None:
    free = [FreeNode("a", 1000, 10 * GiB, 1, frozenset()), FreeNode("b", 10000, 10 * GiB, 110, frozenset())]
    # a has room for 4 by cpu and memory but one pod slot; b takes the rest
    assert place(free, 0.25, 1 * GiB, 5) == {"a": 1, "b": 4}
    # a fractional millicore counts as a whole one: 333.3m is 334m, and 1000m // 334m = 2
    assert place([FreeNode("a", 1000, 10 * GiB, 110, frozenset())], 0.3333, 0, 5) == {"a": 2}


def test_tainted_nodes_only_for_deployments_already_on_them() -> None:
    # t is tainted dedicated=batch:NoSchedule and empty; u is untainted and full.
    nodes = nodes_frame([("t", 8.0, 32, 110, TAINT), ("u", 4.0, 16, 110, None)])
    pods = pods_frame([
        ("ns", "web-1", "u", 3.5, 2, "Deployment", "web"),    # on the untainted node only
        ("ns", "batch-1", "t", 1.0, 1, "Deployment", "batch"),  # runs on the tainted node
    ])
    free = free_nodes(nodes, pods)
    assert [n.node for n in eligible(free, {"u"})] == ["u"]
    assert [n.node for n in eligible(free, {"t"})] == ["t", "u"]
    out = rollout_headroom(deployments_frame([("ns", "web", 1, "RollingUpdate", 1), ("ns", "batch", 1, "RollingUpdate", 1)]),
                           pods, nodes)
    web, batch = out.row(0, named=True), out.row(1, named=True)
    assert web["can_roll"] is False and web["eligible_nodes"] == 1
    assert "tainted, left out: t" in web["reason"]
    assert batch["can_roll"] is True and batch["eligible_nodes"] == 2


def test_strategies_recreate_and_blue_green() -> None:
    nodes = nodes_frame([("a", 4.0, 16, 110, None)])
    pods = pods_frame([("ns", "r-1", "a", 2.0, 2, "Deployment", "r"), ("ns", "g-1", "a", 1.5, 2, "Deployment", "g")])
    out = rollout_headroom(deployments_frame([("ns", "r", 1, "Recreate", None), ("ns", "g", 1, "BlueGreen", None)]),
                           pods, nodes)
    recreate, blue_green = out.row(0, named=True), out.row(1, named=True)
    # 0.5 cores free: Recreate needs nothing extra, so it can roll; blue-green of it cannot
    assert recreate["rolling_extra_pods"] == 0 and recreate["can_roll"] is True and recreate["max_surge"] is None
    assert recreate["can_blue_green"] is False and "Recreate" in recreate["reason"]
    # a BlueGreen strategy rolls by bringing up every replica again
    assert blue_green["rolling_extra_pods"] == 1 and blue_green["can_roll"] is False


def test_quota_without_room_blocks_the_surge() -> None:
    # plenty of node room, but the namespace quota of 4 cores has 3.5 used: a 1-core surge is refused
    nodes = nodes_frame([("a", 16.0, 64, 110, None)])
    pods = pods_frame([("q", "z-1", "a", 1.0, 1, "Deployment", "z"), ("q", "z-2", "a", 1.0, 1, "Deployment", "z"),
                       ("q", "other", "a", 1.5, 1, None, None)])
    quotas = pl.DataFrame({"namespace": ["q", "q"], "quota": ["qq", "qq"], "resource": ["requests.cpu", "pods"],
                           "hard": [4.0, 10.0]})
    row = rollout_headroom(deployments_frame([("q", "z", 2, "RollingUpdate", 1)]), pods, nodes, quotas).row(0, named=True)
    assert row["rolling_placeable_pods"] == 1  # the nodes have room
    assert row["can_roll"] is False and row["blocked_by"] == "rolling:quota,blue_green:quota"
    assert "cpu needs 1 cores, 0.5 left" in row["reason"]


def test_deployment_without_observed_pods_is_unknown() -> None:
    nodes = nodes_frame([("a", 4.0, 16, 110, None)])
    row = rollout_headroom(deployments_frame([("ns", "gone", 3, "RollingUpdate", None)]),
                           pods_frame([]), nodes).row(0, named=True)
    assert row["can_roll"] is None and row["can_blue_green"] is None
    assert "no pods" in row["reason"]


# --- the bundled sample -------------------------------------------------------------------------

def test_sample_ml_inference_cannot_roll_although_the_sum_fits(sample_db_readonly: Path) -> None:
    con = store.open_db(sample_db_readonly, read_only=True)
    try:
        table = rollout_report(con)
        node_table = nodes_report(con)
    finally:
        con.close()
    inference = table.filter(pl.col("deployment") == "inference").row(0, named=True)
    assert inference["pod_cpu_request_cores"] == 5.0 and inference["rolling_extra_pods"] == 1
    assert inference["can_roll"] is False and "rolling:placement" in inference["blocked_by"]
    # independently, from the per-node table (capplan.analysis.nodes): every untainted node has
    # less than 5 cores of headroom, yet together they have more than 5
    untainted = node_table.filter(pl.col("taints") == "")
    assert (untainted["cpu_headroom_cores"] < 5.0).all()
    assert untainted["cpu_headroom_cores"].sum() > 5.0
    # the tainted node-5 has room but the ml pods do not run on tainted nodes
    assert node_table.filter(pl.col("node") == "node-5")["cpu_headroom_cores"].item() > 5.0
    assert "tainted, left out: node-5" in inference["reason"]
    # the web Deployments roll
    web = table.filter(pl.col("namespace") == "web")
    assert web.height == 5 and web["can_roll"].all()


def test_report_section_shows_the_deployment_that_cannot_roll(sample_db_readonly: Path) -> None:
    con = store.open_db(sample_db_readonly, read_only=True)
    try:
        (section,) = report_section(ReportResults(con, ReportOptions()))
    finally:
        con.close()
    assert section.key == "rollout"
    blocked = section.frame.filter(pl.col("can_roll").eq(False))
    assert "inference" in blocked["deployment"].to_list()
    assert section.frame["can_roll"].to_list()[: blocked.height] == [False] * blocked.height  # blocked first
    assert "cannot roll out now:" in section.note and "ml/inference" in section.note.splitlines()[0]


def test_each_deployment_sees_its_own_pods_and_nodes_on_random_clusters() -> None:
    # per Deployment, from its own pods filtered by hand: how many, the largest requests, and the
    # nodes eligible() gives for the nodes they run on (tainted nodes of two kinds, pods of other
    # kinds and namespaces with the same names, pods without a request or a node)
    import random

    rng = random.Random(14)
    other = json.dumps([{"key": "gpu", "value": "", "effect": "NoExecute"}])
    for _ in range(20):
        nodes = nodes_frame([(f"n{i}", 8.0, 32, 20, rng.choice([None, None, TAINT, other])) for i in range(8)])
        rows = []
        for k in range(rng.randint(0, 40)):
            kind = rng.choice(["Deployment", "Deployment", "StatefulSet"])
            rows.append((rng.choice(["a", "b"]), f"p{k}", rng.choice([None, *[f"n{i}" for i in range(8)]]),
                         rng.choice([None, 0.1, 0.5, 2.0]), rng.choice([0, 1, 3]), kind, rng.choice(["w1", "w2", "w3"])))
        pods = pods_frame(rows)
        deployments = deployments_frame([(ns, w, rng.randint(0, 6), "RollingUpdate", None)
                                         for ns in ("a", "b") for w in ("w1", "w2", "w3", "w4")])
        free = free_nodes(nodes, pods)
        out = rollout_headroom(deployments, pods, nodes)
        for row in out.iter_rows(named=True):
            mine = [r for r in rows if r[0] == row["namespace"] and r[6] == row["deployment"] and r[5] == "Deployment"]
            assert row["pods_observed"] == len(mine)
            if not mine:
                assert row["eligible_nodes"] is None and "pod shape unknown" in row["reason"]
                continue
            where = eligible(free, {r[2] for r in mine if r[2]})
            assert row["eligible_nodes"] == len(where)
            assert row["pod_cpu_request_cores"] == max(r[3] or 0.0 for r in mine)
            assert row["pod_memory_request_bytes"] == max(r[4] for r in mine) * GiB
            left_out = [n.node for n in free if n not in where]
            if row["rolling_placeable_pods"] < row["rolling_extra_pods"] and left_out:
                assert f"(tainted, left out: {', '.join(left_out)})" in row["reason"]
