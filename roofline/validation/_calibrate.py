"""Calibration: fit a device's efficiency parameters on the training rows, report the rest.

The fit runs in stages, each a bounded ``scipy.optimize.least_squares`` on the log of
predicted over measured time (soft-L1 loss, so the result is close to a minimum of the mean
absolute percentage error and robust to a few outliers). Every dataset in a stage weighs the
same, however many rows it has. Stages and what they fit:

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
4. ``collectives``: per collective, algorithm family (NCCL, TensorRT-LLM custom) and scope
   (intra / inter node) -> link latency and efficiency (inter node: latency and bandwidth),
   then the same per GPU count (``<key>:n<GPUs>``).
   The nccl-tests all-reduce fit within a node sets the device-wide ``link_latency_us`` /
   ``link_efficiency`` that ``predict`` uses; the inter-node send/recv fit (else all-reduce) sets
   ``inter_node_latency_us`` / ``inter_node_bandwidth_GBps`` (the efficiency folded in).
5. ``serving``: end-to-end TTFT/TPOT -> the serving-model coefficients per framework (see
   :mod:`roofline.validation._serving`), on top of ``predict`` with the stages 1 and 4 values.

Held-out rows never reach a fit: the stages receive the training subset only.
"""

from __future__ import annotations

import copy
import datetime as _dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from roofline.hardware import HardwareSpec, load_hardware
from roofline.validation._data import load_cases
from roofline.validation._metrics import error_summary
from roofline.validation._predict import (
    COLLECTIVE_KINDS,
    CaseBatch,
    build_batches,
    kind_key,
    offset_key,
    predict_batch,
)
from roofline.validation._serving import (
    SERVING_PARAMS,
    TPOT_PARAMS,
    TTFT_PARAMS,
    datasheet_e2e,
    e2e_features,
    serving_times,
)
from roofline.validation._split import assign_split, describe_split

__all__ = ["CURVE_M", "STAGES", "CalibrationResult", "calibrate_device", "predict_all", "profile_hardware",
           "mark_queued"]

#: m (GEMM rows) of the efficiency-curve knots; the last one is fixed at 1.
CURVE_M = (1, 4, 16, 64, 256, 1024, 4096, 16384)
_MAX_FIT_ROWS = 3000  # per batch: larger training sets are thinned (every k-th row) for speed


@dataclass
class _Param:
    path: tuple[str, ...]  # where the value goes in the params mapping
    init: float
    lo: float
    hi: float
    log: bool = True

    def to_x(self, v: float) -> float:
        v = float(np.clip(v, self.lo, self.hi))
        return float(np.log(v)) if self.log else v

    def from_x(self, x: float) -> float:
        return float(np.exp(x)) if self.log else float(x)

    def bounds(self) -> tuple[float, float]:
        return (np.log(self.lo), np.log(self.hi)) if self.log else (self.lo, self.hi)


def _set(params: dict[str, Any], path: tuple[str, ...], value: float) -> None:
    if path[0] == "curve":
        params["efficiency_curve_m"][int(path[1])][1] = value
        return
    node = params
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


def _get(params: Mapping[str, Any], path: tuple[str, ...], default: float) -> float:
    if path[0] == "curve":
        return float(params["efficiency_curve_m"][int(path[1])][1])
    node: Any = params
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return default
        node = node[key]
    return float(node)


def _thin(rows: np.ndarray, limit: int = _MAX_FIT_ROWS) -> np.ndarray:
    if len(rows) <= limit:
        return rows
    return rows[:: int(np.ceil(len(rows) / limit))]


def _weights(batches: Sequence[CaseBatch], frame: pd.DataFrame) -> list[np.ndarray]:
    """Per-row residual weights: each dataset in the stage weighs the same in total."""
    datasets = [frame["dataset"].to_numpy()[b.index] for b in batches]
    allsets = np.concatenate(datasets) if datasets else np.array([])
    names, counts = np.unique(allsets, return_counts=True)
    per = dict(zip(names, counts))
    total, groups = len(allsets), max(len(names), 1)
    return [np.sqrt(total / (groups * np.array([per[d] for d in ds]))) for ds in datasets]


