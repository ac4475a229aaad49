"""Alpha-beta cost of collectives per algorithm and per library; the fastest algorithm wins.

All functions broadcast: ``size_bytes`` and every tier parameter may be arrays. ``size_bytes`` is
the per-device buffer: the vector reduced by an all-reduce, the gathered output of an all-gather,
the input of a reduce-scatter, the data one device sends in an all-to-all, the message of a send.

Notation: n devices, S bytes, alpha the latency of one step (one hop), B the per-direction
bandwidth of one device (all its links on a switch, one link per peer on a full mesh), times
efficiency.

Two families of algorithms, as users run them (``library``):

- ``nccl``: NCCL's ring and tree (and NVLink SHARP, NVLS, on NVSwitch systems that have it), with
  NCCL's own cost model: each protocol (LL, LL128, Simple) has a fixed base latency, a per-step
  latency and a fraction of the link bandwidth it reaches (:data:`NCCL_PROTOCOLS`, the defaults of
  NCCL's ``src/graph/tuning.cc``); NCCL picks the fastest algorithm and protocol per call.
- ``custom``: the one-shot and two-shot all-reduce kernels of TensorRT-LLM, vLLM and SGLang
  (every device reads its peers' buffers directly over NVLink, one barrier per shot), used for
  small messages, chosen as vLLM chooses (csrc/custom_all_reduce.cuh): one-shot on 2 devices, or
  below 512 KiB on up to 4 and 256 KiB on up to 8 devices, else two-shot; NCCL from the custom
  buffer's 8 MiB up (``CustomAllreduce(max_size=8192 * 1024)``). This is what the serving
  frameworks do by default (vLLM ``disable_custom_all_reduce=False``, TensorRT-LLM
  ``AllReduceStrategy.AUTO``), hence the default. TensorRT-LLM's own switch points
  (:func:`trtllm_switch`: a calibrated one-shot / two-shot size, NCCL above its workspace) are
  given as a :class:`CustomSwitch`.

Topologies: ``switched`` (NVSwitch), ``full_mesh`` (one link per peer: HCCS, xGMI) and
``torus_2d`` (TPU ICI: the group is an a x b sub-torus, collectives run as bidirectional rings
along each dimension; see :func:`torus_allreduce_s`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "TierArrays",
    "LIBRARIES",
    "NCCL_PROTOCOLS",
    "NVLS_LATENCY_S",
    "NVLS_MIN_GPUS",
    "ring_allreduce_s",
    "tree_allreduce_s",
    "nvls_allreduce_s",
    "one_shot_allreduce_s",
    "two_shot_allreduce_s",
    "custom_allreduce_s",
    "CustomSwitch",
    "VLLM_SWITCH",
    "TRTLLM_CUSTOM_MAX_BYTES",
    "trtllm_switch",
    "ring_allgather_s",
    "direct_allgather_s",
    "alltoall_s",
    "sendrecv_s",
    "hierarchical_allreduce_s",
    "torus_shape",
    "torus_allreduce_s",
    "torus_allgather_s",
    "torus_alltoall_s",
    "collective_time_s",
    "collective_hbm_bytes",
    "spans_nodes",
    "ALLREDUCE_ALGORITHMS",
]

ALLREDUCE_ALGORITHMS = ("ring", "tree", "nvls", "one_shot", "two_shot", "hierarchical", "torus")
LIBRARIES = ("nccl", "custom")

#: NCCL's cost model per protocol: (base latency s, per-step latency relative to LL's, fraction of
#: the bus bandwidth). Source: NVIDIA/nccl src/graph/tuning.cc defaults (NCCL 2.19-2.27):
#: baseLat ring {LL 6.6, LL128 14.0, Simple 8.4} us; NVLink hwLat ring {0.6, 1.9, 3.4} us per step
#: (the spec's ``latency_us`` is the LL step, 0.6 us on NVLink); ring LL all-reduce reaches 1/4 of
#: the bus bandwidth (half the bytes are flags, and LL issues 8-byte stores), LL128 120/128 x 0.92
#: of it ("busBw * 0.92"), Simple all of it.
NCCL_PROTOCOLS: dict[str, tuple[float, float, float]] = {
    "LL": (6.6e-6, 1.0, 0.25),
    "LL128": (14.0e-6, 1.9 / 0.6, 0.92),
    "Simple": (8.4e-6, 3.4 / 0.6, 1.0),
}
#: NCCL sends a point-to-point message of at most this many bytes per peer with the LL protocol and
#: larger ones with Simple (NVIDIA/nccl src/enqueue.cc: ``NCCL_PARAM(P2pLLThreshold,
#: "P2P_LL_THRESHOLD", 16384)``).
P2P_LL_THRESHOLD_BYTES = 16384
#: LL's share of the bus bandwidth for a ring all-gather or reduce-scatter inside one node: 1/3
#: (no reduction to interleave); all-reduce, and every collective spanning nodes, keep 1/4
#: (NCCL tuning.cc: ``busBw * ((nNodes > 1 || coll == ncclFuncAllReduce || coll == ncclFuncReduce)
#: ? 1.0/4.0 : 1.0/3.0)``).
LL_GATHER_SHARE_ONE_NODE = 1.0 / 3.0
#: NVLS latency: NCCL tuning.cc hwLat NVLink NVLS Simple = 25 us (baseLat 0): the whole call,
#: the kernel launch included (``comm->latencies[coll][NCCL_ALGO_NVLS][p] = intraLat``).
NVLS_LATENCY_S = 25e-6
#: NCCL enables NVLink SHARP only for more GPUs in the node than this (src/transport/nvls.cc,
#: ``ncclNvlsInit``: ``if (!ncclParamNvlsEnable() || gpuCount <= 2) return ncclSuccess;``).
NVLS_MIN_GPUS = 3


@dataclass(frozen=True)
class TierArrays:
    """Parameters of the links between the devices of one collective (arrays broadcast)."""

    link_Bps: ArrayLike  # one link, one direction
    links: ArrayLike  # links per device
    latency_s: ArrayLike  # one step (hop) of a ring or tree, NCCL's LL protocol
    efficiency: ArrayLike
    full_mesh: bool  # point-to-point links, one per peer (no switch)
    custom_latency_s: ArrayLike | None = None  # one shot of a custom kernel (None: latency_s)
    nvls_efficiency: ArrayLike = 0.0  # NVLink SHARP reach (fraction of the link rate); 0: no NVLS
    torus_dims: tuple[int, int] | None = None  # a 2D torus of this shape (TPU ICI)
    network: bool = False  # the scale-out network: one alpha-beta term, no NVLink protocols
    custom_allreduce: bool = True  # the frameworks' custom kernels exist here (NVLink-class links)
    launch_s: ArrayLike = 0.0  # kernel launch the caller charges on top (NCCL's base latency holds it)
    protocols: tuple[str, ...] = ("LL", "LL128", "Simple")  # the NCCL protocols allowed (NCCL_PROTO)

    def device_Bps(self, n: ArrayLike) -> np.ndarray:
        """Bandwidth a device can drive towards n-1 peers at once."""
        link = np.asarray(self.link_Bps) * np.asarray(self.efficiency)
        if self.full_mesh:
            return link * np.minimum(np.asarray(n) - 1, self.links)
        return link * np.asarray(self.links)

    def ring_Bps(self, n: ArrayLike = 2) -> np.ndarray:
        """Bandwidth of a ring step. On a switch: the full injection rate. On a full mesh of n
        devices NCCL-style libraries run one ring per channel over edge-disjoint Hamiltonian
        cycles: the complete graph has floor((n-1)/2) of them (Walecki), each used in both
        directions, so a device drives ``2 floor((n-1)/2)`` links at once (at least one)."""
        link = np.asarray(self.link_Bps) * np.asarray(self.efficiency)
        if not self.full_mesh:
            return link * np.asarray(self.links)
        rings = np.maximum(2 * np.floor((np.asarray(n, dtype=float) - 1) / 2), 1.0)
        return link * np.minimum(rings, np.asarray(self.links))

    @property
    def shot_latency_s(self) -> ArrayLike:
        return self.latency_s if self.custom_latency_s is None else self.custom_latency_s


def _protocol_s(protocol: str, steps: ArrayLike, wire_bytes: ArrayLike, bandwidth_Bps: ArrayLike,
                tier: TierArrays, ll_share: float | None = None) -> np.ndarray:
    """One NCCL protocol: base + steps x step latency + bytes / (bandwidth x its share; LL's share
    is ``ll_share`` when given). NCCL's base latency includes launching the kernel, which the
    caller charges (``launch_s``): only the rest is added here."""
    base, step, share = NCCL_PROTOCOLS[protocol]
    if protocol == "LL" and ll_share is not None:
        share = ll_share
    return (np.maximum(base - np.asarray(tier.launch_s), 0.0) + np.asarray(steps) * step * np.asarray(tier.latency_s)
            + np.asarray(wire_bytes) / (np.asarray(bandwidth_Bps) * share))


def _network_s(steps: ArrayLike, wire_bytes: ArrayLike, bandwidth_Bps: ArrayLike, tier: TierArrays) -> np.ndarray:
    """Over the network tier: steps x alpha + bytes / bandwidth (its alpha is measured end to end)."""
    return np.asarray(steps) * np.asarray(tier.latency_s) + np.asarray(wire_bytes) / np.asarray(bandwidth_Bps)


def _nccl_s(steps: ArrayLike, wire_bytes: ArrayLike, bandwidth_Bps: ArrayLike, tier: TierArrays,
            ll_share: float | None = None) -> np.ndarray:
    """NCCL's model for a collective: the fastest protocol (NCCL's tuner picks it per call)."""
    if tier.network:
        return _network_s(steps, wire_bytes, bandwidth_Bps, tier)
    return np.minimum.reduce([_protocol_s(p, steps, wire_bytes, bandwidth_Bps, tier, ll_share)
                              for p in tier.protocols])


def _p2p_s(size_bytes: ArrayLike, n: ArrayLike, bandwidth_Bps: ArrayLike, tier: TierArrays) -> np.ndarray:
    """NCCL's point-to-point path for S/n bytes to each of n-1 peers at once (all-to-all is a send
    and a receive per peer): no tuner; up to :data:`P2P_LL_THRESHOLD_BYTES` per peer go with LL,
    more with Simple, one step of that protocol (Simple throughout when LL is not allowed). As in
    NCCL, on links slow enough that Simple beats LL at the threshold, a message just above it is
    faster than one at it."""
    size, n = np.asarray(size_bytes, dtype=float), np.asarray(n, dtype=float)
    wire = (n - 1) / n * size
    if tier.network:
        return _network_s(1.0, wire, bandwidth_Bps, tier)
    ll_limit = P2P_LL_THRESHOLD_BYTES if "LL" in tier.protocols else -1.0
    return np.where(size / n <= ll_limit, _protocol_s("LL", 1.0, wire, bandwidth_Bps, tier),
                    _protocol_s("Simple", 1.0, wire, bandwidth_Bps, tier))


def ring_allreduce_s(size_bytes: ArrayLike, n: ArrayLike, tier: TierArrays) -> np.ndarray:
    """NCCL ring: 2(n-1) steps moving 2(n-1)/n S (reduce-scatter then all-gather), per protocol:
    ``base_p + 2(n-1) alpha_p + 2(n-1)/n S / (B f_p)``, the fastest protocol."""
    n = np.asarray(n, dtype=float)
    return _nccl_s(2 * (n - 1), 2 * (n - 1) / n * np.asarray(size_bytes), tier.ring_Bps(n), tier)


def tree_allreduce_s(size_bytes: ArrayLike, n: ArrayLike, tier: TierArrays) -> np.ndarray:
    """NCCL double binary tree: 2 log2(n) steps moving 2 S (fewer steps, more bytes). Across nodes
    only: inside a node NCCL's tree is a chain (2(n-1) steps), never faster than the ring."""
    n = np.asarray(n, dtype=float)
    return _nccl_s(2 * np.ceil(np.log2(n)), 2 * np.asarray(size_bytes), tier.ring_Bps(n), tier)


