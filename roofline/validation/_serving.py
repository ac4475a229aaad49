"""End-to-end TTFT and TPOT of served models: ``roofline.predict`` plus a small serving model.

The measurements (aiconfigurator ``e2e_silicon_dense_models.csv``) come from serving benchmarks
at a fixed concurrency ``c``: requests are continuously batched, so a request's decode steps
share the GPU with the prefills of the requests that replace finished ones, and a request
waits for admission when the KV cache cannot hold ``c`` sequences. ``roofline.predict`` models one
static batch. The serving model below turns its phase times into serving metrics:

- ``c_eff`` = min(c, sequences whose KV cache of ISL + OSL tokens fits beside the weights in
  90% of HBM): the batch the server can actually run (the rest queue);
- ``D`` = predicted TPOT of a static batch of ``c_eff`` (mean decode step, KV growing);
- ``P1`` = predicted TTFT of one request (a prefill of ISL tokens);
- TPOT = k_d * D + beta * (c_eff / OSL) * P1 + s: in steady state c_eff / OSL requests finish,
  and are replaced (one prefill each), per decode step; s is a per-step framework overhead
  (scheduler, sampling, detokenisation, launch gaps);
- TTFT = alpha * P1 + gamma * (c_eff - 1) * P1 + t0 + q * max(0, c / c_eff - 1) * OSL * TPOT
  + kappa * OSL * TPOT / c_eff: the request's own prefill, the prefills it queues behind, a fixed
  cost, the wait for a free KV-cache slot when the server is saturated, and a share of the
  interval between two request completions (OSL * TPOT / c_eff): an empirical term for
  schedulers that admit new prompts at decode-step or completion boundaries (it is what makes
  TTFT grow with OSL at low concurrency in the TensorRT-LLM data).

The coefficients (k_d, beta, s; alpha, gamma, t0, kappa) are fitted per framework (backend) by
:mod:`roofline.validation._stage_serving`; q is 1 (theory).

TTFT of a *saturated* configuration (c above the sequences that fit) is mostly the admission
wait, a property of the scheduler and of how many requests the benchmark sends, not of the
hardware: such rows are classified ``e2e_ttft_queued`` (from the memory model, before looking at
the measurement), reported apart from ``e2e_ttft`` and never used to fit. Without them (datasheet-only), TTFT and TPOT are
``roofline.predict``'s for a static batch of ``c`` requests, which is what a user would run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from roofline.hardware import HardwareSpec
from roofline.model import ModelSpec, load_model
from roofline.predict import memory_per_device, predict
from roofline.workload import Parallelism, Workload

__all__ = ["SERVING_PARAMS", "HBM_USABLE_FRACTION", "ADMISSION_WAIT", "e2e_features", "serving_times",
           "workload_for", "datasheet_e2e", "serving_design", "queued_ttft", "recipe_keys"]

#: Fraction of HBM a serving framework gives to weights and KV cache (vLLM's default 0.9).
HBM_USABLE_FRACTION = 0.9

#: Serving-model coefficients per framework: name -> (initial value, lower, upper bound).
SERVING_PARAMS: dict[str, tuple[float, float, float]] = {
    "decode_scale": (1.0, 0.3, 4.0),  # k_d
    "prefill_interference": (1.0, 0.0, 4.0),  # beta
    "step_overhead_ms": (1.0, 0.0, 60.0),  # s
    "ttft_prefill_scale": (1.5, 0.2, 30.0),  # alpha
    "ttft_queue_prefills": (0.1, 0.0, 4.0),  # gamma
    "ttft_fixed_ms": (20.0, 0.0, 3000.0),  # t0
    "ttft_lifetime_share": (0.0, 0.0, 4.0),  # kappa
}
#: q: a saturated server admits a waiting request when one of the c_eff running ones finishes;
#: theory (not fitted: the training rows rarely saturate).
ADMISSION_WAIT = 1.0
TPOT_PARAMS = ("decode_scale", "prefill_interference", "step_overhead_ms")
TTFT_PARAMS = ("ttft_prefill_scale", "ttft_queue_prefills", "ttft_fixed_ms", "ttft_lifetime_share")


def workload_for(precision: str, backend: str, batch: int, isl: int, osl: int) -> Workload:
    """The Workload of a served configuration.

    bf16: everything in bf16. fp8 (and fp8_block): fp8 weights and activations. fp4 (NVFP4 on
    B200): 4-bit weights with fp8 GEMMs, since the specs have no fp4 rate (an underestimate of
    B200 FP4 compute). The KV cache is fp8 with TensorRT-LLM's FP8 recipes and bf16 with vLLM and
    SGLang, whose default KV dtype follows the model (an assumption: the data does not say).
    """
    if precision in ("fp8", "fp4"):
        kv = "fp8" if backend == "trtllm" else "bf16"
        weight = "fp8" if precision == "fp8" else "int4"
        return Workload(batch=batch, input_len=isl, output_len=osl, weight_dtype=weight,
                        activation_dtype="fp8", kv_dtype=kv)
    return Workload(batch=batch, input_len=isl, output_len=osl)


@lru_cache(maxsize=64)
def _model(name: str) -> ModelSpec:
    return load_model(name)


# HardwareSpec holds dicts (not hashable): results are cached under the spec's repr, which
# lists every field, so two specs with the same values share entries.
_PHASE_CACHE: dict[tuple[Any, ...], tuple[float, float]] = {}
_FIT_CACHE: dict[tuple[Any, ...], int] = {}


def _phase_times(hw: HardwareSpec, hw_key: str, model_name: str, precision: str, backend: str, batch: int,
                 isl: int, osl: int, tp: int, pp: int) -> tuple[float, float]:
    key = (hw_key, model_name, precision, backend, batch, isl, osl, tp, pp)
    if key not in _PHASE_CACHE:
        w = workload_for(precision, backend, batch, isl, osl)
        # the raw roofline of ``hw`` as given: the serving fit adds its own overheads to it
        p = predict(_model(model_name), hw, workload=w, parallelism=Parallelism(tp=tp, pp=pp),
                    prefetch=False, check_memory=False, datasheet=True)
        if len(_PHASE_CACHE) > 200_000:
            _PHASE_CACHE.clear()
        _PHASE_CACHE[key] = (p.ttft_s, p.tpot_s)
    return _PHASE_CACHE[key]


def _max_sequences(hw: HardwareSpec, hw_key: str, model_name: str, precision: str, backend: str, isl: int,
                   osl: int, tp: int, pp: int) -> int:
    key = (hw_key, model_name, precision, backend, isl, osl, tp, pp)
    if key not in _FIT_CACHE:
        w = workload_for(precision, backend, 1, isl, osl)
        mem = memory_per_device(_model(model_name), w, Parallelism(tp=tp, pp=pp),
                                hw.memory.hbm_capacity_bytes)
        free = HBM_USABLE_FRACTION * mem.capacity_bytes - mem.weights_bytes - mem.activation_bytes
        _FIT_CACHE[key] = max(1, math.floor(free / mem.kv_cache_bytes)) if mem.kv_cache_bytes > 0 else 1 << 30
    return _FIT_CACHE[key]


def _rows(cases: pd.DataFrame) -> list[tuple[Any, ...]]:
    cols = ["model", "precision", "backend", "concurrency", "isl", "osl", "tp", "pp"]
    return [(m, p, b, int(c), int(i), int(o), int(t), int(pp_))
            for m, p, b, c, i, o, t, pp_ in cases[cols].itertuples(index=False)]


def e2e_features(cases: pd.DataFrame, hw: HardwareSpec) -> pd.DataFrame:
    """Per end-to-end case: c_eff, D (decode step at c_eff), P1 (one prefill), in seconds."""
    out = []
    key = repr(hw)
    for model, prec, backend, c, isl, osl, tp, pp in _rows(cases):
        c_fit = _max_sequences(hw, key, model, prec, backend, isl, osl, tp, pp)
        c_eff = min(c, c_fit)
        _, decode = _phase_times(hw, key, model, prec, backend, c_eff, isl, osl, tp, pp)
        prefill1, _ = _phase_times(hw, key, model, prec, backend, 1, isl, 2, tp, pp)
        out.append((c_eff, c_fit, decode, prefill1))
    return pd.DataFrame(out, columns=["c_eff", "c_fit", "decode_s", "prefill1_s"], index=cases.index)


def datasheet_e2e(cases: pd.DataFrame, hw: HardwareSpec) -> np.ndarray:
    """``roofline.predict`` for a static batch of ``concurrency`` requests: TTFT or TPOT by kind."""
    out = np.empty(len(cases))
    key = repr(hw)
    for i, (row, kind) in enumerate(zip(_rows(cases), cases["kind"])):
        model, prec, backend, c, isl, osl, tp, pp = row
        ttft, tpot = _phase_times(hw, key, model, prec, backend, c, isl, osl, tp, pp)
        out[i] = ttft if kind == "ttft" else tpot
    return out


def recipe_keys(backend: str, version: str, precision: str) -> tuple[str, ...]:
    """Serving-model entries a case may use, most specific first: the framework release and
    precision recipe (``trtllm-1.0.0rc3/fp8``), the framework and recipe (``trtllm/fp8``), the
    framework (``trtllm``), any framework (``any``)."""
    return (f"{backend}-{version}/{precision}", f"{backend}/{precision}", backend, "any")


def _coefficients(coefficients: Mapping[str, Mapping[str, float]], keys: tuple[str, ...]) -> dict[str, float]:
    default = {k: v[0] for k, v in SERVING_PARAMS.items()}
    for key in keys:
        if key in coefficients:
            return default | dict(coefficients[key])
    return default


def serving_times(features: pd.DataFrame, cases: pd.DataFrame,
                  coefficients: Mapping[str, Mapping[str, float]]) -> np.ndarray:
    """TTFT or TPOT (by the case's kind) from the serving model, seconds.

    ``coefficients`` maps a serving recipe to its :data:`SERVING_PARAMS`; a case uses the first
    entry found among :func:`recipe_keys`, else the initial values.
    """
    out = np.empty(len(cases))
    keys = [recipe_keys(b, v, p) for b, v, p in zip(cases["backend"].astype(str),
                                                    cases["backend_version"].astype(str),
                                                    cases["precision"].astype(str))]
    is_ttft = (cases["kind"] == "ttft").to_numpy()
    first = np.array([k[0] for k in keys])
    for key in sorted(set(first)):
        rows = first == key
        k = _coefficients(coefficients, keys[int(np.flatnonzero(rows)[0])])
        sub, f = cases[rows], features[rows]
        F, f0 = serving_design(f, sub, "tpot")
        tpot = F @ np.array([k[n] for n in TPOT_PARAMS]) + f0
        F, f0 = serving_design(f, sub, "ttft", tpot)
        ttft = F @ np.array([k[n] for n in TTFT_PARAMS]) + f0
        out[rows] = np.where(is_ttft[rows], ttft, tpot)
    return out


def serving_design(features: pd.DataFrame, cases: pd.DataFrame, kind: str,
                   tpot: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The serving model is linear in its coefficients: returns (features F, fixed term f0) with
    prediction = F @ coefficients + f0, columns in the order of TPOT_PARAMS or TTFT_PARAMS.
    TTFT needs the model TPOT of the same rows (``tpot``)."""
    c_eff = features["c_eff"].to_numpy(dtype=float)
    d, p1 = features["decode_s"].to_numpy(), features["prefill1_s"].to_numpy()
    osl = cases["osl"].to_numpy(dtype=float)
    c = cases["concurrency"].to_numpy(dtype=float)
    if kind == "tpot":
        return np.stack([d, c_eff / osl * p1, np.full(len(d), 1e-3)], axis=1), np.zeros(len(d))
    assert tpot is not None
    lifetime = osl * tpot
    wait = ADMISSION_WAIT * np.maximum(0.0, c / c_eff - 1.0) * lifetime
    cols = [p1, (c_eff - 1) * p1, np.full(len(d), 1e-3), lifetime / c_eff]
    return np.stack(cols, axis=1), wait


def queued_ttft(cases: pd.DataFrame, hw: HardwareSpec) -> np.ndarray:
    """True for TTFT cases whose concurrency exceeds the sequences that fit (see the module doc)."""
    out = np.zeros(len(cases), dtype=bool)
    e2e = (cases["kind"] == "ttft").to_numpy()
    if e2e.any():
        f = e2e_features(cases[e2e], hw)
        out[e2e] = (f["c_fit"] < cases.loc[e2e, "concurrency"]).to_numpy()
    return out
