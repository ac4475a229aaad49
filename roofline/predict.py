"""One prediction: TTFT, TPOT, end-to-end latency, throughput, memory fit and where the time goes.

Definitions (also in the README and in every output):

- TTFT: time of the prefill pass over the whole prompt batch (it yields the first token).
- TPOT: mean decode-step time over the generated tokens after the first, while the KV cache
  grows by one token per step (exact mean over every step).
- e2e: TTFT + (output_len - 1) * TPOT.
- throughput: batch * output_len / e2e tokens per second, times the DP replicas.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from roofline import fitted as fitted_specs
from roofline._json import dumps as json_dumps
from roofline._memo import IdentityMemo
from roofline.collectives import spans_nodes
from roofline.cost import CostParameters
from roofline.economics import ECONOMIC_METRICS, basis_text
from roofline.engine import Evaluation, Scenario, evaluate, scenario_arrays
from roofline.evaluate import DecodeSteps, PassResult, evaluate_pass, mean_over_steps
from roofline.exceptions import InfeasibleConfigError
from roofline.fitted import (
    DEFAULT_FRAMEWORK,
    FittedModel,
    ModelChoice,
    SoftwareOverheads,
    fitted_model,
)
from roofline.graph import MemoryReport, OpTable, decode_kv_range, memory_per_device
from roofline.hardware import HardwareSpec
from roofline.model import ModelSpec, load_model
from roofline.placement import tier_rows
from roofline.prefetch import LIMITS
from roofline.registry import check_flags, check_overrides
from roofline.static_kernel import KERNEL_MIN_CONFIGS, kernel_cached, kernel_loaded
from roofline.timing import HardwareArrays, OpTimes, Recorder
from roofline.workload import Parallelism, PrefetchSettings, Workload

if TYPE_CHECKING:
    import pandas as pd

# MemoryReport, memory_per_device (roofline.graph) and decode_kv_range stay importable from here
__all__ = ["predict", "Prediction", "MemoryReport", "memory_per_device", "decode_kv_range",
           "DEFINITIONS", "TIME_DEFINITIONS"]

DEFINITIONS = {
    "ttft": "time to first token: the prefill pass over the whole prompt batch",
    "tpot": "time per output token: mean decode-step time over the generated tokens after the "
            "first, KV cache growing one token per step",
    "e2e": "end-to-end latency: TTFT + (output_len - 1) * TPOT",
    "throughput": "generated tokens per second: batch * output_len / e2e, times DP replicas",
    "model": "fitted by default: the device's calibrated profile where one ships (hardware_specs/calibrated/) and "
             "the fitted software overheads (serving_specs/fitted_overheads.yaml, framework any unless named) as "
             "the serving model applies them: TTFT = request overhead + prefill_scale x prefill pass + step "
             "overhead + batch x sequence overhead; decode step = decode_scale x roofline step + step overhead + "
             "batch x sequence overhead; datasheet: the raw roofline (see provenance)",
    "cost": "US dollars on the basis that cost_basis names (manufacturing cost by default, not a purchase "
            "price; or price): the die (logic + L2 SRAM + link PHY area at the process node, dies per "
            "wafer, yield, wafer price), HBM stacks, packaging, links and a host share per device "
            "(cost_specs/default.yaml, docs/cost_model.md); performance per cost is throughput per 1000 "
            "USD of system cost",
    "prefetch": "PRESERVE prefetching is a runtime technique the scenario turns on (off by default, so a "
                "plain prediction is the device as deployed today; --prefetch, predict(prefetch=True), a "
                "sweep's prefetch parameter); baseline_* metrics are the same configuration without it",
    "l2": "L2 holds what prefetching, when on, puts there: after each collective, the weights and KV cache of the "
          "operators up to the next collective, capped by threshold_fraction x L2 capacity and by the L2 "
          "the working set leaves free; prefetched bytes are read at the L2 bandwidth, everything else "
          "from HBM (activations hit L2 only at the device's activation_l2_hit fraction); without "
          "prefetching, large GEMMs still reuse operand tiles through L2 (blocked-GEMM model); growing L2 "
          "grows the die by the SRAM area of the process node, which the cost model prices",
}

#: The entries of DEFINITIONS that define times (the rest state the cost basis and the L2 model).
TIME_DEFINITIONS = ("ttft", "tpot", "e2e", "throughput", "model")


@dataclass
class Prediction:
    """The result of :func:`predict`. Times in seconds; ``to_dict`` reports milliseconds."""

    model: str
    hardware: str
    workload: Workload
    parallelism: Parallelism
    prefetch: bool
    ttft_s: float
    tpot_s: float
    e2e_s: float
    throughput_tok_s: float
    baseline_ttft_s: float
    baseline_tpot_s: float
    baseline_e2e_s: float
    memory: MemoryReport
    #: cost, power and TCO metrics (``roofline.economics.ECONOMIC_METRICS``; NaN without a die block)
    economics: dict[str, float] = field(default_factory=dict)
    cost_basis: str = "manufacturing"
    #: every metric of :data:`roofline.engine.METRICS` (the engine's row: ms, cost, perf per cost, ...)
    metrics: dict[str, Any] = field(default_factory=dict)
    #: which model predicted it (roofline.fitted.FittedModel.provenance): fitted or datasheet, the
    #: device profile, the overheads file and framework, the overhead values
    provenance: dict[str, Any] = field(default_factory=dict)
    _detail: _Detail | None = field(default=None, repr=False)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_evaluation(cls, ev: Evaluation, memory: MemoryReport | None = None,
                        provenance: dict[str, Any] | None = None) -> Prediction:
        """The first configuration of ``ev`` (``memory``: its report against the device's tiers;
        ``provenance``: the model it used, :meth:`roofline.fitted.FittedModel.provenance`)."""
        sc, t = ev.scenario, {k: float(v[0]) for k, v in ev.seconds.items()}
        row = ev.row(0)
        return cls(
            model=sc.model.name, hardware=sc.hardware.name, workload=sc.workload, parallelism=sc.parallelism,
            prefetch=bool(ev.arrays.prefetch[0]), ttft_s=t["ttft_s"], tpot_s=t["tpot_s"], e2e_s=t["e2e_s"],
            throughput_tok_s=row["throughput_tok_s"], baseline_ttft_s=t["baseline_ttft_s"],
            baseline_tpot_s=t["baseline_tpot_s"], baseline_e2e_s=t["baseline_e2e_s"],
            memory=memory or _memory_report(sc, ev.arrays),
            economics={k: row[k] for k in ECONOMIC_METRICS}, cost_basis=ev.cost_basis, metrics=row,
            provenance=dict(provenance or {}),
            _detail=_Detail(ev.prefill, ev.decode, ev.arrays, *ev.kv_range,
                            overheads=sc.overheads.for_model(sc.model).for_parallelism(sc.parallelism.tp)
                            if sc.overheads is not None else None),
        )

    @property
    def breakdown(self) -> dict[str, list[dict[str, Any]]]:
        """Per-operator rows per phase: time (the decode one is the mean over steps), bound,
        FLOPs and bytes by kind, share of the phase. Computed on first access."""
        if "breakdown" not in self._cache:
            self._cache["breakdown"], self._cache["segments"] = self._detail.tables(self)
        return self._cache["breakdown"]

    @property
    def segments(self) -> dict[str, list[dict[str, Any]]]:
        """Per-segment prefetch rows per phase (decode: at the middle step)."""
        self.breakdown  # noqa: B018 (fills the cache)
        return self._cache["segments"]

    @property
    def speedup(self) -> dict[str, float]:
        """Baseline time over time with prefetching (1.0 when prefetching is off)."""
        return {
            "ttft": self.baseline_ttft_s / self.ttft_s,
            "tpot": self.baseline_tpot_s / self.tpot_s if self.tpot_s else 1.0,
            "e2e": self.baseline_e2e_s / self.e2e_s,
        }

    def to_dict(self) -> dict[str, Any]:
        """Flat metrics in milliseconds (units in the keys), then memory, breakdown, segments."""
        w, p = self.workload, self.parallelism
        return {
            "model": self.model,
            "hardware": self.hardware,
            "workload": asdict(w) | {"kv_dtype": w.kv},
            "parallelism": asdict(p) | {"devices": p.devices},
            "prefetch": self.prefetch,
            "ttft_ms": self.ttft_s * 1e3,
            "tpot_ms": self.tpot_s * 1e3,
            "e2e_ms": self.e2e_s * 1e3,
            "throughput_tok_s": self.throughput_tok_s,
            "baseline_ttft_ms": self.baseline_ttft_s * 1e3,
            "baseline_tpot_ms": self.baseline_tpot_s * 1e3,
            "baseline_e2e_ms": self.baseline_e2e_s * 1e3,
            "speedup": self.speedup,
            "memory": {
                "weights_GiB": self.memory.weights_bytes / 2**30,
                "kv_cache_GiB": self.memory.kv_cache_bytes / 2**30,
                "activations_GiB": self.memory.activation_bytes / 2**30,
                "total_GiB": self.memory.total_bytes / 2**30,
                "capacity_GiB": self.memory.capacity_bytes / 2**30,
                "fits": self.memory.fits,
                "verdict": self.memory.verdict(),
            } | ({"tiers": [_tier_gib(t) for t in self.memory.tiers]} if self.memory.tiers else {}),
            "economics": {k: (v if np.isfinite(v) else None) for k, v in self.economics.items()},
            "provenance": self.provenance,
            "definitions": {k: DEFINITIONS[k] for k in TIME_DEFINITIONS} | ECONOMIC_METRICS
            | {"cost_basis": basis_text(self.cost_basis)},
            "breakdown": self.breakdown,
            "segments": self.segments,
        }

    def to_json(self, **kwargs: Any) -> str:
        return json_dumps(self.to_dict(), **kwargs)

    def to_frame(self) -> pd.DataFrame:
        """One row of the headline metrics (pandas is imported here, not at start-up)."""
        import pandas as pd

        d = self.to_dict()
        row = {k: v for k, v in d.items() if not isinstance(v, dict)}
        row |= {f"provenance_{k}": v for k, v in d["provenance"].items() if not isinstance(v, dict)}
        row |= {f"speedup_{k}": v for k, v in self.speedup.items()}
        row |= {f"memory_{k}": v for k, v in d["memory"].items()}
        row |= d["economics"]
        row |= {f"workload_{k}": v for k, v in d["workload"].items()}
        row |= {k: v for k, v in d["parallelism"].items()}
        return pd.DataFrame([row])

    def breakdown_frame(self, phase: str = "decode") -> pd.DataFrame:
        """Per-operator breakdown of ``phase`` ("prefill" or "decode") as a DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.breakdown[phase])


