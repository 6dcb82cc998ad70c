"""Real exporters' label sets and scrape configs, each case hand-written into one real
Prometheus: a second cAdvisor scrape of the same containers, containerd's empty `container`
label, kube-state-metrics scraped without honor_labels, no restart_policy on init containers
(before KSM 2.11), init and sidecar restarts with their reasons, pod-level resources, node labels
off by default (KSM 2.10+) with the zone from kube_node_info, "" owners (KSM 2.8+), the pause
container as containerd exports it, and a changing last-terminated reason."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from capplan.collect import CollectOptions, collect
from tests.collect.test_collect import stored_usage, table
from tests.promharness import PrometheusServer, Series, build_tsdb

T0 = 1_790_000_100          # a multiple of 300
SCRAPE = 60
N = 121                     # two hours of 60 s scrapes
TS = [T0 + SCRAPE * i for i in range(N)]
KSM = {"job": "kube-state-metrics", "instance": "10.244.3.17:8080"}


def kubelet(node: str, path: str = "/metrics/cadvisor") -> dict[str, str]:
    return {"job": "kubelet", "metrics_path": path, "instance": f"10.0.0.{len(node)}:10250", "node": node}


def cadvisor(ns: str, pod: str, container: str, node: str, cores: float, memory: float, path: str = "/metrics/cadvisor",
             image: str | None = None) -> list[Series]:
    labels = {"namespace": ns, "pod": pod, "container": container, **kubelet(node, path),
              "image": image if image is not None else f"registry.example/{container or 'app'}:1"}
    return [Series("container_cpu_usage_seconds_total", {**labels, "cpu": "total"}, TS,
                   [100.0 + cores * SCRAPE * i for i in range(N)], kind="counter"),
            Series("container_memory_working_set_bytes", labels, TS, [memory] * N)]


def ksm(name: str, labels: dict[str, str], values: list[float] | float = 1.0, ts: list[int] | None = None) -> Series:
    ts = ts or TS
    vals = values if isinstance(values, list) else [values] * len(ts)
    return Series(name, {**KSM, **labels}, ts, vals)


def pod(ns: str, name: str, node: str, qos: str = "Burstable", owner: tuple[str, str] | None = ("ReplicaSet", "rs-1"),
        ) -> list[Series]:
    base = {"namespace": ns, "pod": name, "uid": f"uid-{ns}-{name}"}
    kind, owner_name = owner or ("", "")
    return [ksm("kube_pod_info", {**base, "node": node, "host_ip": "10.0.0.9", "pod_ip": "10.244.1.9",
                                  "created_by_kind": kind, "created_by_name": owner_name, "priority_class": ""}),
            ksm("kube_pod_owner", {**base, "owner_kind": kind, "owner_name": owner_name,
                                   "owner_is_controller": "true" if owner else ""}),
            ksm("kube_pod_status_qos_class", {**base, "qos_class": qos}),
            ksm("kube_pod_status_phase", {**base, "phase": "Running"})]


def container(ns: str, pod_name: str, name: str, cpu: float | None = 0.25, init: bool = False,
              restart_policy: str | None = None) -> list[Series]:
    base = {"namespace": ns, "pod": pod_name, "uid": f"uid-{ns}-{pod_name}", "container": name}
    prefix = "kube_pod_init_container" if init else "kube_pod_container"
    info = {**base, "image": "registry.example/x:1", "container_id": f"containerd://{name}"}
    if restart_policy is not None:
        info["restart_policy"] = restart_policy
    out = [ksm(f"{prefix}_info", info)]
    if cpu is not None:
        out.append(ksm(f"{prefix}_resource_requests", {**base, "node": "n1", "resource": "cpu", "unit": "core"}, cpu))
    return out


def counter_steps(at: list[int]) -> list[float]:
    """A restarts counter rising by one at each of the given sample indices."""
    return [float(sum(1 for a in at if i >= a)) for i in range(N)]


def series() -> list[Series]:
    out: list[Series] = []
    for n in ("n1", "n2", "n-ctrd"):
        out.append(ksm("kube_node_info", {"node": n, "provider_id": f"aws:///us-east-1a/i-0{len(n)}abc",
                                          "internal_ip": "10.0.0.1", "kubelet_version": "v1.33.2"}))
        for kind in ("capacity", "allocatable"):
            out.append(ksm(f"kube_node_status_{kind}", {"node": n, "resource": "cpu", "unit": "core"}, 4))
            out.append(ksm(f"kube_node_status_{kind}", {"node": n, "resource": "memory", "unit": "byte"}, 16 * 2**30))
    # "dup": one container scraped twice (kubelet /metrics/cadvisor and /metrics/resource), plus
    # containerd's pause container (container="", image=pause) that must not count
    out += pod("dup", "api-1", "n1") + container("dup", "api-1", "app")
    out += cadvisor("dup", "api-1", "app", "n1", 0.5, 3e8)
    out += cadvisor("dup", "api-1", "app", "n1", 0.5, 3e8, path="/metrics/resource")
    out += cadvisor("dup", "api-1", "", "n1", 0.001, 1e6, image="registry.k8s.io/pause:3.10")
    # "ctrd": a node whose containers all arrive with container="" (the containerd regression)
    out += pod("ctrd", "web-1", "n-ctrd") + container("ctrd", "web-1", "nginx")
    out += cadvisor("ctrd", "web-1", "", "n-ctrd", 0.2, 2e8, image="registry.example/nginx:1")
    # "init": an init container without restart_policy (KSM < 2.11) that restarted twice, first
    # with Error, then OOMKilled; a plain container whose last terminated reason changes too
    out += pod("init", "db-0", "n2", owner=("StatefulSet", "db")) + container("init", "db-0", "pg")
    out += container("init", "db-0", "proxy", init=True)
    out += cadvisor("init", "db-0", "pg", "n2", 0.1, 1e8)
    ibase = {"namespace": "init", "pod": "db-0", "uid": "uid-init-db-0", "container": "proxy"}
    out.append(Series("kube_pod_init_container_status_restarts_total", {**KSM, **ibase}, TS, counter_steps([30, 90]),
                      kind="counter"))
    out.append(ksm("kube_pod_init_container_status_last_terminated_reason", {**ibase, "reason": "Error"}, ts=TS[30:90]))
    out.append(ksm("kube_pod_init_container_status_last_terminated_reason", {**ibase, "reason": "OOMKilled"}, ts=TS[90:]))
    cbase = {"namespace": "init", "pod": "db-0", "uid": "uid-init-db-0", "container": "pg"}
    out.append(Series("kube_pod_container_status_restarts_total", {**KSM, **cbase}, TS, counter_steps([15, 60]),
                      kind="counter"))
    out.append(ksm("kube_pod_container_status_last_terminated_reason", {**cbase, "reason": "OOMKilled"}, ts=TS[15:60]))
    out.append(ksm("kube_pod_container_status_last_terminated_reason", {**cbase, "reason": "Completed"}, ts=TS[60:]))
    # "plr": a Burstable pod without an owner ("" labels) whose containers declare nothing:
    # pod-level resources (spec.resources), which kube-state-metrics does not export
    out += pod("plr", "solo", "n2", owner=None) + container("plr", "solo", "main", cpu=None)
    out += cadvisor("plr", "solo", "main", "n2", 0.3, 5e7)
    # kube-state-metrics scraped without honor_labels: its own namespace/pod win
    out.append(Series("kube_pod_info", {"job": "kube-state-metrics", "instance": "10.244.3.17:8080",
                                        "namespace": "monitoring", "pod": "kube-state-metrics-7d9f",
                                        "exported_namespace": "shop", "exported_pod": "cart-1", "node": "n2",
                                        "uid": "uid-x", "created_by_kind": "", "created_by_name": "",
                                        "priority_class": ""}, TS, [1.0] * N))
    return out


START, END = datetime.utcfromtimestamp(T0 + 600), datetime.utcfromtimestamp(T0 + 7200)


@pytest.fixture(scope="module")
def exporters(tmp_path_factory) -> Iterator[PrometheusServer]:
    folder = tmp_path_factory.mktemp("exporters")
    build_tsdb(series(), folder / "tsdb")
    with PrometheusServer(folder / "tsdb") as server:
        yield server


@pytest.fixture(scope="module")
def run(exporters, tmp_path_factory):
    db = tmp_path_factory.mktemp("exp") / "exp.duckdb"
    summary = collect(CollectOptions(url=exporters.url, db=db, step_seconds=300, start=START, end=END))
    return db, summary


def _warning(summary, *words: str) -> str:
    found = [w for w in summary.warnings if all(word in w for word in words)]
    assert len(found) == 1, (words, summary.warnings)
    return found[0]


def test_a_second_cadvisor_scrape_is_detected_and_one_is_used(run) -> None:
    db, summary = run
    _warning(summary, "2 scrapes", "/metrics/cadvisor", "/metrics/resource", "--usage-selector")
    app = stored_usage(db).filter(pl.col("namespace") == "dup")
    assert app["container"].unique().to_list() == ["app"]  # the pause container is not counted
    assert app["cpu_cores"].to_list() == pytest.approx([0.5] * app.height)  # not 1.0
    # not doubled (6e8); the store keeps whole KiB (docs/storage.md): 3e8 bytes is 292,968.75 KiB
    assert (app["memory_bytes"] == round(300_000_000 / 1024) * 1024).all()
    sources = table(db, "collector_sources").filter(pl.col("exporter") == "cadvisor")
    assert sources["selector"].to_list() == ['job="kubelet",metrics_path="/metrics/cadvisor"']


def test_usage_selector_overrides_the_choice(exporters, tmp_path: Path) -> None:
    db = tmp_path / "sel.duckdb"
    summary = collect(CollectOptions(url=exporters.url, db=db, step_seconds=300, start=START, end=END,
                                     usage_selector='metrics_path="/metrics/resource"'))
    assert not any("scrapes" in w for w in summary.warnings)
    usage = stored_usage(db)
    assert usage["namespace"].unique().to_list() == ["dup"]  # only that pod is exported by /metrics/resource
    assert usage["cpu_cores"].to_list() == pytest.approx([0.5] * usage.height)


def test_containerd_empty_container_label_is_named(run) -> None:
    db, summary = run
    _warning(summary, "empty `container` label", "n-ctrd", "containerd")
    assert stored_usage(db).filter(pl.col("namespace") == "ctrd").height == 0


def test_missing_honor_labels_is_named(run) -> None:
    _warning(run[1], "exported_namespace", "honor_labels: true")


def test_init_containers_without_restart_policy_are_named(run) -> None:
    db, summary = run
    _warning(summary, "restart_policy", "2.11", "sidecars")
    proxy = table(db, "containers").filter(pl.col("container") == "proxy")
    assert proxy["init_container"].all() and not proxy["restartable"].any()


def test_init_and_sidecar_restarts_and_changing_reasons_are_collected(run) -> None:
    db, _ = run
    got = table(db, "restarts").sort("container", "ts").select("container", "ts", "restarts_total", "reason").rows()
    def at(i: int) -> datetime:  # samples are on the 5-minute grid at 0, 5, 10...
        return datetime.utcfromtimestamp(TS[i])
    assert got == [("pg", at(15), 1, "OOMKilled"), ("pg", at(60), 2, "Completed"),
                   ("proxy", at(30), 1, "Error"), ("proxy", at(90), 2, "OOMKilled")]


def test_pod_level_resources_are_named(run) -> None:
    db, summary = run
    _warning(summary, "plr/solo", "pod-level resources", "spec.resources")
    pods = table(db, "pods").filter(pl.col("pod") == "solo")
    assert pods["owner_kind"].to_list() == [None]  # "" owner labels (KSM 2.8+) are no owner, not a kind ""


def test_node_labels_off_by_default_fall_back_to_the_zone_and_name_the_flag(run) -> None:
    db, summary = run
    _warning(summary, "kube_node_labels is absent", "--metric-labels-allowlist")
    nodes = table(db, "nodes")
    assert {json.dumps(json.loads(t)) for t in nodes["labels"]} == {'{"topology.kubernetes.io/zone": "us-east-1a"}'}
