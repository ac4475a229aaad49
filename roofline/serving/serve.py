"""``roofline.serve``: serving metrics of one deployment over concurrencies, rates or a trace."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from roofline.cost import CostParameters, load_cost_parameters
from roofline.economics import basis_text
from roofline.exceptions import SpecError
from roofline.fitted import ModelChoice, fitted_model
from roofline.hardware import HardwareSpec
from roofline.metrics import definition
from roofline.model import ModelSpec, load_model
from roofline.registry import check_flags, check_overrides
from roofline.serving.analytic import ANALYTIC_NOTE, steady_state
from roofline.serving.capacity import check_request_fits, load_kv_demand_tokens, serving_placement
from roofline.serving.economics import SERVING_ECONOMIC_METRICS, operating_point_economics
from roofline.serving.metrics import DEFINITIONS, PERCENTILES, meets_slo, trace_metrics
from roofline.serving.overheads import DATASHEET, Overheads, load_overheads, overheads_provenance
from roofline.serving.settings import (
    EngineSettings,
    batch_wait_options,
    engine_defaults,
    speculative_options,
)
from roofline.serving.simulator import simulate
from roofline.serving.step_cost import StepCost, build_step_cost, engine_token_grid
from roofline.serving.workload import Lengths, Requests, ServingWorkload, make_requests
from roofline.timing import HardwareArrays
from roofline.workload import Parallelism, PrefetchSettings, Workload

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ServingSetup", "ServeResult", "serve", "SLO_SEARCH_MAX_CONCURRENCY", "benchmark_requests"]

#: Largest concurrency the SLO search tries (analytic model, every integer up to it).
SLO_SEARCH_MAX_CONCURRENCY = 4096
_STAT_KEYS = ("ttft", "tpot", "itl", "e2e")


@dataclass(frozen=True)
class ServingSetup:
    """One replica: model, data types, parallelism, device, engine settings, overheads."""

    model: ModelSpec
    hardware: HardwareSpec
    workload: Workload
    parallelism: Parallelism
    settings: EngineSettings
    overheads: Overheads = DATASHEET
    prefetch: bool = False
    hardware_overrides: tuple[tuple[str, float], ...] = ()
    #: what prefetching fetches when ``prefetch`` is on (weights, KV cache; roofline.workload)
    prefetch_settings: PrefetchSettings = PrefetchSettings()
    #: tokens of KV cache the load holds at most: how far the KV cache may extend into memory
    #: tiers beyond HBM (capacity.serving_placement; no effect on devices without them)
    kv_demand_tokens: float = 0.0

    def __post_init__(self) -> None:
        # the TP workers' per-step cost at this TP group, in the step overhead (idempotent)
        object.__setattr__(self, "overheads", self.overheads.for_parallelism(self.parallelism.tp))

    @property
    def devices(self) -> int:
        return self.parallelism.tp * self.parallelism.pp

    @cached_property
    def _device_arrays(self) -> HardwareArrays:
        """The device's arrays as specified, before the engine places weights and KV cache."""
        return HardwareArrays.from_spec(self.hardware, 1, prefetch=self.prefetch,
                                        prefetch_settings=self.prefetch_settings, **dict(self.hardware_overrides))

    @cached_property
    def _placement(self) -> tuple[HardwareArrays, np.ndarray]:
        s = self.settings
        return serving_placement(
            self.model, self.workload, self.parallelism, self._device_arrays,
            gpu_memory_utilization=s.gpu_memory_utilization,
            max_num_batched_tokens=s.max_num_batched_tokens, block_tokens=s.block_tokens,
            attention_dp=s.attention_dp, kv_demand_tokens=self.kv_demand_tokens, kv_memory_rule=s.kv_memory_rule,
            name=self.model.name)

    def arrays(self) -> HardwareArrays:
        """The device's arrays, weights and KV cache placed in its memory tiers."""
        return self._placement[0]

    def step_cost(self) -> StepCost:
        s = self.settings
        hw = self.arrays()
        return build_step_cost(self.model, self.workload, self.parallelism, hw, engine_token_grid(s),
                               s.attention_dp, framework=s.framework, hardware=self.hardware)

    def kv_capacity_tokens(self) -> float:
        return float(self._placement[1][0])

    def memory_fraction(self) -> float:
        """The engine's memory share on this device (SGLang's default when the settings leave it)."""
        if self.settings.gpu_memory_utilization is not None:
            return self.settings.gpu_memory_utilization
        hbm = self._device_arrays.hbm_capacity_bytes
        return float(self.settings.memory_fraction(hbm, self.parallelism.tp, self.parallelism.pp)[0])


