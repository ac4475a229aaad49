"""Alpha-beta cost of collectives per algorithm; the fastest algorithm the topology allows wins.

All functions broadcast: ``size_bytes`` and every tier parameter may be arrays. ``size_bytes`` is
the per-device buffer: the vector reduced by an all-reduce, the gathered output of an all-gather,
the input of a reduce-scatter, the data one device sends in an all-to-all, the message of a send.

Notation: n devices, S bytes, alpha the startup latency of one step, B the per-direction bandwidth
of one device (all its links on a switch, one link per peer on a full mesh), times efficiency.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "TierArrays",
    "ring_allreduce_s",
    "tree_allreduce_s",
    "one_shot_allreduce_s",
    "two_shot_allreduce_s",
    "ring_allgather_s",
    "direct_allgather_s",
    "alltoall_s",
    "sendrecv_s",
    "collective_time_s",
    "collective_hbm_bytes",
    "spans_nodes",
    "ALLREDUCE_ALGORITHMS",
]

ALLREDUCE_ALGORITHMS = ("ring", "tree", "one_shot", "two_shot", "hierarchical")


@dataclass(frozen=True)
class TierArrays:
    """Parameters of the links between the devices of one collective (arrays broadcast)."""

    link_Bps: ArrayLike  # one link, one direction
    links: ArrayLike  # links per device
    latency_s: ArrayLike
    efficiency: ArrayLike
    full_mesh: bool  # point-to-point links, one per peer (no switch)

    def device_Bps(self, n: ArrayLike) -> np.ndarray:
        """Bandwidth a device can drive towards n-1 peers at once."""
        link = np.asarray(self.link_Bps) * np.asarray(self.efficiency)
        if self.full_mesh:
            return link * np.minimum(np.asarray(n) - 1, self.links)
        return link * np.asarray(self.links)

    def ring_Bps(self) -> np.ndarray:
        """Bandwidth of one ring step: one link on a mesh, the full injection rate on a switch."""
        link = np.asarray(self.link_Bps) * np.asarray(self.efficiency)
        return link if self.full_mesh else link * np.asarray(self.links)


def ring_allreduce_s(size_bytes: ArrayLike, n: ArrayLike, tier: TierArrays) -> np.ndarray:
    """2(n-1) alpha + 2(n-1)/n S / B  (reduce-scatter then all-gather around a ring)."""
    n = np.asarray(n, dtype=float)
    return 2 * (n - 1) * tier.latency_s + 2 * (n - 1) / n * np.asarray(size_bytes) / tier.ring_Bps()


def tree_allreduce_s(size_bytes: ArrayLike, n: ArrayLike, tier: TierArrays) -> np.ndarray:
    """2 log2(n) alpha + 2 S / B  (pipelined double binary tree: fewer steps, more bytes)."""
    n = np.asarray(n, dtype=float)
    return 2 * np.ceil(np.log2(n)) * tier.latency_s + 2 * np.asarray(size_bytes) / tier.ring_Bps()


def one_shot_allreduce_s(size_bytes: ArrayLike, n: ArrayLike, tier: TierArrays) -> np.ndarray:
    """alpha + (n-1) S / B_device: every device reads all peers' whole buffers and sums locally."""
    n = np.asarray(n, dtype=float)
    return tier.latency_s + (n - 1) * np.asarray(size_bytes) / tier.device_Bps(n)


def two_shot_allreduce_s(size_bytes: ArrayLike, n: ArrayLike, tier: TierArrays) -> np.ndarray:
    """2 alpha + 2 (n-1)/n S / B_device: direct reduce-scatter, then direct all-gather."""
    n = np.asarray(n, dtype=float)
    return 2 * tier.latency_s + 2 * (n - 1) / n * np.asarray(size_bytes) / tier.device_Bps(n)


def ring_allgather_s(size_bytes: ArrayLike, n: ArrayLike, tier: TierArrays) -> np.ndarray:
    """(n-1) alpha + (n-1)/n S / B. Reduce-scatter costs the same."""
    n = np.asarray(n, dtype=float)
    return (n - 1) * tier.latency_s + (n - 1) / n * np.asarray(size_bytes) / tier.ring_Bps()


def direct_allgather_s(size_bytes: ArrayLike, n: ArrayLike, tier: TierArrays) -> np.ndarray:
    """alpha + (n-1)/n S / B_device: each device sends its shard to every peer at once."""
    n = np.asarray(n, dtype=float)
    return tier.latency_s + (n - 1) / n * np.asarray(size_bytes) / tier.device_Bps(n)