def nvls_allreduce_s(size_bytes: ArrayLike, n: ArrayLike, tier: TierArrays) -> np.ndarray:
    """NVLink SHARP: the switch reduces and multicasts. Each device sends its S/n shard to be
    reduced by every peer's load-reduce (S out) and receives the multicast result (S in), plus
    its own shard each way: ``25 us + (n+1)/n S / (B_device e_nvls)``. ``inf`` without NVLS, and
    for groups of fewer than :data:`NVLS_MIN_GPUS` (NCCL does not set NVLS up for 2 GPUs).

    NCCL's 25 us is the whole latency of the call (``latencies[NVLS] = intraLat``, no
    ``baseLat`` added), so, as with a ring protocol's base, the kernel launch the caller charges
    (``launch_s``) is taken out of it here rather than charged twice."""
    n = np.asarray(n, dtype=float)
    reach = np.asarray(tier.nvls_efficiency, dtype=float)
    rate = tier.device_Bps(n) * reach
    latency = np.maximum(NVLS_LATENCY_S - np.asarray(tier.launch_s), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):  # no NVLS (rate 0): masked below
        t = latency + (n + 1) / n * np.asarray(size_bytes) / rate
    return np.where((reach > 0) & (n >= NVLS_MIN_GPUS), t, np.inf)