def _tier_gib(row: dict[str, Any]) -> dict[str, Any]:
    """A placement row of MemoryReport.tiers in GiB (unit in the key)."""
    return {k.replace("_bytes", "_GiB"): v / 2**30 if k.endswith("_bytes") else v for k, v in row.items()}


@dataclass(frozen=True)
class _Detail:
    """What the breakdown needs, kept so that it is computed only when asked for."""

    prefill: OpTable
    decode: OpTable
    arrays: HardwareArrays
    first: int
    last: int
    #: the fitted software overheads of the prediction (None: the raw roofline)
    overheads: SoftwareOverheads | None = None

    def tables(self, p: Prediction) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
        decode, arrays, n_ops = self.decode, self.arrays, self.decode.n_ops
        on = bool(arrays.prefetch[0])
        pre = evaluate_pass(self.prefill, arrays)
        steps = DecodeSteps(decode, arrays)

        def step(rows: np.ndarray, kv_len: np.ndarray, rec: Recorder) -> np.ndarray:
            res = steps.at(rows, kv_len, rec)
            ops = res.op_time_with_prefetch_s(decode) if on else res.times.total_s
            stall = _stall(decode, res) if on else np.zeros(len(rows))
            return np.concatenate([res.base_s[:, None], res.time_s[:, None], ops.T, stall[:, None]], axis=1)

        means = mean_over_steps(step, np.array([self.first]), np.array([self.last]))[0]
        dec_ops, dec_stall = means[2:2 + n_ops], float(means[2 + n_ops])
        pre_ops = (pre.op_time_with_prefetch_s(self.prefill) if on else pre.times.total_s)[:, 0]
        pre_stall = float(_stall(self.prefill, pre)[0]) if on else 0.0
        mid = evaluate_pass(decode, arrays, np.array([(self.first + self.last) // 2]))
        breakdown = {
            "prefill": _op_rows(self.prefill, pre, pre_ops, p.ttft_s, arrays, pre_stall),
            "decode": _op_rows(decode, mid, dec_ops, p.tpot_s, arrays, dec_stall),
        }
        o = self.overheads
        if o is not None:  # operators at the fitted scales, plus one row of the additive overheads
            per_step_s = o.step_overhead_s + o.seq_overhead_s * p.workload.batch
            for phase, scale, extra_s, phase_s in (("prefill", o.prefill_scale, o.request_overhead_s + per_step_s,
                                                    p.ttft_s), ("decode", o.decode_scale, per_step_s, p.tpot_s)):
                rows = breakdown[phase]
                for r in rows:
                    r["time_ms"] *= scale
                    r["time_per_call_us"] *= scale
                    r["share"] *= scale
                rows.append(_overhead_row(extra_s, phase_s))
        segments = {"prefill": _segment_rows(self.prefill, pre), "decode": _segment_rows(decode, mid)}
        return breakdown, segments


def _stall(table: OpTable, res: PassResult) -> np.ndarray:
    """(n,) time per pass spent waiting on spilled prefetch traffic, over all segments."""
    if res.prefetch is None:
        return np.zeros_like(res.time_s)
    return np.array([s.count for s in table.segments]) @ res.prefetch.stall_s


def _op_rows(table: OpTable, res: PassResult, op_s: np.ndarray, phase_s: float, hw: HardwareArrays,
             stall_s: float = 0.0) -> list[dict[str, Any]]:
    t, devices_per_node = res.times, hw.devices_per_node
    rows = []
    for i, name in enumerate(table.names):
        if table.is_comm[i]:
            bound = "comm"
        else:
            bound = "compute" if t.compute_s[i, 0] > t.memory_s[i, 0] else "memory"
        total = float(op_s[i] * table.count[i])
        rows.append({
            "op": name, "kind": table.kinds[i], "count": float(table.count[i]), "bound": bound,
            "time_ms": total * 1e3, "time_per_call_us": float(op_s[i]) * 1e6,
            "share": total / phase_s if phase_s else 0.0,
            "flops": float(t.flops[i, 0] * table.count[i]),
            "weight_bytes": float(table.weight_bytes[i] * table.count[i]),
            "kv_bytes": float((t.kv_read_bytes[i, 0] + table.kv_write_bytes[i]) * table.count[i]),
            "activation_bytes": float(table.act_bytes[i] * table.count[i]),
            "comm_bytes": float(table.comm_bytes[i] * table.count[i]),
            # the collective's buffer when its group leaves the node (NVLink domain)
            "scale_out_bytes": float(table.comm_bytes[i] * table.count[i])
            if table.is_comm[i] and spans_nodes(int(table.group[i]), devices_per_node) else 0.0,
        })
        if hw.tier_names:  # bytes per memory tier, and the tier whose reads take the longest
            rows[-1] |= _tier_columns(t, i, float(table.count[i]), hw)
    if stall_s > 0:
        # HBM still busy with prefetch traffic that spilled past the collective
        rows.append({"op": "prefetch_spill_wait", "kind": "prefetch", "count": 1.0, "bound": "memory",
                     "time_ms": stall_s * 1e3, "time_per_call_us": stall_s * 1e6,
                     "share": stall_s / phase_s if phase_s else 0.0, "flops": 0.0, "weight_bytes": 0.0,
                     "kv_bytes": 0.0, "activation_bytes": 0.0, "comm_bytes": 0.0, "scale_out_bytes": 0.0})
    return rows


def _overhead_row(extra_s: float, phase_s: float) -> dict[str, Any]:
    """The breakdown row of the fitted software overheads of a phase (the fitted model)."""
    return {"op": "software_overhead", "kind": "overhead", "count": 1.0, "bound": "software",
            "time_ms": extra_s * 1e3, "time_per_call_us": extra_s * 1e6,
            "share": extra_s / phase_s if phase_s else 0.0, "flops": 0.0, "weight_bytes": 0.0, "kv_bytes": 0.0,
            "activation_bytes": 0.0, "comm_bytes": 0.0, "scale_out_bytes": 0.0}


def _tier_columns(t: OpTimes, op: int, count: float, hw: HardwareArrays) -> dict[str, Any]:
    """Bytes operator ``op`` moves in each memory tier (all its calls) and the tier whose reads
    take it the longest (``none`` when it reads nothing from memory)."""
    hbm = float(t.hbm_bytes[op, 0])
    beyond = t.tier_bytes[:, op, 0] if t.tier_bytes is not None else np.zeros(len(hw.tier_names))
    seconds = [hbm / float(t.hbm_Bps_eff[0])] + [
        float(b) / float(hw.tier_Bps[0, j] * hw.tier_efficiency[0, j]) for j, b in enumerate(beyond)]
    names = ("hbm", *hw.tier_names)
    return {"tier_bytes": {name: b * count for name, b in zip(names, [hbm, *map(float, beyond)])},
            "tier": names[int(np.argmax(seconds))] if max(seconds) > 0 else "none"}


def _segment_rows(table: OpTable, res: PassResult) -> list[dict[str, Any]]:
    rows = []
    pf = res.prefetch
    for j, seg in enumerate(table.segments):
        prefetch_time = float(pf.prefetch_time_s[j, 0])
        rows.append({
            "segment": seg.name, "after": table.names[seg.collective_op], "count": seg.count,
            "collective_us": float(pf.collective_s[j, 0]) * 1e6,
            "needed_MiB": float(pf.needed_bytes[j, 0]) / 2**20,
            "prefetched_during_collective_MiB": float(pf.prefetched_bytes[j, 0]) / 2**20,
            "read_from_l2_MiB": float(pf.useful_bytes[j, 0]) / 2**20,
            "limited_by": LIMITS[int(pf.limit[j, 0])],
            "collective_to_prefetch_ratio": float(pf.collective_s[j, 0]) / prefetch_time
            if prefetch_time > 0 else float("inf"),
            "time_us": float(pf.time_s[j, 0]) * 1e6, "baseline_us": float(pf.base_s[j, 0]) * 1e6,
        })
    return rows


def predict(
    model: ModelSpec | str,
    hardware: HardwareSpec | str,
    *,
    batch: int = 1,
    input_len: int = 2048,
    output_len: int = 128,
    dtype: str | None = None,
    kv_dtype: str | None = None,
    op_dtypes: str | dict[str, str] | None = None,
    lm_head_dtype: str | None = None,
    tp: int = 1,
    pp: int = 1,
    dp: int = 1,
    ep: int = 1,
    moe_skew: float = 0.0,
    moe_prefetch: str = "shared",
    collective_library: str = "custom",
    async_tp: bool = False,
    workload: Workload | None = None,
    parallelism: Parallelism | None = None,
    prefetch: bool | None = None,
    prefetch_weights: bool | None = None,
    prefetch_kv: bool | None = None,
    prefetch_settings: PrefetchSettings | None = None,
    check_memory: bool = True,
    pins: dict[str, str] | None = None,
    cost_params: CostParameters | None = None,
    datasheet: bool = False,
    framework: str = DEFAULT_FRAMEWORK,
    network: str | None = None,
    compiled: bool | None = None,
    **hardware_overrides: float,
) -> Prediction:
    """Predict serving latency and throughput of ``model`` on ``hardware``.

    Args:
        model: bundled name (``"llama-3-70b"``), YAML path, HF config.json path, or a ModelSpec.
        hardware: bundled name (``"h100-sxm"``), YAML path, or a HardwareSpec.
        batch, input_len, output_len: sequences per batch, prompt and generated tokens each.
        dtype: weights and activations (``nvfp4``, ``fp8``...; ``int4`` is weight-only with bf16
            activations; ``W:A`` such as ``mxfp4:bf16`` sets both). Default: the precision of the
            model's HF ``quantization_config`` if it has one, else bf16.
        kv_dtype: KV-cache dtype (default: the activation dtype; FP8 under FP4 activations).
        op_dtypes: precision per operator class, e.g. ``"experts=nvfp4,attention=fp8"``
            (see :func:`roofline.workload.parse_op_dtypes`).
        lm_head_dtype: the LM head's precision. Default: bf16 under quantized weights, as the
            shipped checkpoints keep it (:func:`roofline.workload.checkpoint_op_dtypes`), else the
            weights'; ``"same"``: as the weights (the head quantized too); or ``W[:A]``. The head
            only: the input embedding stays in bf16 under quantized weights unless ``op_dtypes``
            names it (``"embedding=fp8"``); a tied embedding is the head's table and follows it.
        tp, pp, dp, ep: tensor, pipeline, data and expert parallelism.
        moe_skew, moe_prefetch: MoE routing skew (0 = uniform) and what PRESERVE may prefetch of
            the experts (``none``, ``shared``, ``predicted``; see docs/moe.md).
        collective_library: ``custom`` (the serving frameworks' one-shot/two-shot all-reduce for
            small messages, NCCL above; their default) or ``nccl``.
        async_tp: overlap prefill TP all-reduces with the next GEMM (default off).
        workload, parallelism: full objects instead of the keyword shortcuts.
        prefetch: PRESERVE prefetching on or off (default: ``prefetch_settings.enabled``, off).
        prefetch_weights, prefetch_kv: whether weights and the KV cache are prefetched when
            prefetching is on (default: both).
        prefetch_settings: the scenario's prefetching (:class:`roofline.workload.PrefetchSettings`:
            on/off, threshold, weights, KV cache, launch-gap share); default off. The threshold and
            launch-gap share may also be given as ``prefetch_threshold_fraction=...`` and
            ``prefetch_launch_gap_fraction=...``.
        check_memory: raise when weights + KV cache + activations exceed the placement tiers
            (HBM, and LPDDR or other tiers beyond it where the device has them).
        pins: pin a block to a memory tier, e.g. ``{"kv_cache": "lpddr"}`` (roofline.placement;
            default: HBM first, the rest spilled in tier order).
        cost_params: cost, power and TCO parameters (default ``cost_specs/default.yaml``); their
            ``basis.cost`` names the basis of the dollar figures.
        datasheet: the raw datasheet roofline (the device spec as written, no fitted overheads).
            Default False: the fitted model (:mod:`roofline.fitted`): the device's calibrated
            profile where one ships (a bundled device given by name or unmodified) and the fitted
            software overheads of ``framework``; ``Prediction.provenance`` says which.
        framework: whose fitted overheads (``any``, the default, fitted on every framework's
            rows; ``vllm``, ``sglang``, ``trtllm``).
        network: a cluster's scale-out network over the device's ``inter_node`` block (a bundled
            one of ``hardware_specs/networks/`` or a YAML path; :func:`roofline.hardware.with_network`),
            applied over the calibrated profile.
        compiled: run the static phases on the compiled kernel (:mod:`roofline.static_kernel`,
            equal to the numpy path to 1e-12; compiles it on first use if numba's cache lacks it)
            or not (False). Default None: the kernel once this process has loaded it, or from its
            KERNEL_MIN_CONFIGS-th prediction on when numba's disk cache holds it (no compilation).
        **hardware_overrides: sweepable parameters with units in the name, e.g.
            ``l2_capacity_MiB=96``, ``hbm_bandwidth_GBps=4000``.

    Returns:
        A :class:`Prediction`; ``.to_dict()`` gives milliseconds, ``.to_frame()`` a DataFrame.

    Raises:
        SpecError: unknown model or device, bad field or argument.
        InfeasibleConfigError: the model does not fit, cannot be split as asked, or has no operator
            class ``op_dtypes`` names (``experts`` of a dense model).

    Example:
        >>> p = predict("llama-3-8b", "h100-sxm", batch=1, input_len=1024, output_len=128)
        >>> round(p.tpot_s * 1e3, 1) > 0
        True
    """
    check_flags("predict", prefetch=prefetch, prefetch_weights=prefetch_weights, prefetch_kv=prefetch_kv,
                check_memory=check_memory, datasheet=datasheet, async_tp=async_tp)
    m = load_model(model)
    fitted = _fitted(hardware, ModelChoice(bool(datasheet), framework), network)
    hw = fitted.hardware
    settings = prefetch_settings or PrefetchSettings()
    if prefetch_weights is not None or prefetch_kv is not None:
        settings = replace(settings, weights=settings.weights if prefetch_weights is None else prefetch_weights,
                           kv_cache=settings.kv_cache if prefetch_kv is None else prefetch_kv)
    w = workload or Workload.for_model(m, dtype, kv_dtype=kv_dtype, op_dtypes=op_dtypes, lm_head_dtype=lm_head_dtype,
                                       batch=batch,
                                       input_len=input_len, output_len=output_len, moe_skew=moe_skew,
                                       moe_prefetch=moe_prefetch, collective_library=collective_library,
                                       async_tp=async_tp)
    par = parallelism or Parallelism(tp=tp, pp=pp, dp=dp, ep=ep)
    scenario = Scenario(m, w, par, hw, pins=tuple((pins or {}).items()), prefetch=settings,
                        overheads=fitted.overheads)
    arrays = _arrays(scenario, prefetch, hardware_overrides)  # its checks name why a fraction is at most 1
    check_overrides(hardware_overrides)  # the bounds the CLI and sweep files apply: a zero bandwidth is NaN
    memory = _memory_report(scenario, arrays)
    if check_memory and not memory.fits:
        raise InfeasibleConfigError(f"{m.name} on {par.devices}x {hw.name}: {memory.verdict()}")
    ev = evaluate(scenario, arrays, cost_params, compiled=_use_kernel() if compiled is None else compiled)
    return Prediction.from_evaluation(ev, memory, fitted.provenance())


#: FittedModel by (device spec identity, choice, overheads file stamp): the calibrated
#: profile lookup compares the spec with the bundled one, a tenth of a repeated prediction
_FITTED = IdentityMemo(64)


def _fitted(hardware: HardwareSpec | str, choice: ModelChoice, network: str | None) -> FittedModel:
    """:func:`roofline.fitted.fitted_model`, kept for a device spec object predicted again (a name or
    path is read again, as fitted_model does, and so are a network file and an edited overheads file)."""
    if not isinstance(hardware, HardwareSpec) or network is not None:
        return fitted_model(hardware, choice, network)
    try:
        st = os.stat(fitted_specs.OVERHEADS_FILE)  # read when called, as fitted_model does
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:
        return fitted_model(hardware, choice, network)  # fitted_model says what is missing
    return _FITTED.get((hardware,), (choice, stamp), lambda: fitted_model(hardware, choice, network))


#: HardwareArrays of one configuration by (device and model spec identities, the rest of the
#: scenario, prefetch, overrides): a prediction repeated with another workload but the same device rebuilds them
_ARRAYS = IdentityMemo(256)


def _arrays(scenario: Scenario, prefetch: bool | None, overrides: dict[str, float]) -> HardwareArrays:
    """:func:`roofline.engine.scenario_arrays` of one configuration, kept for a scenario predicted
    again (the evaluation only reads them)."""
    key = (scenario.workload, scenario.parallelism, scenario.pins, scenario.prefetch, prefetch,
           tuple(sorted(overrides.items())))
    try:
        hash(key)
    except TypeError:  # an unhashable override (an array): not kept
        return scenario_arrays(scenario, 1, prefetch=prefetch, **overrides)
    return _ARRAYS.get((scenario.hardware, scenario.model), key,
                       lambda: scenario_arrays(scenario, 1, prefetch=prefetch, **overrides))


#: Predictions made by this process; from KERNEL_MIN_CONFIGS on (the configurations that pay for
#: numba's import, as in a sweep) they use the compiled kernel if numba's disk cache holds it.
_PREDICTIONS = itertools.count(1)
_KERNEL_CHECKED: list[bool] = []


def _use_kernel() -> bool:
    """Whether this prediction's static phases run on the compiled kernel (equal to the numpy path
    to 1e-12): yes once the process has loaded it; else from the KERNEL_MIN_CONFIGS-th prediction
    on, if loading it costs no compilation. A single ``roofline predict`` never imports numba."""
    if kernel_loaded():
        return True
    if next(_PREDICTIONS) < KERNEL_MIN_CONFIGS:
        return False
    if not _KERNEL_CHECKED:  # checked once: the disk lookup is slower than a prediction
        _KERNEL_CHECKED.append(kernel_cached())
    return _KERNEL_CHECKED[0]


def _memory_report(scenario: Scenario, arrays: HardwareArrays) -> MemoryReport:
    """The footprint of ``scenario`` against the placement tiers of the first configuration."""
    memory = memory_per_device(scenario.model, scenario.workload, scenario.parallelism,
                               float(arrays.placement_capacity_bytes[0]))
    if arrays.tier_names:
        memory = replace(memory, tiers=tuple(tier_rows(arrays, memory.weights_bytes, memory.kv_cache_bytes,
                                                       memory.activation_bytes)))
    return memory
