"""Calibration stages of the compute kernels: GEMMs, linear layers, elementwise ops, attention.

1. ``gemm``: single bf16/fp16 GEMMs -> ``gemm_efficiency``, the m-curve ``efficiency_curve_m``
   (knots at :data:`CURVE_M`, the largest fixed at 1), ``hbm_efficiency``,
   ``launch_overhead_us`` and the wall-clock offset of PyTorch-timed data; then fp8 GEMMs ->
   ``per_kind["gemm:fp8"]`` and the effective fp8 peak ``peak_tflops_fp8`` that gives ``predict``
   (one efficiency for every dtype) the fitted fp8 rate.
2. ``layer``: linear layers (vidur) -> ``per_kind["linear"]``; each elementwise or norm kernel
   -> ``per_kind["elementwise:<op>"]`` (memory efficiency, L2 bandwidth, fixed cost per op).
3. ``attention``: prefill and decode attention kernels -> ``per_kind["attention_prefill"]`` and
   ``per_kind["attention_decode"]`` (compute and memory efficiency, L2 bandwidth, fixed cost, and
   the kernel's granularity, chosen among a few values by training error: the prefill tile
   ``_tile`` and the decode KV block ``_kv_tile``; keys with a leading underscore are not
   hardware parameters).

Each stage takes the training rows only and returns the params mapping with its values added.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from roofline.hardware import HardwareSpec
from roofline.validation._fitting import (
    FitParam,
    dataset_weights,
    fit,
    log_error_cost,
    stage_batches,
)
from roofline.validation._predict import offset_key

__all__ = ["CURVE_M", "stage_gemm", "stage_layer", "stage_attention"]

#: m (GEMM rows) of the efficiency-curve knots; the last one is fixed at 1.
CURVE_M = (1, 4, 16, 64, 256, 1024, 4096, 16384)


def _offset_params(frame: pd.DataFrame, kinds: Sequence[str], base: dict[str, Any]) -> list[FitParam]:
    """Offsets of the wall-clock timing sources among these kinds not fitted yet (GPU-timed
    sources, CUDA events, graphs or kernel traces, are the reference: no offset)."""
    sub = frame[frame["kind"].isin(kinds) & (frame["timing"] == "wallclock")]
    keys = sorted(set(offset_key(sub)) - set(base.get("offsets_us", {})))
    return [FitParam(("offsets_us", k), 10.0, 0.0, 300.0, log=False) for k in keys]


def stage_gemm(spec: HardwareSpec, train: pd.DataFrame, base: dict[str, Any]) -> dict[str, Any]:
    """bf16/fp16 GEMM efficiency, m-curve, HBM efficiency, launch and offsets; then fp8 GEMMs."""
    batches, measured = stage_batches(train, ["gemm"])
    if not batches:
        return base
    c = spec.compute
    base.setdefault("efficiency_curve_m", [[float(m), 1.0] for m in CURVE_M])
    main = [(b, m) for b, m in zip(batches, measured) if b.key == "gemm"]
    fp8 = [(b, m) for b, m in zip(batches, measured) if b.key == "gemm:fp8"]
    if main:
        bs, ms = [b for b, _ in main], [m for _, m in main]
        params = [
            FitParam(("overrides", "gemm_efficiency"), c.gemm_efficiency, 0.2, 1.0),
            FitParam(("overrides", "hbm_efficiency"), spec.memory.hbm_efficiency, 0.3, 1.0),
            FitParam(("overrides", "launch_overhead_us"), max(c.launch_overhead_s * 1e6, 1.0), 0.3, 40.0),
        ]
        params += [FitParam(("curve", str(i)), 0.8, 0.03, 1.0) for i in range(len(CURVE_M) - 1)]
        params += _offset_params(train, ["gemm"], base)
        n = sum(b.n for b in bs)

        def smooth(p: dict[str, Any]) -> np.ndarray:  # neighbouring knots should not jump
            knots = np.log([e for _, e in p["efficiency_curve_m"]])
            return 0.02 * np.sqrt(n) * np.diff(knots)

        base = fit(spec, base, params, bs, ms, dataset_weights(bs, train), smooth)
    if fp8 and "fp8" in c.peak_flops:
        # fp8 (per-tensor W8A8) GEMMs: the op includes quantising the activations, so its fixed
        # cost and efficiency differ from bf16; predict has one efficiency for every dtype, so
        # the fp8 efficiency also goes into an effective fp8 peak for it.
        bs, ms = [b for b, _ in fp8], [m for _, m in fp8]
        eff = base["overrides"].get("gemm_efficiency", c.gemm_efficiency)
        params = [
            FitParam(("per_kind", "gemm:fp8", "gemm_efficiency"), eff, 0.1, 1.0),
            FitParam(("per_kind", "gemm:fp8", "hbm_efficiency"),
                     base["overrides"].get("hbm_efficiency", spec.memory.hbm_efficiency), 0.3, 1.0),
            FitParam(("per_kind", "gemm:fp8", "launch_overhead_us"),
                     base["overrides"].get("launch_overhead_us", 5.0), 0.3, 60.0),
        ]
        base = fit(spec, base, params, bs, ms, dataset_weights(bs, train))
        fp8_eff = base["per_kind"]["gemm:fp8"]["gemm_efficiency"]
        # same product peak * efficiency, expressed as an effective peak at the bf16 efficiency
        base["overrides"]["peak_tflops_fp8"] = c.peak_flops["fp8"] / 1e12 * fp8_eff / eff
        base["per_kind"]["gemm:fp8"]["gemm_efficiency"] = eff
    return base


def stage_layer(spec: HardwareSpec, train: pd.DataFrame, base: dict[str, Any]) -> dict[str, Any]:
    """Linear layers (one fit) and each elementwise op (one fit each: its own memory efficiency,
    L2 bandwidth and fixed cost)."""
    batches, measured = stage_batches(train, ["linear", "elementwise"])
    ov = base["overrides"]
    for b, m in zip(batches, measured):
        if b.kind == "linear":
            params = [FitParam(("per_kind", "linear", "gemm_efficiency"),
                               ov.get("gemm_efficiency", spec.compute.gemm_efficiency), 0.1, 1.0),
                      FitParam(("per_kind", "linear", "hbm_efficiency"),
                               ov.get("hbm_efficiency", spec.memory.hbm_efficiency), 0.1, 1.0),
                      FitParam(("per_kind", "linear", "launch_overhead_us"),
                               ov.get("launch_overhead_us", 3.0), 0.1, 60.0)]
            params += _offset_params(train, ["linear"], base)
        else:
            l2 = spec.memory.l2_bandwidth_Bps / 1e9
            params = [FitParam(("per_kind", b.key, "hbm_efficiency"), 0.6, 0.02, 1.0),
                      FitParam(("per_kind", b.key, "l2_bandwidth_GBps"), l2, 0.05 * l2, 2 * l2),
                      FitParam(("per_kind", b.key, "launch_overhead_us"), 4.0, 0.1, 200.0)]
        base = fit(spec, base, params, [b], [m], dataset_weights([b], train))
    return base


def stage_attention(spec: HardwareSpec, train: pd.DataFrame, base: dict[str, Any]) -> dict[str, Any]:
    """Compute and memory efficiency, L2 bandwidth and fixed cost of each attention kernel, with
    its granularity (prefill tile, decode KV block) chosen by training error."""
    l2 = spec.memory.l2_bandwidth_Bps / 1e9
    for kind in ("attention_prefill", "attention_decode"):
        batches, measured = stage_batches(train, [kind])
        if not batches:
            continue
        params = [
            FitParam(("per_kind", kind, "gemm_efficiency"), 0.5, 0.01, 1.0),
            FitParam(("per_kind", kind, "hbm_efficiency"), 0.6, 0.02, 1.0),
            FitParam(("per_kind", kind, "l2_bandwidth_GBps"), l2, 0.05 * l2, 2 * l2),
            FitParam(("per_kind", kind, "launch_overhead_us"), 5.0, 0.3, 60.0),
        ]
        weights = dataset_weights(batches, train)
        name, choices = ("_tile", (64.0, 128.0)) if kind == "attention_prefill" else \
            ("_kv_tile", (1.0, 32.0, 64.0, 128.0, 256.0))
        best, best_cost = base, np.inf
        for tile in choices:
            trial = copy.deepcopy(base)
            trial.setdefault("per_kind", {}).setdefault(kind, {})[name] = tile
            trial = fit(spec, trial, params, batches, measured, weights)
            cost = log_error_cost(spec, trial, batches, measured)
            if cost < best_cost:
                best, best_cost = trial, cost
        base = best
    return base