def one_shot_allreduce_s(size_bytes: ArrayLike, n: ArrayLike, tier: TierArrays) -> np.ndarray:
    """Custom one-shot: alpha_shot + (n-1) S / B_device: every device reads all peers' whole
    buffers and sums locally."""
    n = np.asarray(n, dtype=float)
    return tier.shot_latency_s + (n - 1) * np.asarray(size_bytes) / tier.device_Bps(n)


def two_shot_allreduce_s(size_bytes: ArrayLike, n: ArrayLike, tier: TierArrays) -> np.ndarray:
    """Custom two-shot: 2 alpha_shot + 2 (n-1)/n S / B_device: direct reduce-scatter, then direct
    all-gather."""
    n = np.asarray(n, dtype=float)
    return 2 * np.asarray(tier.shot_latency_s) + 2 * (n - 1) / n * np.asarray(size_bytes) / tier.device_Bps(n)


def ring_allgather_s(size_bytes: ArrayLike, n: ArrayLike, tier: TierArrays, *, one_node: bool = True) -> np.ndarray:
    """NCCL ring: n-1 steps moving (n-1)/n S, per protocol. Reduce-scatter costs the same. LL
    reaches 1/3 of the bandwidth when the whole collective stays in one node, else 1/4
    (:data:`LL_GATHER_SHARE_ONE_NODE`)."""
    n = np.asarray(n, dtype=float)
    share = LL_GATHER_SHARE_ONE_NODE if one_node else None
    return _nccl_s(n - 1, (n - 1) / n * np.asarray(size_bytes), tier.ring_Bps(n), tier, share)


