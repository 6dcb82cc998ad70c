"""Node-pool sizing: for the pods as they are (or right-sized), how many nodes of each shape
would hold them, what that costs, and the cheapest mix found.

Every node of a shape first carries the DaemonSet pods (the largest per-node DaemonSet requests
seen now), then the other pods are packed first-fit decreasing (capplan.analysis.packing). Taints
and pools are not modelled here: the answer is for one pool holding every pod.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import polars as pl

from capplan.analysis.packing import Shape, pack_identical
from capplan.errors import BadInputError, UsageError
from capplan.reservation import recommended_reservation

HOURS_PER_MONTH = 730.0  # 8,760 h / 12, the month of the AWS and Google Cloud pricing calculators
_PACKAGE_DIR = Path(__file__).resolve().parents[1]

SIZING_SCHEMA = {
    "shape": pl.Utf8, "nodes": pl.Int64, "cpu_allocatable_cores": pl.Float64,
    "memory_allocatable_bytes": pl.Int64, "cpu_stranded_cores": pl.Float64, "memory_stranded_bytes": pl.Int64,
    "cpu_request_ratio": pl.Float64, "memory_request_ratio": pl.Float64, "monthly_cost": pl.Float64,
    "note": pl.Utf8,
}


def cloud_data_dir() -> Path:
    """data/cloud: installed inside the package, or at the top of a source tree."""
    for candidate in (_PACKAGE_DIR / "cloud_data", _PACKAGE_DIR.parent / "data" / "cloud"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("capplan's data/cloud folder is missing from this installation")


def _rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """CSV rows with their line numbers; lines starting with # are comments."""
    with open(path, encoding="utf-8", newline="") as handle:
        lines = [(n, line) for n, line in enumerate(handle, start=1) if line.strip() and not line.startswith("#")]
    if not lines:
        raise BadInputError(f"{path}:1: empty file")
    reader = csv.DictReader([line for _, line in lines])
    return [(lines[k + 1][0], row) for k, row in enumerate(reader)]


def _number(path: Path, line: int, row: dict[str, str], column: str, required: bool = True) -> float | None:
    text = (row.get(column) or "").strip()
    if not text:
        if required:
            raise BadInputError(f"{path}:{line}: {column}: missing")
        return None
    try:
        value = float(text)
    except ValueError:
        raise BadInputError(f"{path}:{line}: {column}: not a number: {text!r}") from None
    if not np.isfinite(value) or value < 0:
        raise BadInputError(f"{path}:{line}: {column}: must be finite and >= 0, not {text}")
    return value


def read_shapes(path: Path) -> dict[str, Shape]:
    """A shapes CSV: shape, cpu_capacity_cores, memory_capacity_bytes, pods_capacity, and
    optionally cpu_allocatable_cores, memory_allocatable_bytes, price_per_hour. Allocatable
    defaults to capacity minus GKE's reservation table and the 100Mi eviction threshold."""
    shapes: dict[str, Shape] = {}
    for line, row in _rows(path):
        name = (row.get("shape") or "").strip()
        if not name:
            raise BadInputError(f"{path}:{line}: shape: missing")
        cpu = _number(path, line, row, "cpu_capacity_cores")
        mem = _number(path, line, row, "memory_capacity_bytes")
        pods = _number(path, line, row, "pods_capacity")
        assert cpu is not None and mem is not None and pods is not None
        reserve_cpu, reserve_mem = recommended_reservation(cpu, mem)
        cpu_alloc = _number(path, line, row, "cpu_allocatable_cores", required=False)
        mem_alloc = _number(path, line, row, "memory_allocatable_bytes", required=False)
        shapes[name] = Shape(
            name=name,
            cpu_millicores=round(1000 * (cpu_alloc if cpu_alloc is not None else cpu - reserve_cpu)),
            memory_bytes=round(mem_alloc if mem_alloc is not None else mem - reserve_mem),
            pods=int(pods), price_per_hour=_number(path, line, row, "price_per_hour", required=False),
        )
    return shapes


def read_prices(path: str | Path) -> dict[str, float]:
    """A prices CSV (`instance_type,price_per_hour`, # for comments): instance type -> price per hour."""
    path = Path(path)
    prices: dict[str, float] = {}
    for line, row in _rows(path):
        kind = (row.get("instance_type") or "").strip()
        if not kind:
            raise BadInputError(f"{path}:{line}: instance_type: missing")
        price = _number(path, line, row, "price_per_hour")
        assert price is not None
        prices[kind] = price
    return prices


def shapes_from_nodes(nodes: pl.DataFrame) -> dict[str, Shape]:
    """The store's own node types (column instance_type): the allocatable of one node of each."""
    shapes: dict[str, Shape] = {}
    for row in nodes.sort("node").iter_rows(named=True):
        kind = row["instance_type"]
        if kind in shapes or row["cpu_allocatable_cores"] is None or row["memory_allocatable_bytes"] is None:
            continue
        shapes[kind] = Shape(name=kind, cpu_millicores=round(1000 * float(row["cpu_allocatable_cores"])),
                             memory_bytes=int(row["memory_allocatable_bytes"]), pods=int(row["pods_allocatable"] or 110))
    return shapes


def resolve_shapes(names: list[str], store_shapes: dict[str, Shape], file_shapes: dict[str, Shape],
                   prices: dict[str, float] | None) -> list[Shape]:
    """Each named shape from a shapes file, else the store's nodes, else capplan's bundled list;
    its price from `prices` when given."""
    bundled = read_shapes(cloud_data_dir() / "shapes.csv")
    found = []
    for name in names:
        shape = file_shapes.get(name) or store_shapes.get(name) or bundled.get(name)
        if shape is None:
            raise UsageError(f"--shapes: unknown shape {name!r}: not in --shapes-file, the store's nodes, "
                             f"or the bundled list ({', '.join(sorted(bundled))})")
        if prices is not None and name in prices:
            shape = replace(shape, price_per_hour=prices[name])
        found.append(shape)
    return found