def _fit(spec: HardwareSpec, base: dict[str, Any], params: list[_Param], batches: list[CaseBatch],
         measured: list[np.ndarray], weights: list[np.ndarray],
         regularize: Callable[[dict[str, Any]], np.ndarray] | None = None) -> dict[str, Any]:
    """Least squares on log(predicted / measured); returns ``base`` with the fitted values."""
    from scipy.optimize import least_squares

    if not params or not batches:
        return base
    x0 = np.array([p.to_x(_get(base, p.path, p.init)) for p in params])
    lo, hi = (np.array(b) for b in zip(*(p.bounds() for p in params)))
    x0 = np.clip(x0, lo + 1e-9, hi - 1e-9)

    def apply(x: np.ndarray) -> dict[str, Any]:
        out = copy.deepcopy(base)
        for p, v in zip(params, x):
            _set(out, p.path, p.from_x(v))
        return out

    def residuals(x: np.ndarray) -> np.ndarray:
        current = apply(x)
        parts = [w * np.log(predict_batch(b, spec, current) / m) for b, m, w in zip(batches, measured, weights)]
        if regularize is not None:
            parts.append(regularize(current))
        return np.concatenate(parts)

    result = least_squares(residuals, x0, bounds=(lo, hi), loss="soft_l1", f_scale=0.05,
                           x_scale="jac", max_nfev=200 * len(params))
    return apply(result.x)


@dataclass
class CalibrationResult:
    """What :func:`calibrate_device` found: the profile and the cases with their predictions."""

    device: str
    split: str
    profile: dict[str, Any]
    cases: pd.DataFrame  # the device's cases: measured, predicted (datasheet, calibrated), train flag
    stages: list[str] = field(default_factory=list)

    def summary(self, subset: str = "held_out") -> pd.DataFrame:
        """Error per family and dataset, datasheet-only and calibrated, on ``held_out`` or ``train``."""
        sub = self.cases[self.cases["train"] == (subset == "train")]
        sub = sub[sub["predicted_calibrated"].notna()]
        ds = error_summary(sub, "predicted_datasheet", by=["family", "dataset"])
        cal = error_summary(sub, "predicted_calibrated", by=["family", "dataset"])
        return ds.merge(cal, on=["family", "dataset"], suffixes=("_datasheet", "_calibrated"))


# -- stages ----------------------------------------------------------------------------------

def _stage_batches(frame: pd.DataFrame, kinds: Sequence[str]) -> tuple[list[CaseBatch], list[np.ndarray]]:
    """Batches of the training rows of these kinds (large groups thinned evenly), with their
    measured times; ``CaseBatch.index`` holds positions in ``frame``."""
    from dataclasses import replace

    sub = frame[frame["kind"].isin(kinds)]
    if sub.empty:
        return [], []
    keep = np.concatenate([_thin(np.asarray(rows)) for rows in
                           sub.groupby(kind_key(sub).to_numpy()).indices.values()])
    sub = sub.iloc[np.sort(keep)]
    meas = sub["measured_s"].to_numpy()
    pos = frame.index.get_indexer(sub.index)
    batches = build_batches(sub)
    return [replace(b, index=pos[b.index]) for b in batches], [meas[b.index] for b in batches]


def _offset_params(frame: pd.DataFrame, kinds: Sequence[str], base: dict[str, Any]) -> list[_Param]:
    """Offsets of the wall-clock timing sources among these kinds not fitted yet (GPU-timed
    sources, CUDA events, graphs or kernel traces, are the reference: no offset)."""
    sub = frame[frame["kind"].isin(kinds) & (frame["timing"] == "wallclock")]
    keys = sorted(set(offset_key(sub)) - set(base.get("offsets_us", {})))
    return [_Param(("offsets_us", k), 10.0, 0.0, 300.0, log=False) for k in keys]