def direct_allgather_s(size_bytes: ArrayLike, n: ArrayLike, tier: TierArrays) -> np.ndarray:
    """alpha + (n-1)/n S / B_device: each device sends its shard to every peer at once (full mesh)."""
    n = np.asarray(n, dtype=float)
    return tier.latency_s + (n - 1) / n * np.asarray(size_bytes) / tier.device_Bps(n)


def alltoall_s(size_bytes: ArrayLike, n: ArrayLike, tier: TierArrays) -> np.ndarray:
    """NCCL's all-to-all: a send and a receive of S/n with every peer at once, one step of NCCL's
    protocol model moving (n-1)/n S over the device's links; the protocol is NCCL's point-to-point
    rule (LL up to 16 KiB per peer, Simple above: :func:`_p2p_s`), not the fastest one."""
    return _p2p_s(size_bytes, n, tier.device_Bps(n), tier)


def sendrecv_s(size_bytes: ArrayLike, tier: TierArrays) -> np.ndarray:
    """alpha + S / B_pair: one message to one peer (one link on a mesh, the switch port otherwise)."""
    return tier.latency_s + np.asarray(size_bytes) / tier.ring_Bps()


def hierarchical_allreduce_s(size_bytes: ArrayLike, n_local: ArrayLike, n_nodes: ArrayLike,
                             intra: TierArrays, inter: TierArrays) -> np.ndarray:
    """Reduce-scatter in the node, ring all-reduce of S/n_local across nodes, all-gather in the node."""
    size = np.asarray(size_bytes, dtype=float)
    local = _allgather_in_node(size, n_local, intra, one_node=False)
    shard = size / np.asarray(n_local)
    across = np.minimum(ring_allreduce_s(shard, n_nodes, inter), tree_allreduce_s(shard, n_nodes, inter))
    return 2 * local + across