@dataclass(frozen=True)
class Workload:
    """The pods to size for: requests of the pods that are not DaemonSet pods, and what every
    node carries for DaemonSets."""

    cpu_millicores: np.ndarray
    memory_bytes: np.ndarray
    daemonset_cpu_millicores: int
    daemonset_memory_bytes: int
    daemonset_pods: int


def workload_from_pods(pods: pl.DataFrame) -> Workload:
    """From pod_resources() rows with node and workload_kind: DaemonSet pods become a per-node
    reservation (the largest seen on a node now), every other pod an item to pack."""
    kind = pl.col("workload_kind").fill_null("") if "workload_kind" in pods.columns else pl.lit("")
    ds = pods.filter(kind == "DaemonSet")
    rest = pods.filter(kind != "DaemonSet")
    per_node = ds.group_by("node").agg(
        (pl.col("cpu_request_cores").fill_null(0) * 1000).round(0).sum().alias("cpu"),
        pl.col("memory_request_bytes").fill_null(0).round(0).sum().alias("mem"), pl.len().alias("pods"))
    return Workload(
        cpu_millicores=(rest["cpu_request_cores"].fill_null(0) * 1000).round(0).cast(pl.Int64).to_numpy(),
        memory_bytes=rest["memory_request_bytes"].fill_null(0).round(0).cast(pl.Int64).to_numpy(),
        daemonset_cpu_millicores=int(per_node.select(pl.col("cpu").max()).item() or 0) if per_node.height else 0,
        daemonset_memory_bytes=int(per_node.select(pl.col("mem").max()).item() or 0) if per_node.height else 0,
        daemonset_pods=int(per_node.select(pl.col("pods").max()).item() or 0) if per_node.height else 0,
    )


def _row(name: str, shapes: list[Shape], members: list[np.ndarray], work: Workload, note: str = "") -> dict:
    cpu_alloc = sum(s.cpu_millicores for s in shapes) / 1000
    mem_alloc = sum(s.memory_bytes for s in shapes)
    n = len(shapes)
    cpu_used = (float(work.cpu_millicores.sum()) + n * work.daemonset_cpu_millicores) / 1000
    mem_used = float(work.memory_bytes.sum()) + n * work.daemonset_memory_bytes
    priced = all(s.price_per_hour is not None for s in shapes)
    return {
        "shape": name, "nodes": n, "cpu_allocatable_cores": cpu_alloc, "memory_allocatable_bytes": mem_alloc,
        "cpu_stranded_cores": cpu_alloc - cpu_used, "memory_stranded_bytes": int(mem_alloc - mem_used),
        "cpu_request_ratio": cpu_used / cpu_alloc if cpu_alloc else None,
        "memory_request_ratio": mem_used / mem_alloc if mem_alloc else None,
        "monthly_cost": sum(s.price_per_hour or 0.0 for s in shapes) * HOURS_PER_MONTH if priced and n else None,
        "note": note,
    }


def _holds_in_one(shape: Shape, work: Workload, pods: np.ndarray) -> bool:
    packed = pack_identical(shape, work.cpu_millicores[pods], work.memory_bytes[pods],
                            work.daemonset_cpu_millicores, work.daemonset_memory_bytes, work.daemonset_pods)
    return packed is not None and len(packed) <= 1


def size_pools(work: Workload, shapes: list[Shape]) -> pl.DataFrame:
    """One row per shape (nodes needed, allocatable, stranded capacity, cost), then `best mix`:
    for each shape's packing, the least-filled node replaced by the cheapest shape that holds
    its pods; the cheapest result over all shapes (needs prices)."""
    rows = []
    packs: dict[str, list[np.ndarray]] = {}
    for shape in shapes:
        members = pack_identical(shape, work.cpu_millicores, work.memory_bytes, work.daemonset_cpu_millicores,
                                 work.daemonset_memory_bytes, work.daemonset_pods)
        if members is None:
            rows.append({**{k: None for k in SIZING_SCHEMA}, "shape": shape.name,
                         "note": "a pod (or the DaemonSets) needs more than one node of this shape"})
            continue
        packs[shape.name] = members
        rows.append(_row(shape.name, [shape] * len(members), members, work))
    by_name = {s.name: s for s in shapes}
    best: dict | None = None
    if all(s.price_per_hour is not None for s in shapes):
        for name, members in packs.items():
            if not members:
                continue
            base = by_name[name]
            fill = [float(work.cpu_millicores[m].sum()) / base.cpu_millicores + float(work.memory_bytes[m].sum())
                    / base.memory_bytes for m in members]
            last = int(np.argmin(fill))
            tail = [s for s in shapes if _holds_in_one(s, work, members[last])]
            cheapest = min(tail, key=lambda s: (s.price_per_hour, s.name)) if tail else base
            mix = [base] * (len(members) - 1) + [cheapest]
            label = f"{len(members) - 1} x {base.name} + 1 x {cheapest.name}" if cheapest is not base else \
                f"{len(members)} x {base.name}"
            row = _row("best mix", mix, members, work, note=label)
            if best is None or row["monthly_cost"] < best["monthly_cost"]:
                best = row
    if best is not None:
        rows.append(best)
    return pl.DataFrame(rows, schema=SIZING_SCHEMA)