def _stage_gemm(spec: HardwareSpec, train: pd.DataFrame, base: dict[str, Any]) -> dict[str, Any]:
    batches, measured = _stage_batches(train, ["gemm"])
    if not batches:
        return base
    c = spec.compute
    base.setdefault("efficiency_curve_m", [[float(m), 1.0] for m in CURVE_M])
    main = [(b, m) for b, m in zip(batches, measured) if b.key == "gemm"]
    fp8 = [(b, m) for b, m in zip(batches, measured) if b.key == "gemm:fp8"]
    if main:
        bs, ms = [b for b, _ in main], [m for _, m in main]
        params = [
            _Param(("overrides", "gemm_efficiency"), c.gemm_efficiency, 0.2, 1.0),
            _Param(("overrides", "hbm_efficiency"), spec.memory.hbm_efficiency, 0.3, 1.0),
            _Param(("overrides", "launch_overhead_us"), max(c.launch_overhead_s * 1e6, 1.0), 0.3, 40.0),
        ]
        params += [_Param(("curve", str(i)), 0.8, 0.03, 1.0) for i in range(len(CURVE_M) - 1)]
        params += _offset_params(train, ["gemm"], base)
        n = sum(b.n for b in bs)

        def smooth(p: dict[str, Any]) -> np.ndarray:  # neighbouring knots should not jump
            knots = np.log([e for _, e in p["efficiency_curve_m"]])
            return 0.02 * np.sqrt(n) * np.diff(knots)

        base = _fit(spec, base, params, bs, ms, _weights(bs, train), smooth)
    if fp8 and "fp8" in c.peak_flops:
        # fp8 (per-tensor W8A8) GEMMs: the op includes quantising the activations, so its fixed
        # cost and efficiency differ from bf16; predict has one efficiency for every dtype, so
        # the fp8 efficiency also goes into an effective fp8 peak for it.
        bs, ms = [b for b, _ in fp8], [m for _, m in fp8]
        eff = base["overrides"].get("gemm_efficiency", c.gemm_efficiency)
        params = [
            _Param(("per_kind", "gemm:fp8", "gemm_efficiency"), eff, 0.1, 1.0),
            _Param(("per_kind", "gemm:fp8", "hbm_efficiency"),
                   base["overrides"].get("hbm_efficiency", spec.memory.hbm_efficiency), 0.3, 1.0),
            _Param(("per_kind", "gemm:fp8", "launch_overhead_us"),
                   base["overrides"].get("launch_overhead_us", 5.0), 0.3, 60.0),
        ]
        base = _fit(spec, base, params, bs, ms, _weights(bs, train))
        fp8_eff = base["per_kind"]["gemm:fp8"]["gemm_efficiency"]
        # same product peak * efficiency, expressed as an effective peak at the bf16 efficiency
        base["overrides"]["peak_tflops_fp8"] = c.peak_flops["fp8"] / 1e12 * fp8_eff / eff
        base["per_kind"]["gemm:fp8"]["gemm_efficiency"] = eff
    return base


def _stage_layer(spec: HardwareSpec, train: pd.DataFrame, base: dict[str, Any]) -> dict[str, Any]:
    """Linear layers (one fit) and each elementwise op (one fit each: its own memory efficiency,
    L2 bandwidth and fixed cost)."""
    batches, measured = _stage_batches(train, ["linear", "elementwise"])
    ov = base["overrides"]
    for b, m in zip(batches, measured):
        if b.kind == "linear":
            params = [_Param(("per_kind", "linear", "gemm_efficiency"),
                             ov.get("gemm_efficiency", spec.compute.gemm_efficiency), 0.1, 1.0),
                      _Param(("per_kind", "linear", "hbm_efficiency"),
                             ov.get("hbm_efficiency", spec.memory.hbm_efficiency), 0.1, 1.0),
                      _Param(("per_kind", "linear", "launch_overhead_us"),
                             ov.get("launch_overhead_us", 3.0), 0.1, 60.0)]
            params += _offset_params(train, ["linear"], base)
        else:
            l2 = spec.memory.l2_bandwidth_Bps / 1e9
            params = [_Param(("per_kind", b.key, "hbm_efficiency"), 0.6, 0.02, 1.0),
                      _Param(("per_kind", b.key, "l2_bandwidth_GBps"), l2, 0.05 * l2, 2 * l2),
                      _Param(("per_kind", b.key, "launch_overhead_us"), 4.0, 0.1, 200.0)]
        base = _fit(spec, base, params, [b], [m], _weights([b], train))
    return base


