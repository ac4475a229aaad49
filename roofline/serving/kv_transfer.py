"""KV-cache transfer from a prefill instance to a decode instance (disaggregated serving).

Bytes: the whole KV cache of the prompt, once (:meth:`ModelSpec.kv_cache_bytes` at ``tp = 1``:
every layer, GQA's K and V heads, MLA's latent and rope key, the KV dtype with its block scales,
windowed layers at most their window, linear-attention state). Replicas that tensor parallelism
keeps on several devices (GQA heads fewer than the TP ranks, MLA's latent) are sent once.

Path: the devices of the prefill instance send their shards in parallel, each over its own link,
to the devices of the decode instance, so ``min(prefill devices, decode devices)`` links carry
the bytes. A link is one device's per-direction injection bandwidth of a tier of the device
spec: ``intra`` (NVLink / xGMI inside a node: ``link_bandwidth x links_per_device``) or ``inter``
(the scale-out NIC of one device) times the tier's efficiency, plus the tier's latency once.
Heterogeneous pools are in different nodes (``inter``) and a transfer runs at the slower side.

Time, without overlap: ``bytes / (links x bandwidth) + latency``, after the prefill ends. With
layer-by-layer overlap (vLLM's NixlConnector, Mooncake and Dynamo send each layer's KV as soon as
it is written) the transfer of a layer runs while the next layers compute: of the prefill pass of
``t_p`` seconds over ``L`` layers, ``t_p (L - 1) / L`` hides the transfer, and at least the last
layer's share ``T / L`` stays exposed: ``max(T / L, T - t_p (L - 1) / L) + latency``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from roofline.exceptions import SpecError
from roofline.hardware import HardwareSpec
from roofline.model import ModelSpec
from roofline.timing import HardwareArrays
from roofline.workload import Workload

__all__ = ["KVLink", "KV_PATHS", "kv_transfer_bytes", "kv_link", "kv_link_arrays", "kv_transfer_s"]

KV_PATHS = ("auto", "intra", "inter")


@dataclass(frozen=True)
class KVLink:
    """The path of one KV transfer: achievable bandwidth per link (one direction), links in
    parallel, latency, and the tier it runs on (``intra`` or ``inter``)."""

    bandwidth_Bps: float | np.ndarray  # (n,) arrays on a sweep's configurations
    links: int
    latency_s: float | np.ndarray
    path: str

    @property
    def bandwidth_GBps(self) -> float:
        """Achievable bandwidth of the whole transfer (all links), GB/s."""
        return self.bandwidth_Bps * self.links / 1e9


def kv_transfer_bytes(model: ModelSpec, workload: Workload, prompt_tokens: np.ndarray | float) -> np.ndarray:
    """Bytes of the KV cache of prompts of ``prompt_tokens`` tokens (array in, array out)."""
    tokens = np.atleast_1d(np.asarray(prompt_tokens, dtype=float))
    unique = np.unique(tokens)
    per = np.array([model.kv_cache_bytes(int(t), workload.kv_bytes, tp=1) for t in unique])
    return per[np.searchsorted(unique, tokens)]


def _tier_Bps(hw: HardwareSpec, path: str) -> tuple[float, float]:
    tier = hw.intra_node if path == "intra" else hw.inter_node
    return tier.device_bandwidth_Bps * tier.efficiency, tier.latency_s


def kv_link(prefill_hw: HardwareSpec, decode_hw: HardwareSpec, prefill_devices: int, decode_devices: int, *,
            total_devices: int, path: str = "auto", bandwidth_GBps: float | None = None) -> KVLink:
    """The KV path between a prefill and a decode instance.

    ``path``: ``auto`` (``intra`` when both pools are the same device and all ``total_devices``
    fit in one node, else ``inter``), ``intra`` or ``inter``. ``bandwidth_GBps`` replaces the
    wire rate of one device's links on that tier (per direction; the tier's efficiency applies).
    """
    if path not in KV_PATHS:
        raise SpecError(f"--kv-path: {path!r} is not allowed; choose one of {', '.join(KV_PATHS)}")
    if bandwidth_GBps is not None and (not np.isfinite(bandwidth_GBps) or bandwidth_GBps <= 0):
        raise SpecError(f"--kv-bandwidth: must be a positive number of GB/s, got {bandwidth_GBps!r}")
    same = prefill_hw.name == decode_hw.name
    if path == "auto":
        path = "intra" if same and total_devices <= min(prefill_hw.devices_per_node, decode_hw.devices_per_node) \
            else "inter"
    if path == "intra" and not same:
        raise SpecError(f"--kv-path: intra needs one device type; {prefill_hw.name} and {decode_hw.name} are "
                        f"in different nodes (use inter)")
    (bw_p, lat_p), (bw_d, lat_d) = _tier_Bps(prefill_hw, path), _tier_Bps(decode_hw, path)
    if bandwidth_GBps is not None:
        tier_p = prefill_hw.intra_node if path == "intra" else prefill_hw.inter_node
        tier_d = decode_hw.intra_node if path == "intra" else decode_hw.inter_node
        bw_p, bw_d = bandwidth_GBps * 1e9 * tier_p.efficiency, bandwidth_GBps * 1e9 * tier_d.efficiency
    return KVLink(min(bw_p, bw_d), min(prefill_devices, decode_devices), max(lat_p, lat_d), path)


def kv_transfer_s(kv_bytes: np.ndarray | float, link: KVLink, *, prefill_s: np.ndarray | float = 0.0,
                  layers: int = 1, overlap: bool = False) -> np.ndarray:
    """Seconds from the end of a prompt's prefill to its KV cache on the decode instance.

    ``prefill_s``: the prefill pass of the prompt (hides the transfer when ``overlap``);
    ``layers``: transformer layers the KV is written by, one after another.
    """
    wire = np.asarray(kv_bytes, dtype=float) / (link.bandwidth_Bps * link.links)
    if overlap:
        wire = np.maximum(wire / layers, wire - np.asarray(prefill_s, dtype=float) * (layers - 1) / layers)
    return wire + link.latency_s


def kv_link_arrays(hw: HardwareArrays, prefill_devices: int, decode_devices: int, *, total_devices: int,
                   path: str = "auto", bandwidth_GBps: float | None = None) -> KVLink:
    """:func:`kv_link` on the ``hw.n`` configurations of a sweep (one device type for both pools):
    a :class:`KVLink` whose bandwidth and latency are (n,) arrays."""
    if path not in KV_PATHS:
        raise SpecError(f"kv_path: {path!r} is not allowed; choose one of {', '.join(KV_PATHS)}")
    if path == "auto":
        path = "intra" if total_devices <= hw.devices_per_node else "inter"
    if path == "intra":
        wire, efficiency, latency = hw.link_Bps * hw.links, hw.link_efficiency, hw.link_latency_s
    else:
        wire, efficiency, latency = hw.net_Bps, hw.net_efficiency, hw.net_latency_s
    if bandwidth_GBps is not None:
        wire = np.full(hw.n, bandwidth_GBps * 1e9)
    return KVLink(np.asarray(wire * efficiency, dtype=float), min(prefill_devices, decode_devices),
                  np.asarray(latency, dtype=float), path)
