"""Real pod and node specs: Alibaba cluster-trace-gpu-v2023 "openb" (8,152 pods, 1,523 nodes).

The running pods are placed first-fit by requests (cpu, memory, 110 pods a node; GPUs are not
modelled) on nodes whose allocatable is the trace's cpu_milli / memory_mib, written into a store
through store.write_spec (specs only, no usage), and then:
- the cluster totals of `nodes` equal the CSV sums of the placed pods and of the nodes;
- `fit` agrees with a brute-force count (one pod at a time, in plain Python) for several shapes.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from capplan import store
from capplan.analysis.fit import fit_report
from capplan.analysis.nodes import cluster_summary, nodes_report

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "realdata" / "alibaba_openb"  # see its README: source, citation
NODES_CSV = DATA / "openb_node_list_all_node.csv"
PODS_CSV = DATA / "openb_pod_list_default.csv"
MiB = 2**20
PODS_PER_NODE = 110  # the kubelet's default maxPods; the trace gives none
AT = datetime(2023, 1, 1)

def first_fit(nodes: pl.DataFrame, pods: pl.DataFrame) -> list[str | None]:
    """Each pod, in trace order, to the first node (in trace order) with room for its requests."""
    free_cpu = nodes["cpu_milli"].to_numpy().astype(np.int64).copy()
    free_mem = nodes["memory_mib"].to_numpy().astype(np.int64).copy()
    free_pods = np.full(nodes.height, PODS_PER_NODE, dtype=np.int64)
    names = nodes["sn"].to_list()
    placed: list[str | None] = []
    for cpu, mem in zip(pods["cpu_milli"].to_list(), pods["memory_mib"].to_list(), strict=True):
        ok = (free_cpu >= cpu) & (free_mem >= mem) & (free_pods >= 1)
        j = int(np.argmax(ok))
        if not ok[j]:
            placed.append(None)
            continue
        free_cpu[j] -= cpu
        free_mem[j] -= mem
        free_pods[j] -= 1
        placed.append(names[j])
    return placed


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> dict:
    nodes = pl.read_csv(NODES_CSV)
    all_pods = pl.read_csv(PODS_CSV)
    assert (nodes.height, all_pods.height) == (1523, 8152)
    pods = all_pods.filter(pl.col("pod_phase") == "Running")
    pods = pods.with_columns(pl.Series("node", first_fit(nodes, pods), dtype=pl.Utf8))
    path = tmp_path_factory.mktemp("alibaba") / "openb.duckdb"
    common = {"valid_from": AT, "valid_to": AT}
    node_frame = nodes.select(
        pl.col("sn").alias("node"),
        (pl.col("cpu_milli") / 1000).alias("cpu_capacity_cores"), (pl.col("memory_mib") * MiB).alias("memory_capacity_bytes"),
        pl.lit(PODS_PER_NODE).alias("pods_capacity"),
        (pl.col("cpu_milli") / 1000).alias("cpu_allocatable_cores"), (pl.col("memory_mib") * MiB).alias("memory_allocatable_bytes"),
        pl.lit(PODS_PER_NODE).alias("pods_allocatable"), pl.lit("{}").alias("labels"), pl.lit("[]").alias("taints"),
    ).with_columns(**{k: pl.lit(v) for k, v in common.items()})
    pod_frame = pods.select(
        pl.lit("openb").alias("namespace"), pl.col("name").alias("pod"), "node",
        pl.lit("Running").alias("phase"), pl.col("qos").alias("qos_class"),
    ).with_columns(**{k: pl.lit(v) for k, v in common.items()})
    container_frame = pods.select(
        pl.lit("openb").alias("namespace"), pl.col("name").alias("pod"), pl.lit("main").alias("container"),
        pl.lit(False).alias("init_container"), pl.lit(False).alias("restartable"),
        (pl.col("cpu_milli") / 1000).alias("cpu_request_cores"), (pl.col("memory_mib") * MiB).alias("memory_request_bytes"),
    ).with_columns(**{k: pl.lit(v) for k, v in common.items()})
    con = store.open_db(path)
    try:
        with store.transaction(con):
            store.write_spec(con, "nodes", node_frame)
            store.write_spec(con, "pods", pod_frame)
            store.write_spec(con, "containers", container_frame)
    finally:
        con.close()
    return {"path": path, "nodes": nodes, "pods": pods}


def test_cluster_totals_equal_the_csv_sums(trace) -> None:
    nodes, pods = trace["nodes"], trace["pods"]
    placed = pods.filter(pl.col("node").is_not_null())
    assert placed.height == pods.height == 5193  # every running pod found room
    con = store.open_db(trace["path"], read_only=True)
    try:
        table = nodes_report(con)
    finally:
        con.close()
    assert table.height == 1523
    summary = {r["resource"]: r for r in cluster_summary(table).iter_rows(named=True)}
    assert summary["cpu"]["allocatable"] == pytest.approx(nodes["cpu_milli"].sum() / 1000)          # 125,514 cores
    assert summary["memory"]["allocatable"] == nodes["memory_mib"].sum() * MiB
    assert summary["cpu"]["requests"] == pytest.approx(placed["cpu_milli"].sum() / 1000)           # 62,505.268 cores
    assert summary["memory"]["requests"] == placed["memory_mib"].sum() * MiB
    assert summary["pods"]["requests"] == placed.height
    # per node, too: requests equal the placement's sums
    per_node = placed.group_by("node").agg(pl.col("cpu_milli").sum(), pl.col("memory_mib").sum(), pl.len())
    joined = table.join(per_node, on="node", how="left").with_columns(pl.col("cpu_milli", "memory_mib", "len").fill_null(0))
    assert (joined["cpu_requests_cores"] * 1000 - joined["cpu_milli"]).abs().max() < 1e-6
    assert (joined["memory_requests_bytes"] - joined["memory_mib"] * MiB).abs().max() == 0
    assert (joined["pods"] - joined["len"]).abs().max() == 0
    # specs only, no usage samples: no usage columns, and a limit sum that is unbounded (no limits in the trace)
    assert table["cpu_usage_p95_cores"].null_count() == 1523
    assert table.filter(pl.col("pods") > 0)["cpu_unlimited_containers"].min() >= 1


def brute_force(trace: dict, cpu_milli: int, memory_mib: int) -> int:
    """From the placement, add pods of the shape one at a time while each resource still fits."""
    used = trace["pods"].filter(pl.col("node").is_not_null()).group_by("node").agg(
        pl.col("cpu_milli").sum(), pl.col("memory_mib").sum(), pl.len())
    used_by = {r["node"]: r for r in used.iter_rows(named=True)}
    total = 0
    for r in trace["nodes"].iter_rows(named=True):
        u = used_by.get(r["sn"], {"cpu_milli": 0, "memory_mib": 0, "len": 0})
        cpu, mem, pods = u["cpu_milli"], u["memory_mib"], u["len"]
        while cpu + cpu_milli <= r["cpu_milli"] and mem + memory_mib <= r["memory_mib"] and pods < PODS_PER_NODE:
            cpu, mem, pods, total = cpu + cpu_milli, mem + memory_mib, pods + 1, total + 1
    return total


@pytest.mark.parametrize("cpu_milli,memory_mib", [(4000, 16384), (12000, 49152), (500, 1024), (32000, 4096)])
def test_fit_agrees_with_brute_force(trace, cpu_milli: int, memory_mib: int) -> None:
    con = store.open_db(trace["path"], read_only=True)
    try:
        table = fit_report(con, cpu_milli / 1000, memory_mib * MiB)
    finally:
        con.close()
    total = table.filter(pl.col("node") == "TOTAL").row(0, named=True)
    expected = brute_force(trace, cpu_milli, memory_mib)
    assert expected > 0
    assert total["fits"] == expected
    per_node = table.filter(pl.col("node") != "TOTAL")
    assert per_node["fits"].sum() == expected
    limits = set(per_node["limited_by"])
    assert limits <= {"cpu", "memory", "pods"}
    if (cpu_milli, memory_mib) == (500, 1024):
        assert limits == {"cpu", "memory", "pods"}  # small pods: many nodes run out of pod slots first
