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
from roofline.validation._predict import COLLECTIVE_KINDS, CaseBatch, predict_batch

__all__ = ["REGIME_THRESHOLDS", "TRTLLM_REGIME_THRESHOLDS", "regime_thresholds", "size_regimes", "stage_collectives"]

#: Candidate message sizes (bytes) where a second (latency, bandwidth) regime may start.
REGIME_THRESHOLDS = tuple(4**k for k in range(7, 14))  # 16 KiB ... 64 MiB (exact integers: never rounded)
#: TensorRT-LLM's all-reduce: every power of two in the same range. Its AUTO strategy picks one-shot
#: or two-shot per power-of-two token count (``selectStrategyLookUpTable``, a table measured per
#: GPU generation, group size and hidden size), so the step can sit at any power of two: H100,
#: 4 GPUs, runs one-shot up to 1 MiB and two-shot from 2 MiB (12.9 -> 26.1 us measured), which
#: the powers of four (1 MiB, 4 MiB) could not separate.
TRTLLM_REGIME_THRESHOLDS = tuple(2**k for k in range(14, 27))


def regime_thresholds(key: str, n: int) -> tuple[int, ...]:
    """Where the second regime of collective ``key`` on ``n`` GPUs may start. An all-to-all inside
    a node has one known boundary, NCCL's point-to-point protocol switch: LL up to
    :data:`~roofline.collectives.P2P_LL_THRESHOLD_BYTES` per peer, Simple above, so its large
    regime starts at the first size above ``n`` times that. Every other collective chooses its
    protocol by NCCL's tuner (or TensorRT-LLM's table, at any power of two:
    :data:`TRTLLM_REGIME_THRESHOLDS`), whose switch the fit has to find."""
    kind, algo, scope = key.split(":")[:3]
    if kind == "alltoall" and scope == "intra":
        return (P2P_LL_THRESHOLD_BYTES * n + 1,)
    return TRTLLM_REGIME_THRESHOLDS if algo == "trtllm_custom" else REGIME_THRESHOLDS


def _subset(b: CaseBatch, rows: np.ndarray, n: int, per_node: int) -> CaseBatch:
    """The rows ``rows`` of a collective batch, as one group of ``n`` GPUs, ``per_node`` a node."""
    return replace(b, index=b.index[rows], sources=b.sources[rows], count=b.count[rows],
                   size_bytes=b.size_bytes[rows], groups=((n, per_node, np.arange(len(rows))),))


def size_regimes(spec: HardwareSpec, base: dict[str, Any], b: CaseBatch, m: np.ndarray, key: str,
                 names: Sequence[str], init: Mapping[str, tuple[float, float, float]]) -> dict[str, Any]:
    """Try a second parameter set for messages from a threshold up (NCCL's LL/LL128 protocols
    for small messages, Simple for large ones; TensorRT-LLM one-shot, two-shot, then NCCL).
    Kept when it lowers the training cost (sum of |log error|) by at least 20%, with at least
    four training sizes on each side; between two training sizes the step goes where the
    faster segment ends (:func:`_switch_to_faster`)."""
    best, best_cost, best_big = base, 0.8 * log_error_cost(spec, base, [b], [m]), None
    sizes = b.size_bytes
    n, per_node = b.groups[0][0], b.groups[0][1]
    candidates = regime_thresholds(key, n)
    for threshold in candidates:
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
            best, best_cost, best_big = trial, c, big
    if best_big is None:
        return best
    alike = [t for t in candidates if np.array_equal(sizes >= t, best_big)]
    return _switch_to_faster(spec, best, _subset(b, np.array([0]), n, per_node), key, alike)


def _with_switch(params: dict[str, Any], key: str, threshold: float) -> dict[str, Any]:
    out = {**params, "per_kind": dict(params["per_kind"])}
    out["per_kind"][key] = {**out["per_kind"][key], "_large_from_bytes": threshold}
    return out


def _switch_to_faster(spec: HardwareSpec, fitted: dict[str, Any], probe: CaseBatch, key: str,
                      alike: Sequence[int]) -> dict[str, Any]:
    """Among the thresholds ``alike`` (ascending) that split the training sizes the same way (no
    training size between them tells where the step is), the smallest at which the large
    segment is not slower than the small one: a framework switches to the faster kernel
    (TensorRT-LLM's AUTO table holds the fastest strategy it measured per size; NCCL's tuner
    picks the fastest by its model), so an untrained size between the segments takes the
    faster one's side. ``probe``: one case of the group, timed at each candidate size."""
    for lo, hi in zip(alike, alike[1:]):
        at = replace(probe, size_bytes=np.array([float(lo)]))
        large = predict_batch(at, spec, _with_switch(fitted, key, lo))[0]
        small = predict_batch(at, spec, _with_switch(fitted, key, hi))[0]
        if large <= small:
            return _with_switch(fitted, key, lo)
    return _with_switch(fitted, key, alike[-1])


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