@dataclass
class ServeResult:
    """Rows of serving metrics (one per concurrency, rate or trace), with their definitions."""

    rows: list[dict[str, Any]]
    definitions: dict[str, str]
    summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"definitions": self.definitions, "summary": self.summary, "rows": self.rows}

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), allow_nan=False, **kwargs)

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.rows)


def _as_list(value: Any) -> list[Any] | None:
    if value is None:
        return None
    return list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]


def _finish_row(row: dict[str, Any], setup: ServingSetup) -> dict[str, Any]:
    tpot = row["tpot_ms"]
    row["throughput_tok_s_per_device"] = row["throughput_tok_s"] / setup.devices
    row["tok_s_per_user"] = 1e3 / tpot if tpot and tpot > 0 else None
    return row


def benchmark_requests(concurrency: np.ndarray, num_requests: int | None = None) -> np.ndarray:
    """Requests of a closed-loop benchmark: ``num_requests``, else 10 x c (at least 100), the
    InferenceMAX client's ``--num-prompts`` and :class:`ServingWorkload`'s default."""
    c = np.asarray(concurrency, dtype=float)
    return np.full_like(c, float(num_requests)) if num_requests is not None else np.maximum(10 * c, 100.0)


def identical_lengths(w: ServingWorkload) -> bool:
    """Every request of ``w`` has the same prompt and output lengths (no range, no trace): a
    closed loop of them runs in lock-step (:mod:`roofline.serving.lockstep`)."""
    return w.trace is None and w.prompt.high is None and w.output.high is None


def _analytic_rows(setup: ServingSetup, cost: StepCost, cap: float, w: ServingWorkload,
                   loads: list[float], closed: bool, slo: tuple[float | None, float | None],
                   mean_steps: list[float] | None = None) -> list[dict[str, Any]]:
    """One row per load; ``mean_steps`` (if given) receives each row's mean engine step, seconds."""
    s, o = setup.settings, setup.overheads
    prompt = w.prompt.mean
    load = np.array(loads, dtype=float)
    res = steady_state(
        cost, prompt=prompt, output=w.output.mean, prefill=max(prompt - np.floor(prompt * w.prefix_hit), 1.0),
        kv_capacity_tokens=cap, max_num_batched_tokens=s.max_num_batched_tokens, max_num_seqs=s.max_num_seqs,
        block_tokens=s.block_tokens, concurrency=np.array(loads, dtype=float) if closed else None,
        rate_rps=None if closed else np.array(loads, dtype=float), verify_tokens=s.speculative.verify_tokens,
        tokens_per_step=s.speculative.tokens_per_step, step_overhead_s=o.step_overhead_s,
        request_overhead_s=o.request_overhead_s, decode_scale=o.decode_scale, prefill_scale=o.prefill_scale,
        seq_overhead_s=o.seq_overhead_s, prefill_first=s.prefill_first,
        batch_wait_timeout_iters=s.batch_wait_iters_applied,
        batch_wait_max_tokens_ratio=s.batch_wait_max_tokens_ratio,
        # a closed loop is a benchmark of N requests whose first c arrive at once (as simulated)
        burst_requests=benchmark_requests(load, w.num_requests) if closed else None,
        lockstep=closed and identical_lengths(w), kv_reserve=s.kv_admission == "reserve")
    ok = meets_slo(res["ttft_s"], res["tpot_s"], *slo) & ~res["saturated"]
    if mean_steps is not None:
        mean_steps.extend(map(float, res["mean_step_s"]))
    rows = []
    for i, load in enumerate(loads):
        sat = bool(res["saturated"][i])
        row: dict[str, Any] = {("concurrency" if closed else "rate_rps"): load}
        for k in _STAT_KEYS:
            row[f"{k}_ms"] = None if sat and k in ("ttft", "e2e") else float(res[f"{k}_s"][i] * 1e3)
            for q in PERCENTILES:
                row[f"{k}_p{q}_ms"] = None
        row |= {
            "throughput_tok_s": float(res["throughput_tok_s"][i]),
            "throughput_rps": float(res["throughput_rps"][i]),
            "goodput_tok_s": float(res["throughput_tok_s"][i]) if ok[i] else 0.0,
            "slo_attainment": float(ok[i]),
            "kv_utilization": float(res["kv_utilization"][i]),
            "mean_batch": float(res["mean_batch"][i]),
            "saturated": sat,
        }
        rows.append(_finish_row(row, setup))
    return rows


