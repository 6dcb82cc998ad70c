"""The bundled sample: realistic enough for every analysis, and the per-node table agrees with
sums computed independently from the generator's source frames."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import timedelta

import polars as pl
import pytest

from capplan import store
from capplan.analysis.nodes import nodes_report
from capplan.analysis.qos import qos_classes


def test_sample_has_what_the_analyses_need(sample_cluster) -> None:
    f = sample_cluster.frames
    nodes = f["nodes"]
    assert nodes.height >= 6
    assert nodes["labels"].map_elements(lambda s: json.loads(s)["node.kubernetes.io/instance-type"],
                                        return_dtype=pl.Utf8).n_unique() >= 2
    unreserved = nodes.filter((pl.col("cpu_capacity_cores") == pl.col("cpu_allocatable_cores"))
                              & (pl.col("memory_capacity_bytes") == pl.col("memory_allocatable_bytes")))
    assert unreserved.height == 1
    pods = f["pods"]
    assert pods["namespace"].n_unique() >= 3 and pods.height >= 60
    owner_kinds = set(pods["owner_kind"].drop_nulls()) | set(f["owners"]["owner_kind"].drop_nulls())
    assert {"ReplicaSet", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"} <= owner_kinds
    assert set(qos_classes(f["containers"])["qos_class"]) == {"BestEffort", "Burstable", "Guaranteed"}
    containers = f["containers"]
    assert containers.filter(pl.col("init_container") & ~pl.col("restartable")).height >= 1
    assert containers.filter(~pl.col("init_container")).group_by("namespace", "pod").len()["len"].max() >= 2
    assert (f["restarts"]["reason"] == "OOMKilled").sum() >= 1
    assert sample_cluster.end - sample_cluster.start == timedelta(days=14) - sample_cluster.step
    assert sample_cluster.step == timedelta(minutes=5)


def test_node_requests_equal_independent_sums(sample_cluster, sample_db_readonly) -> None:
    # Independent: plain Python over the generator's frames, pods alive at the end of the window.
    f = sample_cluster.frames
    end = sample_cluster.end
    alive = {(r["namespace"], r["pod"]): r["node"] for r in f["pods"].iter_rows(named=True)
             if r["valid_from"] <= end <= r["valid_to"] and r["phase"] == "Running"}
    per_pod: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    init_max: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in f["containers"].iter_rows(named=True):
        key = (r["namespace"], r["pod"])
        if key not in alive:
            continue
        for res in ("cpu_request_cores", "memory_request_bytes"):
            value = r[res] or 0.0
            if r["init_container"] and not r["restartable"]:
                init_max[key][res] = max(init_max[key][res], value)  # no sidecar precedes one in the sample
            else:
                per_pod[key][res] += value
    expected: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for key, node in alive.items():
        for res in ("cpu_request_cores", "memory_request_bytes"):
            expected[node][res] += max(per_pod[key][res], init_max[key][res])
        expected[node]["pods"] += 1
    con = store.open_db(sample_db_readonly, read_only=True)
    table = nodes_report(con, timedelta(days=14))
    con.close()
    assert sorted(table["node"]) == sorted(f["nodes"]["node"])
    for row in table.iter_rows(named=True):
        want = expected[row["node"]]
        assert row["cpu_requests_cores"] == pytest.approx(want["cpu_request_cores"])
        assert row["memory_requests_bytes"] == pytest.approx(want["memory_request_bytes"])
        assert row["pods"] == want["pods"]


def test_node_usage_p95_equals_numpy_over_the_source_samples(sample_cluster, sample_db_readonly) -> None:
    import numpy as np

    from capplan.sample import usage_frames

    # as stored (schema 003): the nearest millicore and KiB
    usage = pl.concat(list(usage_frames(sample_cluster))).with_columns(
        ((pl.col("memory_bytes").cast(pl.Float64) / 1024).round(0) * 1024).cast(pl.Int64),
        ((pl.col("cpu_cores").cast(pl.Float64) * 1000).round(0) / 1000).cast(pl.Float32))
    per_ts = usage.group_by("node", "ts").agg(pl.col("memory_bytes").sum(), pl.col("cpu_cores").cast(pl.Float64).sum())
    con = store.open_db(sample_db_readonly, read_only=True)
    table = nodes_report(con, timedelta(days=14))
    con.close()
    for row in table.iter_rows(named=True):
        mine = per_ts.filter(pl.col("node") == row["node"])
        # DuckDB's quantile_cont is linear interpolation, numpy's default method
        assert row["memory_usage_p95_bytes"] == pytest.approx(np.percentile(mine["memory_bytes"].to_numpy(), 95))
        assert row["cpu_usage_p95_cores"] == pytest.approx(np.percentile(mine["cpu_cores"].to_numpy(), 95), rel=1e-5)
        assert row["memory_usage_max_bytes"] == mine["memory_bytes"].max()
