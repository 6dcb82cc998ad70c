"""Bin packing for what-if questions: which nodes could be drained, where their pods would go,
and how many nodes of a shape a set of pods needs.

All sizes are integers so sums are exact: CPU in millicores (the scheduler compares
`resource.Quantity.MilliValue()`), memory in bytes, pods as counts. A pod fits a node when its
requests fit the node's free allocatable cpu, memory and pod slots, as the scheduler's
NodeResourcesFit filter counts them (kubernetes/kubernetes
pkg/scheduler/framework/plugins/noderesources/fit.go, `fitsRequest`).

Heuristic, and why: consolidation drains the emptiest node first (by its larger request share)
and places the drained pods first-fit decreasing onto the fullest remaining nodes. Only the pods
of drained nodes move, so the plan is what `kubectl drain` of those nodes, one after another,
would do; it mirrors Karpenter's consolidation, which also removes the cheapest-to-disrupt
nodes first and keeps a node when its pods would not fit elsewhere. First-fit decreasing is
within 11/9 OPT + 6/9 bins on one dimension (Dósa 2007); `lower_bound_nodes` says how far the
answer can be from optimal on a given cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

Taints = frozenset[tuple[str, str, str]]


@dataclass(frozen=True)
class NodeBins:
    """Nodes as bins: allocatable per resource and the blocking taints (NoSchedule/NoExecute)."""

    names: list[str]
    cpu_millicores: np.ndarray
    memory_bytes: np.ndarray
    pods: np.ndarray
    taints: list[Taints]

    def __len__(self) -> int:
        return len(self.names)


@dataclass(frozen=True)
class PodItems:
    """Pods as items: the node each runs on now (index into NodeBins), its requests, and
    whether it can move (controller-owned) or goes with its node (a DaemonSet pod)."""

    node: np.ndarray
    cpu_millicores: np.ndarray
    memory_bytes: np.ndarray
    movable: np.ndarray
    daemonset: np.ndarray

    def __len__(self) -> int:
        return len(self.node)


@dataclass
class Consolidation:
    """The outcome: nodes to drain in order, and every pod's node afterwards (-1: a DaemonSet
    pod that leaves with its drained node)."""

    drained: list[int]
    placement: np.ndarray
    pinned: list[int] = field(default_factory=list)
    overfull: list[int] = field(default_factory=list)

    def kept(self, total: int) -> list[int]:
        gone = set(self.drained)
        return [i for i in range(total) if i not in gone]


def _used(bins: NodeBins, items: PodItems, placement: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(bins)
    on = placement >= 0
    cpu = np.bincount(placement[on], weights=items.cpu_millicores[on], minlength=n).astype(np.int64)
    mem = np.bincount(placement[on], weights=items.memory_bytes[on], minlength=n).astype(np.int64)
    pods = np.bincount(placement[on], minlength=n).astype(np.int64)
    return cpu, mem, pods


def fullness(bins: NodeBins, items: PodItems, placement: np.ndarray) -> np.ndarray:
    """Each node's larger share of requested cpu or memory (1.0 = full; inf without allocatable)."""
    cpu, mem, _ = _used(bins, items, placement)
    with np.errstate(divide="ignore", invalid="ignore"):
        cpu_share = np.where(bins.cpu_millicores > 0, cpu / np.maximum(bins.cpu_millicores, 1), np.inf)
        mem_share = np.where(bins.memory_bytes > 0, mem / np.maximum(bins.memory_bytes, 1), np.inf)
    return np.maximum(cpu_share, mem_share)


class _TargetMasks:
    """Which nodes a pod may move to. Taints are in the store, tolerations and node selectors are
    not, so a pod only moves among nodes whose blocking taints equal its current node's: it
    tolerates those, and a taint usually comes with a label the pod selects (the "dedicated
    nodes" pattern of the Kubernetes docs, Taints and Tolerations, "Example use cases"), so a
    pod of a dedicated node is not sent to a general one either."""

    def __init__(self, bins: NodeBins) -> None:
        self._bins = bins
        self._cache: dict[Taints, np.ndarray] = {}

    def allowed(self, source: int) -> np.ndarray:
        tolerated = self._bins.taints[source]
        mask = self._cache.get(tolerated)
        if mask is None:
            mask = np.array([t == tolerated for t in self._bins.taints], dtype=bool)
            self._cache[tolerated] = mask
        return mask


def _size_order(items: PodItems, which: np.ndarray, bins: NodeBins) -> np.ndarray:
    """`which` (pod indices) largest first by dominant share of the largest node."""
    cpu_ref = max(int(bins.cpu_millicores.max(initial=0)), 1)
    mem_ref = max(int(bins.memory_bytes.max(initial=0)), 1)
    share = np.maximum(items.cpu_millicores[which] / cpu_ref, items.memory_bytes[which] / mem_ref)
    # stable: ties keep pod order, so results do not depend on sort internals
    return which[np.argsort(-share, kind="stable")]