def _stage_attention(spec: HardwareSpec, train: pd.DataFrame, base: dict[str, Any]) -> dict[str, Any]:
    """Compute and memory efficiency, L2 bandwidth and fixed cost of each attention kernel, with
    its granularity (prefill tile, decode KV block) chosen by training error."""
    l2 = spec.memory.l2_bandwidth_Bps / 1e9
    for kind in ("attention_prefill", "attention_decode"):
        batches, measured = _stage_batches(train, [kind])
        if not batches:
            continue
        params = [
            _Param(("per_kind", kind, "gemm_efficiency"), 0.5, 0.01, 1.0),
            _Param(("per_kind", kind, "hbm_efficiency"), 0.6, 0.02, 1.0),
            _Param(("per_kind", kind, "l2_bandwidth_GBps"), l2, 0.05 * l2, 2 * l2),
            _Param(("per_kind", kind, "launch_overhead_us"), 5.0, 0.3, 60.0),
        ]
        weights = _weights(batches, train)
        name, choices = ("_tile", (64.0, 128.0)) if kind == "attention_prefill" else \
            ("_kv_tile", (1.0, 32.0, 64.0, 128.0, 256.0))
        best, best_cost = base, np.inf
        for tile in choices:
            trial = copy.deepcopy(base)
            trial.setdefault("per_kind", {}).setdefault(kind, {})[name] = tile
            trial = _fit(spec, trial, params, batches, measured, weights)
            cost = sum(float(np.sum(np.abs(np.log(predict_batch(b, spec, trial) / m))))
                       for b, m in zip(batches, measured))
            if cost < best_cost:
                best, best_cost = trial, cost
        base = best
    return base


#: Candidate message sizes (bytes) where a second (latency, bandwidth) regime may start.
REGIME_THRESHOLDS = tuple(4**k for k in range(7, 14))  # 16 KiB ... 64 MiB (exact integers: never rounded)


def _size_regimes(spec: HardwareSpec, base: dict[str, Any], b: CaseBatch, m: np.ndarray, key: str,
                  names: Sequence[str], init: Mapping[str, tuple[float, float, float]]) -> dict[str, Any]:
    """Try a second parameter set for messages from a threshold up (NCCL's LL/LL128 protocols
    for small messages, Simple for large ones; TensorRT-LLM one-shot, two-shot, then NCCL).
    Kept when it lowers the training cost (sum of |log error|) by at least 20%, with at least
    four training sizes on each side."""
    from dataclasses import replace

    def cost(p: dict[str, Any]) -> float:
        return float(np.sum(np.abs(np.log(predict_batch(b, spec, p) / m))))

    best, best_cost = base, 0.8 * cost(base)
    sizes = b.size_bytes
    for threshold in REGIME_THRESHOLDS:
        big = sizes >= threshold
        if big.sum() < 4 or (~big).sum() < 4:
            continue
        trial = copy.deepcopy(base)
        trial["per_kind"][key]["_large_from_bytes"] = threshold
        fitted = trial["per_kind"][key]
        trial["per_kind"][f"{key}:large"] = {k: fitted[k] for k in names}
        rows = np.flatnonzero(big)
        large = replace(b, index=b.index[rows], sources=b.sources[rows], count=b.count[rows],
                        size_bytes=sizes[rows], groups=((b.groups[0][0], b.groups[0][1], np.arange(len(rows))),))
        params = [_Param(("per_kind", f"{key}:large", k), fitted[k], init[k][1], init[k][2]) for k in names]
        trial = _fit(spec, trial, params, [large], [m[rows]], [np.ones(len(rows))])
        rows = np.flatnonzero(~big)
        small = replace(large, index=b.index[rows], sources=b.sources[rows], count=b.count[rows],
                        size_bytes=sizes[rows], groups=((b.groups[0][0], b.groups[0][1], np.arange(len(rows))),))
        params = [_Param(("per_kind", key, k), fitted[k], init[k][1], init[k][2]) for k in names]
        trial = _fit(spec, trial, params, [small], [m[rows]], [np.ones(len(rows))])
        c = cost(trial)
        if c < best_cost:
            best, best_cost = trial, c
    return best