# -- 2D torus (TPU ICI) ------------------------------------------------------------------------

def torus_shape(n: int, dims: tuple[int, int]) -> tuple[int, int]:
    """The a x b sub-torus (a >= b, a * b = n) a group of n devices occupies: the squarest
    factorisation that fits in ``dims``. Groups that fit no such rectangle raise ``ValueError``."""
    big, small = max(dims), min(dims)
    for b in range(int(np.sqrt(n)), 0, -1):
        a = n // b
        if a * b == n and a <= big and b <= small:
            return a, b
    raise ValueError(f"{n} devices do not form a rectangle inside a {dims[0]}x{dims[1]} torus")


def _ring_Bps(tier: TierArrays, size: int, full: int) -> np.ndarray:
    """A ring along one torus dimension of ``size`` devices: both directions of its links
    (bidirectional ring) when the dimension wraps around (the whole torus dimension, > 2
    devices); one direction's worth when it is a line (the ring folds back on itself)."""
    link = np.asarray(tier.link_Bps) * np.asarray(tier.efficiency)
    return link * (2.0 if size == full and size > 2 else 1.0)


def _torus_dims(n: int, tier: TierArrays) -> tuple[int, int, np.ndarray, np.ndarray]:
    dims = tier.torus_dims or (n, 1)
    a, b = torus_shape(n, dims)
    return a, b, _ring_Bps(tier, a, max(dims)), _ring_Bps(tier, b, min(dims))


def torus_allreduce_s(size_bytes: ArrayLike, n: int, tier: TierArrays) -> np.ndarray:
    """2D ring all-reduce on an a x b torus: reduce-scatter along a (S), then along b (S/a),
    all-gather back. ``2(a-1) alpha + 2(a-1)/a S / B_a + 2(b-1) alpha + 2(b-1)/b S/a / B_b``,
    where B_a, B_b are the ring bandwidths of the two dimensions (2 links' worth when they wrap)."""
    a, b, bw_a, bw_b = _torus_dims(n, tier)
    s = np.asarray(size_bytes, dtype=float)
    return (2 * (a - 1 + b - 1) * np.asarray(tier.latency_s) + 2 * (a - 1) / a * s / bw_a
            + 2 * (b - 1) / b * (s / a) / bw_b)


def torus_allgather_s(size_bytes: ArrayLike, n: int, tier: TierArrays) -> np.ndarray:
    """2D all-gather: along b first (shards of S/n grow to S/a), then along a (to S):
    ``(a-1+b-1) alpha + (b-1)/b S/a / B_b + (a-1)/a S / B_a``. Reduce-scatter is its mirror."""
    a, b, bw_a, bw_b = _torus_dims(n, tier)
    s = np.asarray(size_bytes, dtype=float)
    return (a - 1 + b - 1) * np.asarray(tier.latency_s) + (b - 1) / b * (s / a) / bw_b + (a - 1) / a * s / bw_a


