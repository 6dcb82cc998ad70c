"""Tiny hand-made stores for the recommend/backtest tests: pods with owners, specs and usage."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from capplan import store

T0 = datetime(2024, 1, 1)
MI = 2**20


class TinyCluster:
    """Collects pods, containers, owners, hpas, restarts and usage; write() stores them."""

    def __init__(self, start: datetime = T0, step: timedelta = timedelta(minutes=1)):
        self.start, self.step = start, step
        self.pods: list[dict] = []
        self.containers: list[dict] = []
        self.owners: list[dict] = []
        self.hpas: list[dict] = []
        self.restarts: list[dict] = []
        self.usage: list[pl.DataFrame] = []

    def pod(self, namespace: str, pod: str, cpu: np.ndarray, memory: np.ndarray, *, owner: tuple | None = None,
            container: str = "app", request: tuple = (0.5, None, 512 * MI, 512 * MI), offset: int = 0,
            node: str = "n1") -> TinyCluster:
        """A pod with one container whose usage is `cpu` cores / `memory` bytes, one value per step,
        starting `offset` steps after start. request = (cpu req, cpu lim, mem req, mem lim)."""
        ts = [self.start + self.step * (offset + i) for i in range(len(cpu))]
        first, last = ts[0], ts[-1]
        if not any(p["pod"] == pod and p["namespace"] == namespace for p in self.pods):
            self.pods.append({"namespace": namespace, "pod": pod, "valid_from": first, "valid_to": last, "node": node,
                              "owner_kind": owner[0] if owner else None, "owner_name": owner[1] if owner else None,
                              "phase": "Running"})
        self.containers.append({"namespace": namespace, "pod": pod, "container": container, "valid_from": first,
                                "valid_to": last, "init_container": False, "restartable": False, "init_order": None,
                                "cpu_request_cores": request[0], "cpu_limit_cores": request[1],
                                "memory_request_bytes": request[2], "memory_limit_bytes": request[3]})
        self.usage.append(pl.DataFrame({
            "namespace": namespace, "pod": pod, "container": container, "node": node, "ts": ts,
            "cpu_cores": np.asarray(cpu, dtype=float), "memory_bytes": np.asarray(memory, dtype=float),
        }).with_columns(pl.col("memory_bytes").fill_nan(None)))  # NaN = not measured
        return self

    def owner(self, namespace: str, kind: str, name: str, owner_kind: str, owner_name: str) -> TinyCluster:
        """An owner link such as ReplicaSet -> Deployment."""
        end = self.start + timedelta(days=60)
        self.owners.append({"namespace": namespace, "kind": kind, "name": name, "valid_from": self.start,
                            "valid_to": end, "owner_kind": owner_kind, "owner_name": owner_name})
        return self

    def hpa(self, namespace: str, kind: str, name: str, metric: str) -> TinyCluster:
        """An HPA on kind/name scaling on `metric`."""
        self.hpas.append({"namespace": namespace, "hpa": name, "metric_name": metric, "valid_from": self.start,
                          "valid_to": self.start + timedelta(days=60), "target_kind": kind, "target_name": name})
        return self

    def oom(self, namespace: str, pod: str, container: str, ts: datetime) -> TinyCluster:
        """An OOM kill restart."""
        self.restarts.append({"namespace": namespace, "pod": pod, "container": container, "ts": ts,
                              "restarts_total": len(self.restarts) + 1, "reason": "OOMKilled"})
        return self

    def write(self, path: Path) -> Path:
        """Store everything in a fresh DuckDB at `path`."""
        con = store.open_db(path)
        try:
            with store.transaction(con):
                store.write_spec(con, "pods", pl.DataFrame(self.pods))
                store.write_spec(con, "containers", pl.DataFrame(self.containers, schema_overrides={
                    "cpu_request_cores": pl.Float64, "cpu_limit_cores": pl.Float64,
                    "memory_request_bytes": pl.Int64, "memory_limit_bytes": pl.Int64, "init_order": pl.Int32}))
                if self.owners:
                    store.write_spec(con, "owners", pl.DataFrame(self.owners))
                if self.hpas:
                    store.write_spec(con, "hpas", pl.DataFrame(self.hpas))
                if self.restarts:
                    store.write_restarts(con, pl.DataFrame(self.restarts))
                store.write_usage(con, pl.concat(self.usage))
        finally:
            con.close()
        return path