def _slo_limits(setup: ServingSetup, cost: StepCost, cap: float, w: ServingWorkload,
                slo: tuple[float | None, float | None]) -> dict[str, Any]:
    """Largest concurrency (every integer) and rate (a fine geometric grid) whose mean TTFT and
    TPOT meet the SLO, from the analytic model; None when even the smallest misses it."""
    if slo == (None, None):
        return {}
    conc = np.arange(1, SLO_SEARCH_MAX_CONCURRENCY + 1, dtype=float)
    rows = _analytic_rows(setup, cost, cap, w, list(conc), True, slo)
    ok = [r["concurrency"] for r in rows if r["slo_attainment"] > 0]
    best_c = int(max(ok)) if ok else None
    top = max(r["throughput_rps"] for r in rows)
    rates = list(np.geomspace(top * 1e-3, top, 400))
    rrows = _analytic_rows(setup, cost, cap, w, rates, False, slo)
    okr = [r["rate_rps"] for r in rrows if r["slo_attainment"] > 0]
    at = next((r for r in rows if r["concurrency"] == best_c), None)
    return {"slo_max_concurrency": best_c, "slo_max_rate_rps": float(max(okr)) if okr else None,
            "goodput_tok_s_at_slo_max_concurrency": at["goodput_tok_s"] if at else 0.0}


def _mean_lengths(requests: Requests) -> tuple[float, float, float]:
    """Mean prompt, computed prompt (prefix-cache hits removed) and output tokens of ``requests``."""
    return float(np.mean(requests.prompt)), float(np.mean(requests.prefill)), float(np.mean(requests.output))


def _attach_economics(rows: list[dict[str, Any]], lengths: list[tuple[float, float, float]], setup: ServingSetup,
                      params: CostParameters, mean_steps: list[float]) -> None:
    """Add the cost, power and TCO columns to every row (null where unknown: no ``die`` block);
    ``mean_steps``: each row's mean engine step (s; not its ITL, which with a prefill-first engine
    spans the prefill steps a decoding sequence waits through)."""
    if not rows:
        return
    prompt, prefill, output = (np.array(x) for x in zip(*lengths))
    econ = operating_point_economics(
        params, setup.model, setup.workload, setup.parallelism, setup.hardware, setup.arrays(), setup.settings,
        throughput_rps=np.array([r["throughput_rps"] for r in rows]),
        throughput_tok_s=np.array([r["throughput_tok_s"] for r in rows]),
        goodput_tok_s=np.array([r["goodput_tok_s"] for r in rows]),
        mean_step_s=np.array(mean_steps),
        mean_running=np.array([r["mean_batch"] for r in rows]), prompt=prompt, prefill=prefill, output=output)
    for i, row in enumerate(rows):
        for key, values in econ.items():
            v = float(values[i])
            row[key] = v if np.isfinite(v) else None