def torus_alltoall_s(size_bytes: ArrayLike, n: int, tier: TierArrays) -> np.ndarray:
    """All-to-all on an a x b torus (a >= b): bound by the bisection or by injection.

    Every device sends S/n to each device; the cut across the long dimension separates two halves
    of n/2 devices, so n/2 x n/2 x S/n = n S / 4 bytes cross it each way, over the b rings'
    ``2 b`` links (wrapped) or ``b`` links (a line), both directions at once (n S/4 each way).
    Injection: (n-1)/n S over the device's 4 links. Latency: the diameter, a/2 + b/2 hops.
    """
    a, b, _, _ = _torus_dims(n, tier)
    s = np.asarray(size_bytes, dtype=float)
    link = np.asarray(tier.link_Bps) * np.asarray(tier.efficiency)
    wraps = a == max(tier.torus_dims or (a,)) and a > 2
    cut_links = (2.0 if wraps else 1.0) * b
    bisection = n * s / 4 / (cut_links * link)
    injection = (n - 1) / n * s / (4 * link)
    return (a // 2 + b // 2) * np.asarray(tier.latency_s) + np.maximum(bisection, injection)


# -- choosing the algorithm ----------------------------------------------------------------------

def _allgather_in_node(size: np.ndarray, n: ArrayLike, tier: TierArrays, *, one_node: bool = True) -> np.ndarray:
    ring = ring_allgather_s(size, n, tier, one_node=one_node)
    return np.minimum(ring, direct_allgather_s(size, n, tier)) if tier.full_mesh else ring


#: vLLM's custom all-reduce: one-shot below these sizes (bytes) for groups up to 4 and up to 8
#: devices (always on 2), two-shot above, NCCL from ``CUSTOM_MAX_BYTES`` (csrc/custom_all_reduce.cuh,
#: vllm/distributed/device_communicators/custom_all_reduce.py).
CUSTOM_ONE_SHOT_BELOW_BYTES = {4: 512 * 1024, 8: 256 * 1024}
CUSTOM_MAX_BYTES = 8 * 2**20


#: TensorRT-LLM's ``AllReduce`` (strategy AUTO) calls NCCL above its custom kernels' workspace:
#: 16,000,000 bytes on 2 devices, 8,000,000 on more (cpp/tensorrt_llm/common/customAllReduceUtils.h
#: ``getMaxRequiredWorkspaceSize``, used by thop/allreduceOp.cpp ``ifFallbackToNCCL``). Below it,
#: AUTO picks one-shot or two-shot from a table measured per GPU generation, group size, hidden
#: size and token count (``selectStrategyLookUpTable``), so where it switches is calibrated.
TRTLLM_CUSTOM_MAX_BYTES = {2: 16_000_000, 8: 8_000_000}


@dataclass(frozen=True)
class CustomSwitch:
    """Where a framework's custom all-reduce changes kernel: one-shot below
    ``one_shot_below_bytes`` (None: vLLM's sizes, :data:`CUSTOM_ONE_SHOT_BELOW_BYTES`), two-shot
    from there, NCCL from ``max_bytes`` up. Two devices always run one-shot."""

    one_shot_below_bytes: float | None = None
    max_bytes: float = CUSTOM_MAX_BYTES


#: vLLM's choice (csrc/custom_all_reduce.cuh), the default of every caller.
VLLM_SWITCH = CustomSwitch()


def trtllm_switch(n: int, one_shot_below_bytes: float | None) -> CustomSwitch:
    """TensorRT-LLM's AUTO on ``n`` devices with its one-shot / two-shot switch where it was
    measured (None: vLLM's sizes) and NCCL above its workspace (:data:`TRTLLM_CUSTOM_MAX_BYTES`)."""
    return CustomSwitch(one_shot_below_bytes, float(TRTLLM_CUSTOM_MAX_BYTES[2 if n <= 2 else 8]))


def custom_allreduce_s(size_bytes: ArrayLike, n: int, tier: TierArrays,
                       switch: CustomSwitch = VLLM_SWITCH) -> np.ndarray:
    """The custom kernel the framework picks (``switch``): one-shot for small messages, two-shot
    for larger ones (``inf`` beyond the custom buffer, where the framework calls NCCL; none for
    groups above 8, nor above 2 devices without NVLink-class links, ``TierArrays.custom_allreduce``).

    vLLM switches where it measured the kernels to cross; where the model's kernels do not cross
    at that size, the time is held continuous across the switch (the two-shot time is at least
    the one-shot time at the threshold), so that a larger message is never faster. A measured
    switch (``switch.one_shot_below_bytes``) comes with its own parameters for each side (the
    calibration's size segments), which keep the measured step there.
    """
    size = np.asarray(size_bytes, dtype=float)
    if n > 8 or (not tier.custom_allreduce and n > 2):
        return np.full_like(size, np.inf)
    if n == 2:
        t = one_shot_allreduce_s(size, n, tier)
    elif switch.one_shot_below_bytes is not None:
        below = float(switch.one_shot_below_bytes)
        t = np.where(size < below, one_shot_allreduce_s(size, n, tier), two_shot_allreduce_s(size, n, tier))
    else:
        below = CUSTOM_ONE_SHOT_BELOW_BYTES[4 if n <= 4 else 8]
        floor = one_shot_allreduce_s(float(below), n, tier)
        t = np.where(size < below, one_shot_allreduce_s(size, n, tier),
                     np.maximum(two_shot_allreduce_s(size, n, tier), floor))
    return np.where(size < switch.max_bytes, t, np.inf)


def _allreduce_in_node(size: np.ndarray, n: int, tier: TierArrays, library: str,
                       switch: CustomSwitch = VLLM_SWITCH) -> np.ndarray:
    nccl = ring_allreduce_s(size, n, tier)
    if not tier.full_mesh:
        nccl = np.minimum(nccl, nvls_allreduce_s(size, n, tier))
    if library != "custom" or n > 8:
        return nccl
    # NCCL from the custom buffer's size up, held continuous across the switch (as above)
    at_switch = custom_allreduce_s(np.nextafter(float(switch.max_bytes), 0.0), n, tier, switch)
    at_switch = np.where(np.isfinite(at_switch), at_switch, 0.0)  # no custom kernel here
    custom = custom_allreduce_s(size, n, tier, switch)
    return np.where(np.isfinite(custom), custom, np.maximum(nccl, at_switch))


def spans_nodes(n: int, devices_per_node: int) -> bool:
    """Whether a group of ``n`` devices leaves one node (NVLink domain) and so uses the network.
    For a send/recv, ``n`` is the span of devices the two peers sit in."""
    return n > devices_per_node


def collective_time_s(kind: str, size_bytes: ArrayLike, n: int, intra: TierArrays, inter: TierArrays,
                      devices_per_node: int, library: str = "custom",
                      switch: CustomSwitch = VLLM_SWITCH) -> np.ndarray:
    """Time of the fastest algorithm of ``library`` for collective ``kind`` over ``n`` devices.

    Groups that fit in one node (or one torus) use the intra-node tier; larger groups use the
    hierarchical algorithm (or a flat ring over the network, whichever is faster). NCCL's protocol
    choice is per communicator, so a group that spans nodes uses inside its nodes only the
    protocols the network allows (``inter.protocols``: a cluster that sets ``NCCL_PROTO=Simple``
    runs Simple over NVLink too). ``switch``: where the custom all-reduce changes kernel (vLLM's
    sizes unless given: :func:`trtllm_switch` for TensorRT-LLM's AUTO).
    """
    if library not in LIBRARIES:
        raise ValueError(f"unknown collective library {library!r}; choose one of {', '.join(LIBRARIES)}")
    size = np.asarray(size_bytes, dtype=float)
    if n <= 1:
        return np.zeros_like(size)
    if kind == "sendrecv":
        return sendrecv_s(size, inter if spans_nodes(n, devices_per_node) else intra)
    if intra.torus_dims is not None and not spans_nodes(n, devices_per_node):
        torus = {"allreduce": torus_allreduce_s, "allgather": torus_allgather_s,
                 "reducescatter": torus_allgather_s, "alltoall": torus_alltoall_s}
        if kind not in torus:
            raise ValueError(f"unknown collective {kind!r}")
        return torus[kind](size, n, intra)
    if not spans_nodes(n, devices_per_node):
        if kind == "allreduce":
            return _allreduce_in_node(size, n, intra, library, switch)
        if kind in ("allgather", "reducescatter"):
            return _allgather_in_node(size, n, intra)
        if kind == "alltoall":
            return alltoall_s(size, n, intra)
        raise ValueError(f"unknown collective {kind!r}")
    n_local, n_nodes = devices_per_node, -(-n // devices_per_node)
    intra = replace(intra, protocols=tuple(p for p in intra.protocols if p in inter.protocols))
    if kind == "allreduce":
        return np.minimum(hierarchical_allreduce_s(size, n_local, n_nodes, intra, inter),
                          ring_allreduce_s(size, n, inter))
    if kind in ("allgather", "reducescatter"):
        return (_allgather_in_node(size / n_nodes, n_local, intra, one_node=False)
                + ring_allgather_s(size, n_nodes, inter, one_node=False))
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