def _stage_collectives(spec: HardwareSpec, train: pd.DataFrame, base: dict[str, Any]) -> dict[str, Any]:
    """Per collective key: one fit over every group size, then one per group size (NCCL picks
    algorithm and protocol by GPU count, which a single latency and efficiency cannot follow)."""
    from dataclasses import replace

    batches, measured = _stage_batches(train, COLLECTIVE_KINDS)
    pairs = sorted(zip(batches, measured), key=lambda bm: bm[0].key.endswith(":inter"))  # intra first
    link, net = spec.intra_node, spec.inter_node
    base.setdefault("per_kind", {})
    for b, m in pairs:
        per_kind = base["per_kind"]  # _fit returns a new mapping: look it up again
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
        params = [_Param(("per_kind", b.key, k), *init[k]) for k in names]
        base = _fit(spec, base, params, [b], [m], [np.ones(b.n)])
        for n, per_node, rows in b.groups:
            if len(rows) < 6:
                continue
            sub = replace(b, index=b.index[rows], sources=b.sources[rows], count=b.count[rows],
                          size_bytes=b.size_bytes[rows], groups=((n, per_node, np.arange(len(rows))),))
            key = f"{b.key}:n{n}"
            fitted = base["per_kind"][b.key]
            params = [_Param(("per_kind", key, k), fitted[k], init[k][1], init[k][2]) for k in names]
            base = _fit(spec, base, params, [sub], [m[rows]], [np.ones(len(rows))])
            base = _size_regimes(spec, base, sub, m[rows], key, names, init)
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