def serve(
    model: ModelSpec | str,
    hardware: HardwareSpec | str,
    *,
    tp: int = 1,
    pp: int = 1,
    ep: int = 1,
    dtype: str | None = None,
    kv_dtype: str | None = None,
    op_dtypes: str | None = None,
    lm_head_dtype: str | None = None,
    input_len: int | tuple[int, int] = 1024,
    output_len: int | tuple[int, int] = 1024,
    concurrency: int | list[int] | None = None,
    rate_rps: float | list[float] | None = None,
    trace: str | None = None,
    num_requests: int | None = None,
    prefix_hit: float = 0.0,
    framework: str = "vllm",
    max_num_batched_tokens: int | None = None,
    max_num_seqs: int | None = None,
    gpu_memory_utilization: float | None = None,
    batch_wait_timeout_iters: int | None = None,
    batch_wait_max_tokens_ratio: float | None = None,
    kv_admission: str | None = None,
    attention_dp: int = 1,
    draft_tokens: int = 0,
    acceptance: float | None = None,
    slo_ttft_ms: float | None = None,
    slo_tpot_ms: float | None = None,
    simulate_events: bool = False,
    datasheet: bool = False,
    prefetch: bool = False,
    prefetch_weights: bool | None = None,
    prefetch_kv: bool | None = None,
    seed: int = 0,
    cost_params: CostParameters | None = None,
    **hardware_overrides: float,
) -> ServeResult:
    """Serving metrics of ``model`` on one replica of ``tp x pp`` devices of ``hardware``.

    Args:
        input_len, output_len: tokens per request, or an inclusive (low, high) uniform range.
        concurrency: closed loop (one value or a list: one row each); ``rate_rps``: open loop
            Poisson arrivals; ``trace``: a CSV of arrival_s, prompt_tokens, output_tokens (simulated).
        framework: engine defaults and fitted overheads (``vllm``, ``sglang``, ``trtllm``);
            ``max_num_batched_tokens``, ``max_num_seqs``, ``gpu_memory_utilization`` override them,
            and ``batch_wait_timeout_iters``, ``batch_wait_max_tokens_ratio`` set TensorRT-LLM's batch
            waiting (both positive for a wait; :func:`roofline.serving.settings.batch_wait_holds`);
            ``kv_admission`` (``reserve``, ``on_demand``, ``sglang_ratio``: :data:`~roofline.serving.settings.KV_ADMISSION`)
            when a request gets its KV-cache blocks (default: the framework's).
        dtype, kv_dtype, op_dtypes: precision (default: the checkpoint's quantization_config, else
            bf16); ``op_dtypes`` sets operator classes apart, e.g. ``"experts=nvfp4,attention=fp8"``.
        lm_head_dtype: the LM head's precision (default: bf16 under quantized weights, as the
            shipped checkpoints keep it and the input embedding; ``"same"``: as the weights; the head
            only, see ``roofline.predict``).
        attention_dp: attention data-parallel ranks inside the TP group (MoE serving).
        draft_tokens, acceptance: speculative decoding (tokens per step, see SpeculativeDecoding); each
            needs the other (an acceptance of 0 given with draft tokens is taken).
        slo_ttft_ms, slo_tpot_ms: the SLO for goodput and the largest concurrency / rate meeting it.
        simulate_events: the discrete-event simulator (percentiles) instead of the analytic model.
        datasheet: the raw roofline (the device spec as written, no overheads); by default the
            fitted model of :mod:`roofline.fitted`, as ``roofline serve`` and ``roofline.predict``
            use it: the device's calibrated profile where one ships and the fitted overheads of
            ``framework`` (``summary["provenance"]`` says which).
        prefetch: PRESERVE prefetching in every step (off by default, as ``roofline.predict``);
            ``prefetch_weights``: whether it fetches the weights (default: yes, as ``predict``).
            ``prefetch_kv``: only False or None: a step's attention reads the KV cache from HBM
            (one kernel over the batch, :mod:`roofline.serving.step_cost`), so serve never
            prefetches it (True is refused rather than ignored).
        cost_params: cost, power and TCO parameters of the cost columns (default
            ``cost_specs/default.yaml``, manufacturing basis).

    Returns:
        A :class:`ServeResult` (``.rows``, ``.summary``, ``.to_frame()``, ``.to_json()``).
    """
    check_flags("serve", simulate_events=simulate_events, datasheet=datasheet, prefetch=prefetch,
                prefetch_weights=prefetch_weights, prefetch_kv=prefetch_kv)
    m = load_model(model)
    settings = engine_defaults(framework).with_overrides(
        max_num_batched_tokens=max_num_batched_tokens, max_num_seqs=max_num_seqs,
        gpu_memory_utilization=gpu_memory_utilization, attention_dp=attention_dp if attention_dp != 1 else None,
        speculative=speculative_options(draft_tokens, acceptance),
        batch_wait_timeout_iters=batch_wait_timeout_iters, batch_wait_max_tokens_ratio=batch_wait_max_tokens_ratio,
        kv_admission=kv_admission)
    batch_wait_options(batch_wait_timeout_iters, batch_wait_max_tokens_ratio)  # after their bounds: one alone does nothing
    if settings.attention_dp > tp or tp % settings.attention_dp:
        raise SpecError(f"--attention-dp: {settings.attention_dp} must divide tp={tp}")
    chosen = fitted_model(hardware, ModelChoice(bool(datasheet), framework))  # the calibrated profile unless datasheet
    hw = chosen.hardware
    settings = settings.for_device(hw.memory.hbm_capacity_bytes)  # SGLang's budget by the device's memory
    prompt = Lengths(*input_len) if isinstance(input_len, tuple) else Lengths(input_len)
    output = Lengths(*output_len) if isinstance(output_len, tuple) else Lengths(output_len)
    loads_c, loads_r = _as_list(concurrency), _as_list(rate_rps)
    if sum(x is not None for x in (loads_c, loads_r, trace)) != 1:
        raise SpecError("serve: give exactly one of concurrency, rate_rps and trace")
    for c in loads_c or []:
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 1:
            raise SpecError(f"--concurrency: must be positive integers, got {c!r}")
    for r in loads_r or []:
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not np.isfinite(r) or r <= 0:
            raise SpecError(f"--rate: must be positive numbers, got {r!r}")
    for name, v in (("--slo-ttft-ms", slo_ttft_ms), ("--slo-tpot-ms", slo_tpot_ms)):
        if v is not None and (not np.isfinite(v) or v <= 0):
            raise SpecError(f"{name}: must be a positive number, got {v!r}")
    check_overrides(hardware_overrides)  # the bounds the CLI and sweep files apply: a zero bandwidth is NaN
    w = Workload.for_model(m, dtype, kv_dtype=kv_dtype, op_dtypes=op_dtypes, lm_head_dtype=lm_head_dtype)
    par = Parallelism(tp=tp, pp=pp, ep=ep)
    over = DATASHEET if datasheet else load_overheads(framework).for_model(m).for_parallelism(tp)
    if prefetch_kv:  # False or None: what the step cost does
        raise SpecError("--prefetch-kv: not modelled by serve: a step's attention is one kernel over the batch's KV "
                        "cache, read from HBM (roofline.serving.step_cost); predict models KV prefetching")
    blocks = PrefetchSettings(weights=True if prefetch_weights is None else prefetch_weights, kv_cache=False)
    if trace is not None:
        traced = make_requests(ServingWorkload(trace=trace, num_requests=num_requests, prefix_hit=prefix_hit, seed=seed))
        i = int(np.argmax(traced.prompt + traced.output))
        longest, option = (int(traced.prompt[i]), int(traced.output[i])), f"--trace {trace}"
    else:
        longest, option = (prompt.max, output.max), "--input/--output"
    # the KV cache the load holds at most: how far it may extend into memory tiers beyond HBM
    running = min(max(loads_c), settings.max_num_seqs) if loads_c else settings.max_num_seqs
    setup = ServingSetup(m, hw, w, par, settings, over, prefetch, tuple(sorted(hardware_overrides.items())), blocks,
                         kv_demand_tokens=load_kv_demand_tokens(running, *longest, settings.block_tokens))
    cap = setup.kv_capacity_tokens()
    check_request_fits(*longest, cap, settings.block_tokens, option)  # else an engine refuses the request
    cost = setup.step_cost()
    slo = (slo_ttft_ms, slo_tpot_ms)
    base = ServingWorkload(prompt, output, concurrency=1, num_requests=num_requests, prefix_hit=prefix_hit, seed=seed)
    rows: list[dict[str, Any]] = []
    lengths: list[tuple[float, float, float]] = []  # per row: mean prompt, computed prompt, output
    mean_steps: list[float] = []  # per row: mean engine step, seconds (power)
    if simulate_events or trace is not None:
        scalar = cost.scalar()
        runs: list[tuple[str, Any, ServingWorkload]] = []
        if trace is not None:
            runs.append(("trace", trace, ServingWorkload(trace=trace, num_requests=num_requests,
                                                          prefix_hit=prefix_hit, seed=seed)))
        for c in loads_c or []:
            runs.append(("concurrency", int(c), ServingWorkload(prompt, output, concurrency=int(c),
                                                                 num_requests=num_requests, prefix_hit=prefix_hit,
                                                                 seed=seed)))
        for r in loads_r or []:
            runs.append(("rate_rps", float(r), ServingWorkload(prompt, output, rate_rps=float(r),
                                                                num_requests=num_requests, prefix_hit=prefix_hit,
                                                                seed=seed)))
        for key, load, sw in runs:
            requests = traced if key == "trace" else make_requests(sw)
            lengths.append(_mean_lengths(requests))
            tr = simulate(requests, scalar, settings, cap, concurrency=sw.concurrency,
                          step_overhead_s=over.step_overhead_s, request_overhead_s=over.request_overhead_s,
                          decode_scale=over.decode_scale, prefill_scale=over.prefill_scale,
                          seq_overhead_s=over.seq_overhead_s)
            mean_steps.append(tr.stepping_s / max(tr.steps, 1))
            rows.append(_finish_row({key: load} | trace_metrics(tr, slo_ttft_ms=slo_ttft_ms, slo_tpot_ms=slo_tpot_ms)
                                    | {"preemptions": tr.preemptions}, setup))
        evaluator = "event simulator"
    else:
        closed = loads_c is not None
        rows = _analytic_rows(setup, cost, cap, base, [float(x) if not closed else int(x)
                                                       for x in (loads_c or loads_r)], closed, slo, mean_steps)
        evaluator = ANALYTIC_NOTE
        lengths = [(prompt.mean, max(prompt.mean - np.floor(prompt.mean * prefix_hit), 1.0), output.mean)] * len(rows)
    params = cost_params or load_cost_parameters()
    _attach_economics(rows, lengths, setup, params, mean_steps)
    definitions = dict(DEFINITIONS) | {"evaluator": evaluator} | dict(SERVING_ECONOMIC_METRICS) | {
        "cost_basis": basis_text(params.basis)}
    if simulate_events or trace is not None:
        definitions["preemptions"] = definition("preemptions", "serve")
    summary: dict[str, Any] = {
        "model": m.name, "hardware": hw.name, "devices": setup.devices, "tp": tp, "pp": pp, "ep": ep,
        "dtype": w.weight_dtype if w.weight_dtype == w.activation_dtype else f"{w.weight_dtype}:{w.activation_dtype}",
        "kv_dtype": w.kv, "op_dtypes": [list(c) for c in w.op_dtypes], "framework": framework,
        "engine": {"max_num_batched_tokens": settings.max_num_batched_tokens, "max_num_seqs": settings.max_num_seqs,
                   "gpu_memory_utilization": setup.memory_fraction(), "block_tokens": settings.block_tokens,
                   "attention_dp": settings.attention_dp, "kv_admission": settings.kv_admission,
                   "tokens_per_step": settings.speculative.tokens_per_step,
                   **({"batch_wait_timeout_iters": settings.batch_wait_timeout_iters,
                       "batch_wait_max_tokens_ratio": settings.batch_wait_max_tokens_ratio}
                      if settings.batch_waiting else {}),
                   "sources": dict(settings.sources)},
        "overheads": {"step_overhead_ms": over.step_overhead_ms, "seq_overhead_us": over.seq_overhead_us,
                      "request_overhead_ms": over.request_overhead_ms,
                      "decode_scale": over.decode_scale, "prefill_scale": over.prefill_scale,
                      "source": over.source,
                      "provenance": {} if datasheet else overheads_provenance()},
        "hardware_profile": f"calibrated: {chosen.device_profile}" if chosen.device_profile else "datasheet",
        "provenance": chosen.provenance(),
        "kv_capacity_tokens": cap, "slo_ttft_ms": slo_ttft_ms, "slo_tpot_ms": slo_tpot_ms,
        "prefetch": {"enabled": bool(prefetch), "weights": blocks.weights, "kv_cache": blocks.kv_cache},
    }
    summary |= _slo_limits(setup, cost, cap, base, slo)
    return ServeResult(rows, definitions, summary)