def place_pods(bins: NodeBins, items: PodItems, pods: np.ndarray, free_cpu: np.ndarray, free_mem: np.ndarray,
               free_pods: np.ndarray, open_nodes: np.ndarray, target_rank: np.ndarray,
               masks: _TargetMasks | None = None) -> np.ndarray | None:
    """Place `pods` (largest first) on the first open node, in `target_rank` order, with room and
    no untolerated taint. Updates the free arrays in place and returns each pod's node, or None
    (arrays then unspecified) when one does not fit."""
    masks = masks or _TargetMasks(bins)
    order = np.argsort(target_rank, kind="stable")
    targets = np.empty(len(pods), dtype=np.int64)
    position = {int(p): k for k, p in enumerate(pods)}
    for pod in _size_order(items, pods, bins):
        cpu, mem = items.cpu_millicores[pod], items.memory_bytes[pod]
        ok = (open_nodes & masks.allowed(int(items.node[pod])) & (free_cpu >= cpu) & (free_mem >= mem)
              & (free_pods >= 1))[order]
        first = int(np.argmax(ok))
        if not ok[first]:
            return None
        j = int(order[first])
        free_cpu[j] -= cpu
        free_mem[j] -= mem
        free_pods[j] -= 1
        targets[position[int(pod)]] = j
    return targets


def consolidate(bins: NodeBins, items: PodItems) -> Consolidation:
    """Drain nodes emptiest first while their movable pods fit on the nodes that stay.

    A node holding a pod that cannot move (no controller) is pinned. DaemonSet pods stay on the
    nodes that stay and leave with drained ones.
    """
    n = len(bins)
    placement = items.node.astype(np.int64).copy()
    used_cpu, used_mem, used_pods = _used(bins, items, placement)
    free_cpu = bins.cpu_millicores.astype(np.int64) - used_cpu
    free_mem = bins.memory_bytes.astype(np.int64) - used_mem
    free_pods = bins.pods.astype(np.int64) - used_pods
    stuck = ~items.movable & ~items.daemonset
    pinned = sorted({int(i) for i in items.node[stuck]})
    share = fullness(bins, items, placement)
    names = np.array(bins.names, dtype=object)
    emptiest_first = sorted(range(n), key=lambda i: (share[i], names[i]))
    # fullest first as targets: the nodes most likely to stay take the drained pods
    target_rank = np.empty(n, dtype=np.int64)
    for rank, i in enumerate(reversed(emptiest_first)):
        target_rank[i] = rank
    open_nodes = np.ones(n, dtype=bool)
    masks = _TargetMasks(bins)
    overfull = _relieve(bins, items, placement, free_cpu, free_mem, free_pods, target_rank, masks)
    drained: list[int] = []
    pinned_set = set(pinned)
    for node in emptiest_first:
        if node in pinned_set:
            continue
        on_node = placement == node
        moving = np.flatnonzero(on_node & items.movable & ~items.daemonset)
        open_nodes[node] = False
        trial = (free_cpu.copy(), free_mem.copy(), free_pods.copy())
        targets = place_pods(bins, items, moving, *trial, open_nodes, target_rank, masks) if len(moving) else \
            np.empty(0, dtype=np.int64)
        if targets is None:
            open_nodes[node] = True
            continue
        free_cpu, free_mem, free_pods = trial
        placement[moving] = targets
        placement[on_node & items.daemonset] = -1
        drained.append(node)
    return Consolidation(drained=drained, placement=placement, pinned=pinned,
                         overfull=[i for i in overfull if i not in drained])


def _relieve(bins: NodeBins, items: PodItems, placement: np.ndarray, free_cpu: np.ndarray, free_mem: np.ndarray,
             free_pods: np.ndarray, target_rank: np.ndarray, masks: _TargetMasks) -> list[int]:
    """New requests (after right-sizing) can exceed a node's allocatable: move its movable pods,
    largest first, to nodes with room until it fits (the scheduler would place them so when the
    workload is rolled out). Updates the arrays in place; returns the nodes still over."""
    over = [i for i in range(len(bins)) if free_cpu[i] < 0 or free_mem[i] < 0 or free_pods[i] < 0]
    still_over = []
    for node in sorted(over, key=lambda i: bins.names[i]):
        open_nodes = np.ones(len(bins), dtype=bool)
        open_nodes[over] = False
        for pod in _size_order(items, np.flatnonzero((placement == node) & items.movable & ~items.daemonset), bins):
            if free_cpu[node] >= 0 and free_mem[node] >= 0 and free_pods[node] >= 0:
                break
            target = place_pods(bins, items, np.array([pod]), free_cpu, free_mem, free_pods, open_nodes,
                                target_rank, masks)
            if target is None:
                continue
            placement[pod] = target[0]
            free_cpu[node] += items.cpu_millicores[pod]
            free_mem[node] += items.memory_bytes[pod]
            free_pods[node] += 1
        if free_cpu[node] < 0 or free_mem[node] < 0 or free_pods[node] < 0:
            still_over.append(node)
    return still_over


