"""Calibration stage of the collectives: link latency and efficiency per algorithm family.

Per collective, algorithm family (NCCL, TensorRT-LLM custom) and scope (intra / inter node) ->
link latency and efficiency (inter node: latency and bandwidth), then the same per GPU count
(``<key>:n<GPUs>``), with an optional second set from a message size up (:func:`size_regimes`).
The nccl-tests all-reduce fit within a node sets the device-wide ``link_latency_us`` /
``link_efficiency`` that ``predict`` uses; the inter-node send/recv fit (else all-reduce) sets
``inter_node_latency_us`` / ``inter_node_bandwidth_GBps`` (the efficiency folded in).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from roofline.collectives import P2P_LL_THRESHOLD_BYTES
from roofline.hardware import HardwareSpec
from roofline.validation._fitting import FitParam, fit, log_error_cost, stage_batches
from roofline.validation._predict import COLLECTIVE_KINDS, CaseBatch

__all__ = ["REGIME_THRESHOLDS", "regime_thresholds", "size_regimes", "stage_collectives"]

#: Candidate message sizes (bytes) where a second (latency, bandwidth) regime may start.
REGIME_THRESHOLDS = tuple(4**k for k in range(7, 14))  # 16 KiB ... 64 MiB (exact integers: never rounded)


def regime_thresholds(key: str, n: int) -> tuple[int, ...]:
    """Where the second regime of collective ``key`` on ``n`` GPUs may start. An all-to-all inside
    a node has one known boundary, NCCL's point-to-point protocol switch: LL up to
    :data:`~roofline.collectives.P2P_LL_THRESHOLD_BYTES` per peer, Simple above, so its large
    regime starts at the first size above ``n`` times that. Every other collective chooses its
    protocol by NCCL's tuner (or TensorRT-LLM's table), whose switch the fit has to find."""
    kind, _, scope = key.split(":")[:3]
    if kind == "alltoall" and scope == "intra":
        return (P2P_LL_THRESHOLD_BYTES * n + 1,)
    return REGIME_THRESHOLDS


def _subset(b: CaseBatch, rows: np.ndarray, n: int, per_node: int) -> CaseBatch:
    """The rows ``rows`` of a collective batch, as one group of ``n`` GPUs, ``per_node`` a node."""
    return replace(b, index=b.index[rows], sources=b.sources[rows], count=b.count[rows],
                   size_bytes=b.size_bytes[rows], groups=((n, per_node, np.arange(len(rows))),))


def size_regimes(spec: HardwareSpec, base: dict[str, Any], b: CaseBatch, m: np.ndarray, key: str,
                 names: Sequence[str], init: Mapping[str, tuple[float, float, float]]) -> dict[str, Any]:
    """Try a second parameter set for messages from a threshold up (NCCL's LL/LL128 protocols
    for small messages, Simple for large ones; TensorRT-LLM one-shot, two-shot, then NCCL).
    Kept when it lowers the training cost (sum of |log error|) by at least 20%, with at least
    four training sizes on each side."""
    best, best_cost = base, 0.8 * log_error_cost(spec, base, [b], [m])
    sizes = b.size_bytes
    n, per_node = b.groups[0][0], b.groups[0][1]
    for threshold in regime_thresholds(key, n):
        big = sizes >= threshold
        if big.sum() < 4 or (~big).sum() < 4:
            continue
        trial = copy.deepcopy(base)
        trial["per_kind"][key]["_large_from_bytes"] = threshold
        fitted = trial["per_kind"][key]
        trial["per_kind"][f"{key}:large"] = {k: fitted[k] for k in names}
        rows = np.flatnonzero(big)
        params = [FitParam(("per_kind", f"{key}:large", k), fitted[k], init[k][1], init[k][2]) for k in names]
        trial = fit(spec, trial, params, [_subset(b, rows, n, per_node)], [m[rows]], [np.ones(len(rows))])
        rows = np.flatnonzero(~big)
        params = [FitParam(("per_kind", key, k), fitted[k], init[k][1], init[k][2]) for k in names]
        trial = fit(spec, trial, params, [_subset(b, rows, n, per_node)], [m[rows]], [np.ones(len(rows))])
        c = log_error_cost(spec, trial, [b], [m])
        if c < best_cost:
            best, best_cost = trial, c
    return best


def _latency_capped(init: Mapping[str, tuple[float, float, float]], names: Sequence[str],
                    fastest_us: float) -> dict[str, tuple[float, float, float]]:
    """``init`` with NCCL's per-step latency bounded above by the group's fastest training time:
    one step cannot take longer than the whole collective at its smallest size. Without it a
    GPU count whose small messages vary (vidur's torch.distributed rows) trades a tiny link
    efficiency for a latency above any measured time (H100, 4 GPUs: 0.097 and 67 us)."""
    if "link_latency_us" not in names:
        return dict(init)
    start, lo, hi = init["link_latency_us"]
    if not lo < fastest_us < hi:
        return dict(init)
    return {**init, "link_latency_us": (min(start, fastest_us), lo, fastest_us)}


def stage_collectives(spec: HardwareSpec, train: pd.DataFrame, base: dict[str, Any]) -> dict[str, Any]:
    """Per collective key: one fit over every group size, then one per group size (NCCL picks
    algorithm and protocol by GPU count, which a single latency and efficiency cannot follow)."""
    batches, measured = stage_batches(train, COLLECTIVE_KINDS)
    pairs = sorted(zip(batches, measured), key=lambda bm: bm[0].key.endswith(":inter"))  # intra first
    link, net = spec.intra_node, spec.inter_node
    base.setdefault("per_kind", {})
    for b, m in pairs:
        per_kind = base["per_kind"]  # fit returns a new mapping: look it up again
        kind, algo, scope = b.key.split(":")
        if scope == "intra":
            # custom kernels: their shot latency and their launch (TensorRT-LLM replays them in
            # CUDA graphs, below the device's per-kernel launch); NCCL: its per-step latency
            custom = algo == "trtllm_custom"
            lat = "custom_latency_us" if custom else "link_latency_us"
            names = (lat, "link_efficiency") + (("launch_overhead_us",) if custom else ())
            init = {lat: (max(link.latency_s * 1e6, 0.5), 0.02, 200.0),
                    "link_efficiency": (link.efficiency, 0.02, 1.0),
                    "launch_overhead_us": (max(spec.compute.launch_overhead_s * 1e6, 0.5), 0.02, 50.0)}
        else:
            intra = (per_kind.get(f"{kind}:{algo}:intra") or per_kind.get("allreduce:nccl:intra")
                     or per_kind.get("allreduce:torch_nccl:intra") or {})
            per_kind.setdefault(b.key, {}).update({k: v for k, v in intra.items()})
            names = ("inter_node_latency_us", "inter_node_bandwidth_GBps")
            init = {"inter_node_latency_us": (max(net.latency_s * 1e6, 1.0), 0.1, 1000.0),
                    "inter_node_bandwidth_GBps": (net.link_bandwidth_Bps / 1e9, 0.2, 2000.0)}
        params = [FitParam(("per_kind", b.key, k), *init[k]) for k in names]
        base = fit(spec, base, params, [b], [m], [np.ones(b.n)])
        for n, per_node, rows in b.groups:
            if len(rows) < 6:
                continue
            sub = _subset(b, rows, n, per_node)
            key = f"{b.key}:n{n}"
            fitted = base["per_kind"][b.key]
            count_init = _latency_capped(init, names, float(m[rows].min()) * 1e6)
            params = [FitParam(("per_kind", key, k), fitted[k], count_init[k][1], count_init[k][2])
                      for k in names]
            base = fit(spec, base, params, [sub], [m[rows]], [np.ones(len(rows))])
            base = size_regimes(spec, base, sub, m[rows], key, names, count_init)
    globals_from = (("allreduce:nccl:intra", ("link_latency_us", "link_efficiency")),
                    ("allreduce:torch_nccl:intra", ("link_latency_us", "link_efficiency")),
                    ("sendrecv:torch_nccl:inter", ("inter_node_latency_us", "inter_node_bandwidth_GBps")),
                    ("allreduce:nccl:inter", ("inter_node_latency_us", "inter_node_bandwidth_GBps")),
                    ("allreduce:torch_nccl:inter", ("inter_node_latency_us", "inter_node_bandwidth_GBps")))
    per_kind = base["per_kind"]
    for key, names in globals_from:
        if key in per_kind and not all(n in base["overrides"] for n in names):
            base["overrides"].update({n: per_kind[key][n] for n in names})
    # inter_node_bandwidth_GBps is fitted as the value that, times the spec's inter-node
    # efficiency, matches the measurements: predict applies the same product.
    return base