def alltoall_s(size_bytes: ArrayLike, n: ArrayLike, tier: TierArrays) -> np.ndarray:
    """alpha + (n-1)/n S / B_device (pairwise exchange, all peers at once)."""
    return direct_allgather_s(size_bytes, n, tier)


def sendrecv_s(size_bytes: ArrayLike, tier: TierArrays) -> np.ndarray:
    """alpha + S / B_pair: one message to one peer (one link on a mesh, the switch port otherwise)."""
    return tier.latency_s + np.asarray(size_bytes) / tier.ring_Bps()


def hierarchical_allreduce_s(size_bytes: ArrayLike, n_local: ArrayLike, n_nodes: ArrayLike,
                             intra: TierArrays, inter: TierArrays) -> np.ndarray:
    """Reduce-scatter in the node, ring all-reduce of S/n_local across nodes, all-gather in the node."""
    size = np.asarray(size_bytes, dtype=float)
    local = np.minimum(ring_allgather_s(size, n_local, intra), direct_allgather_s(size, n_local, intra))
    across = ring_allreduce_s(size / np.asarray(n_local), n_nodes, inter)
    return 2 * local + across


def _allreduce_candidates(size: np.ndarray, n: float, tier: TierArrays) -> list[np.ndarray]:
    return [ring_allreduce_s(size, n, tier), tree_allreduce_s(size, n, tier),
            one_shot_allreduce_s(size, n, tier), two_shot_allreduce_s(size, n, tier)]


def spans_nodes(n: int, devices_per_node: int) -> bool:
    """Whether a group of ``n`` devices leaves one node (NVLink domain) and so uses the network.
    For a send/recv, ``n`` is the span of devices the two peers sit in."""
    return n > devices_per_node


def collective_time_s(kind: str, size_bytes: ArrayLike, n: int, intra: TierArrays, inter: TierArrays,
                      devices_per_node: int) -> np.ndarray:
    """Time of the fastest algorithm for collective ``kind`` over ``n`` devices.

    Groups that fit in one node use the intra-node tier; larger groups use the hierarchical
    algorithm (or a flat ring over the network, whichever is faster).
    """
    size = np.asarray(size_bytes, dtype=float)
    if n <= 1:
        return np.zeros_like(size)
    if kind == "sendrecv":
        return sendrecv_s(size, inter if spans_nodes(n, devices_per_node) else intra)
    if not spans_nodes(n, devices_per_node):
        if kind == "allreduce":
            return np.minimum.reduce(_allreduce_candidates(size, n, intra))
        if kind in ("allgather", "reducescatter"):
            return np.minimum(ring_allgather_s(size, n, intra), direct_allgather_s(size, n, intra))
        if kind == "alltoall":
            return alltoall_s(size, n, intra)
        raise ValueError(f"unknown collective {kind!r}")
    n_local, n_nodes = devices_per_node, -(-n // devices_per_node)
    if kind == "allreduce":
        return np.minimum(hierarchical_allreduce_s(size, n_local, n_nodes, intra, inter),
                          ring_allreduce_s(size, n, inter))
    if kind in ("allgather", "reducescatter"):
        local = np.minimum(ring_allgather_s(size / n_nodes, n_local, intra),
                           direct_allgather_s(size / n_nodes, n_local, intra))
        return local + ring_allgather_s(size, n_nodes, inter)
    if kind == "alltoall":
        # the share that leaves the node crosses the network; the rest stays on the node links
        remote = (n - n_local) / n
        return np.maximum(alltoall_s(size * (1 - remote), n_local, intra),
                          inter.latency_s + size * remote / inter.ring_Bps())
    raise ValueError(f"unknown collective {kind!r}")


#: HBM bytes a collective moves per byte of its buffer (reads input, writes output, stages
#: received chunks); it competes with prefetching for memory bandwidth. Estimate.
_HBM_FACTOR = {"allreduce": 3.0, "allgather": 2.0, "reducescatter": 2.0, "alltoall": 2.0, "sendrecv": 2.0}


def collective_hbm_bytes(kind: str, size_bytes: ArrayLike) -> np.ndarray:
    """HBM traffic of one collective on one device (an estimate: see ``_HBM_FACTOR``)."""
    return _HBM_FACTOR.get(kind, 2.0) * np.asarray(size_bytes, dtype=float)