def lower_bound_nodes(bins: NodeBins, items: PodItems) -> int:
    """Fewest nodes that could hold every pod by totals alone (no fragmentation, no taints): the
    largest nodes first, each carrying its own DaemonSet pods. No placement can use fewer."""
    placement = items.node.astype(np.int64)
    ds = items.daemonset
    n = len(bins)
    ds_cpu = np.bincount(placement[ds], weights=items.cpu_millicores[ds], minlength=n)
    ds_mem = np.bincount(placement[ds], weights=items.memory_bytes[ds], minlength=n)
    ds_pods = np.bincount(placement[ds], minlength=n)
    need = np.array([items.cpu_millicores[~ds].sum(), items.memory_bytes[~ds].sum(), (~ds).sum()], dtype=np.float64)
    if not need.any():
        return 0 if n == 0 else 1
    room = np.stack([bins.cpu_millicores - ds_cpu, bins.memory_bytes - ds_mem, bins.pods - ds_pods], axis=1)
    room = np.maximum(room.astype(np.float64), 0.0)
    for k in range(1, n + 1):
        # the k nodes with the most room, per resource (a bound: each resource on its own best k)
        if all(np.sort(room[:, r])[::-1][:k].sum() >= need[r] for r in range(3)):
            return k
    return n


def node_loss_holds(bins: NodeBins, items: PodItems, placement: np.ndarray, kept: Sequence[int]) -> tuple[bool, str | None]:
    """After consolidation, could the pods of the largest remaining node (by memory, then cpu
    allocatable) be placed on the others? DaemonSet pods go with it; every other pod needs room
    (its controller recreates it). Returns (holds, the lost node's name)."""
    if len(kept) <= 1:
        return (len(kept) == 0, bins.names[kept[0]] if kept else None)
    largest = max(kept, key=lambda i: (int(bins.memory_bytes[i]), int(bins.cpu_millicores[i]), bins.names[i]))
    used_cpu, used_mem, used_pods = _used(bins, items, placement)
    free_cpu = bins.cpu_millicores.astype(np.int64) - used_cpu
    free_mem = bins.memory_bytes.astype(np.int64) - used_mem
    free_pods = bins.pods.astype(np.int64) - used_pods
    open_nodes = np.zeros(len(bins), dtype=bool)
    open_nodes[list(kept)] = True
    open_nodes[largest] = False
    moving = np.flatnonzero((placement == largest) & ~items.daemonset)
    rank = np.argsort(np.argsort(-fullness(bins, items, placement), kind="stable"), kind="stable")
    targets = place_pods(bins, items, moving, free_cpu, free_mem, free_pods, open_nodes, rank)
    return targets is not None, bins.names[largest]


# --- node-pool sizing -----------------------------------------------------------------------

@dataclass(frozen=True)
class Shape:
    """A node type: allocatable for pods, and its price per hour (None when not known)."""

    name: str
    cpu_millicores: int
    memory_bytes: int
    pods: int
    price_per_hour: float | None = None


def pack_identical(shape: Shape, cpu_millicores: np.ndarray, memory_bytes: np.ndarray,
                   reserved_cpu_millicores: int = 0, reserved_memory_bytes: int = 0,
                   reserved_pods: int = 0) -> list[np.ndarray] | None:
    """First-fit decreasing of pods onto as many nodes of one shape as needed; each node first
    carries the reserved requests (the DaemonSet pods every node runs). Returns the pod indices
    on each node, or None when a pod is larger than an empty node."""
    room_cpu = shape.cpu_millicores - reserved_cpu_millicores
    room_mem = shape.memory_bytes - reserved_memory_bytes
    room_pods = shape.pods - reserved_pods
    if len(cpu_millicores) == 0:
        return []
    if room_pods < 1 or (cpu_millicores > room_cpu).any() or (memory_bytes > room_mem).any():
        return None
    share = np.maximum(cpu_millicores / max(room_cpu, 1), memory_bytes / max(room_mem, 1))
    order = np.argsort(-share, kind="stable")
    capacity = len(cpu_millicores)
    free_cpu = np.zeros(capacity, dtype=np.int64)
    free_mem = np.zeros(capacity, dtype=np.int64)
    free_pods = np.zeros(capacity, dtype=np.int64)
    opened = 0
    members: list[list[int]] = []
    for pod in order:
        cpu, mem = cpu_millicores[pod], memory_bytes[pod]
        ok = (free_cpu[:opened] >= cpu) & (free_mem[:opened] >= mem) & (free_pods[:opened] >= 1)
        j = int(np.argmax(ok)) if opened else 0
        if not opened or not ok[j]:
            j = opened
            opened += 1
            free_cpu[j], free_mem[j], free_pods[j] = room_cpu, room_mem, room_pods
            members.append([])
        free_cpu[j] -= cpu
        free_mem[j] -= mem
        free_pods[j] -= 1
        members[j].append(int(pod))
    return [np.array(m, dtype=np.int64) for m in members]
