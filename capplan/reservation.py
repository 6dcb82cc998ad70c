"""The node reservation guideline: how much of a node's capacity should be kept back for the
OS, the kubelet and the hard eviction threshold. Neutral ground: the `nodes` analysis checks
allocatable against it and the sample generator writes allocatable from it."""

from __future__ import annotations

import math

GiB = 2**30
MiB = 2**20
HARD_EVICTION_BYTES = 100 * MiB

# The guideline `reserved_ok` checks against: GKE's node reservation table
# (cloud.google.com/kubernetes-engine/docs/concepts/plan-node-sizes, "Memory and CPU reservations"),
# as tiers of (slice size, share of the slice reserved for the OS and the kubelet):
# CPU: 6% of the first core, 1% of the next core, 0.5% of the next 2 cores, 0.25% above 4 cores.
# Memory: 25% of the first 4 GiB, 20% of the next 4 GiB, 10% of the next 8 GiB, 6% of the next
# 112 GiB, 2% above 128 GiB (255 MiB flat below 1 GiB); plus the kubelet's 100Mi hard eviction
# threshold (memory.available<100Mi), which allocatable also keeps back.
# A node is reserved_ok when both reservations are non-zero and at least the guideline (with 1%
# slack for rounding in how providers write allocatable).
CPU_RESERVE_TIERS = ((1.0, 0.06), (1.0, 0.01), (2.0, 0.005), (math.inf, 0.0025))
MEMORY_RESERVE_TIERS = ((4 * GiB, 0.25), (4 * GiB, 0.20), (8 * GiB, 0.10), (112 * GiB, 0.06), (math.inf, 0.02))
SMALL_NODE_MEMORY_RESERVE = 255 * MiB
RESERVE_SLACK = 0.99




def tiered_reservation(total: float, tiers: tuple[tuple[float, float], ...]) -> float:
    """Sum of share x slice over the tiers a total spans (GKE's reservation table)."""
    left, reserved = float(total), 0.0
    for size, share in tiers:
        take = min(left, size)
        reserved += take * share
        left -= take
        if left <= 0:
            break
    return reserved


def recommended_reservation(cpu_capacity_cores: float, memory_capacity_bytes: float) -> tuple[float, float]:
    """The guideline's cpu cores and memory bytes to keep back (memory incl. the 100Mi hard
    eviction threshold)."""
    memory = (SMALL_NODE_MEMORY_RESERVE if memory_capacity_bytes < GiB
              else tiered_reservation(memory_capacity_bytes, MEMORY_RESERVE_TIERS))
    return tiered_reservation(cpu_capacity_cores, CPU_RESERVE_TIERS), memory + HARD_EVICTION_BYTES