def _fit_linear(F: np.ndarray, f0: np.ndarray, y: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """Non-negative coefficients of y ~ F @ x + f0 minimising relative error (NNLS, convex),
    then polished with a soft-L1 loss on log(predicted / measured), within SERVING_PARAMS bounds."""
    from scipy.optimize import least_squares, nnls

    lo = np.array([SERVING_PARAMS[n][1] for n in names])
    hi = np.array([SERVING_PARAMS[n][2] for n in names])
    x, _ = nnls(F / y[:, None], 1.0 - f0 / y)
    x = np.clip(x, lo + 1e-9, hi - 1e-9)
    res = least_squares(lambda z: np.log(np.maximum(F @ z + f0, 1e-9) / y), x, bounds=(lo, hi),
                        loss="soft_l1", f_scale=0.1)
    return {n: float(v) for n, v in zip(names, res.x)}


def _stage_serving(hw: HardwareSpec, train: pd.DataFrame, base: dict[str, Any]) -> dict[str, Any]:
    from roofline.validation._serving import recipe_keys, serving_design

    sub = train[train["kind"].isin(["ttft", "tpot"]) & (train["family"] != "e2e_ttft_queued")]
    if sub.empty:
        return base
    feats = e2e_features(sub, hw)
    serving: dict[str, dict[str, float]] = {}
    keys = [recipe_keys(b, v, p) for b, v, p in zip(sub["backend"].astype(str), sub["backend_version"].astype(str),
                                                    sub["precision"].astype(str))]
    groups = []
    for level in (3, 2, 1, 0):  # any, framework, framework/recipe, release/recipe
        labels = pd.Series([k[level] for k in keys], index=sub.index)
        groups += list(sub.groupby(labels))
    for backend, g in groups:
        tp, tt = g[g["kind"] == "tpot"], g[g["kind"] == "ttft"]
        if len(tp) < 8 or len(tt) < 8:
            continue
        F, f0 = serving_design(feats.loc[tp.index], tp, "tpot")
        coef = _fit_linear(F, f0, tp["measured_s"].to_numpy(), TPOT_PARAMS)
        F, _ = serving_design(feats.loc[tt.index], tt, "tpot")
        tpot = F @ np.array([coef[n] for n in TPOT_PARAMS])
        F, f0 = serving_design(feats.loc[tt.index], tt, "ttft", tpot)
        coef |= _fit_linear(F, f0, tt["measured_s"].to_numpy(), TTFT_PARAMS)
        coef["train_rows"] = int(len(g))
        serving[backend] = coef
    base["serving"] = serving
    return base


def profile_hardware(spec: HardwareSpec, params: Mapping[str, Any]) -> HardwareSpec:
    """``spec`` with the global overrides and the efficiency curve of ``params`` applied."""
    from roofline.validation._profile import apply_overrides

    return apply_overrides(spec, params.get("overrides") or {}, params.get("efficiency_curve_m"))


# -- prediction of every case ------------------------------------------------------------------

def mark_queued(cases: pd.DataFrame) -> pd.DataFrame:
    """Relabel the family of TTFT cases of saturated servers ``e2e_ttft_queued`` (in place)."""
    from roofline.validation._serving import queued_ttft

    ttft = cases["kind"] == "ttft"
    for device, g in cases[ttft & cases["device"].notna()].groupby("device"):
        q = queued_ttft(g, load_hardware(device))
        cases.loc[g.index[q], "family"] = "e2e_ttft_queued"
    return cases


def predict_all(cases: pd.DataFrame, params_by_device: Mapping[str, Mapping[str, Any] | None]) -> np.ndarray:
    """Predicted seconds of every case (NaN where there is no spec, or no params for a device).

    ``params_by_device`` maps a bundled device name to its params (``{}`` = datasheet values).
    End-to-end cases use the serving model when the params have ``serving`` coefficients, else
    ``roofline.predict`` for a static batch.
    """
    cases = cases.reset_index(drop=True)
    out = np.full(len(cases), np.nan)
    known = cases["device"].isin([d for d, p in params_by_device.items() if p is not None])
    for b in build_batches(cases[known]):
        params = params_by_device[b.device] or {}
        spec = load_hardware(b.device)
        out[cases.index[known][b.index]] = predict_batch(b, spec, params)
    e2e = known & cases["kind"].isin(["ttft", "tpot"])
    for device, g in cases[e2e].groupby("device"):
        params = params_by_device[device] or {}
        spec = load_hardware(device)
        if params.get("serving"):
            hw = profile_hardware(spec, params)
            out[g.index] = serving_times(e2e_features(g, hw), g, params["serving"])
        else:
            out[g.index] = datasheet_e2e(g, spec)
    return out


# -- the whole calibration ---------------------------------------------------------------------

STAGES = ("gemm", "layer", "attention", "collectives", "serving")


def calibrate_device(device: str, cases: pd.DataFrame | None = None, *, split: str = "size",
                     data_dir: str | None = None, stages: Sequence[str] = STAGES) -> CalibrationResult:
    """Fit ``device``'s parameters on the training rows; predict every row, datasheet and calibrated.

    Args:
        device: bundled hardware name (``h100-sxm``).
        cases: the case table (default: :func:`load_cases` of ``data_dir``).
        split: ``"size"`` or ``"model"`` (see :mod:`roofline.validation._split`).
        data_dir: the validation data folder, when ``cases`` is not given.
        stages: a subset of :data:`STAGES` to run (the others keep datasheet values).

    Raises:
        SpecError: unknown device or split, missing data folder, or no measured data for the device.
    """
    from roofline.exceptions import SpecError

    spec = load_hardware(device)
    if cases is None:
        cases = load_cases(data_dir)
    bad = [s for s in stages if s not in STAGES]
    if bad:
        raise SpecError(f"unknown calibration stage {bad[0]!r}; choose from {', '.join(STAGES)}")
    mine = cases[cases["device"] == spec.name].reset_index(drop=True)
    if mine.empty:
        devices = sorted(d for d in cases["device"].dropna().unique())
        raise SpecError(f"no measured data for {spec.name}; the data covers {', '.join(devices)}")
    mine = mark_queued(mine.copy())
    mine["train"] = assign_split(mine, split)
    train = mine[mine["train"]]
    params: dict[str, Any] = {"overrides": {}}
    fits = {
        "gemm": lambda p: _stage_gemm(spec, train, p),
        "layer": lambda p: _stage_layer(spec, train, p),
        "attention": lambda p: _stage_attention(spec, train, p),
        "collectives": lambda p: _stage_collectives(spec, train, p),
        # serving is fitted on top of everything before it
        "serving": lambda p: _stage_serving(profile_hardware(spec, p), train, p),
    }
    run = [name for name in fits if name in stages]  # always in this order
    for name in run:
        params = fits[name](params)
    mine["predicted_datasheet"] = predict_all(mine, {spec.name: {}})
    mine["predicted_calibrated"] = predict_all(mine, {spec.name: params})
    profile = _profile(spec, params, mine, split, run)
    return CalibrationResult(spec.name, split, profile, mine, run)


def _round(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _round(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_round(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return 0.0 if abs(float(x)) < 1e-9 else float(f"{float(x):.5g}")
    if isinstance(x, np.integer):
        return int(x)
    return x


def _profile(spec: HardwareSpec, params: dict[str, Any], mine: pd.DataFrame, split: str,
             stages: list[str]) -> dict[str, Any]:
    import roofline

    used = mine[mine["train"]]
    files = sorted({f"{d.split('/')[0]}/{f}" for d, f in zip(used["dataset"], used["file"])})

    def table(subset: pd.DataFrame, col: str) -> list[dict[str, Any]]:
        s = error_summary(subset[subset[col].notna()], col, by=["family", "dataset"])
        return [_round(r) for r in s.to_dict("records")]

    held = mine[~mine["train"]]
    profile: dict[str, Any] = {
        "name": spec.name,
        "description": f"calibrated efficiency parameters of {spec.name} (roofline calibrate)",
        "provenance": {
            "created": _dt.date.today().isoformat(),
            "tool": f"roofline {roofline.__version__} calibrate",
            "base_spec": f"hardware_specs/{spec.name}.yaml",
            "data": "../shared/validation (read in place, not copied)",
            "files": files,
            "split": split,
            "split_rule": describe_split(split),
            "stages": stages,
            "train_rows": int(mine["train"].sum()),
            "held_out_rows": int((~mine["train"]).sum()),
            "method": "scipy.optimize.least_squares on log(predicted/measured), soft-L1 loss, "
                      "each dataset weighted equally; errors below are on the held-out rows only "
                      "unless marked train",
        },
    }
    profile.update(_round(params.get("overrides", {})))
    if params.get("efficiency_curve_m"):
        profile["efficiency_curve_m"] = _round(params["efficiency_curve_m"])
    for key in ("per_kind", "offsets_us", "serving"):
        if params.get(key):
            profile[key] = _round(params[key])
    profile["errors"] = {
        "held_out": {"datasheet": table(held, "predicted_datasheet"),
                     "calibrated": table(held, "predicted_calibrated")},
        "train": {"calibrated": table(used, "predicted_calibrated")},
    }
    return profile
