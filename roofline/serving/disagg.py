"""Disaggregated prefill and decode (xPyD): ``x`` prefill and ``y`` decode instances, KV over the links.

Each pool is a set of identical engine instances with its own parallelism and, optionally, its
own device type (:class:`PoolSpec`); the KV cache of every prompt moves from its prefill instance
to a decode instance (:mod:`roofline.serving.kv_transfer`). :func:`serve_disagg` evaluates one
such deployment over concurrencies, rates or a trace with the event simulator
(:mod:`roofline.serving.disagg_simulator`) or the vectorized steady-state model
(:mod:`roofline.serving.disagg_analytic`); the sizing search is in
:mod:`roofline.serving.disagg_sizing`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from roofline.exceptions import InfeasibleConfigError, SpecError
from roofline.fitted import ModelChoice, fitted_model
from roofline.hardware import HardwareSpec
from roofline.metrics import definition
from roofline.model import ModelSpec, load_model
from roofline.serving.capacity import check_request_fits, load_kv_demand_tokens
from roofline.serving.disagg_analytic import (
    DISAGG_ANALYTIC_NOTE,
    decode_admission_message,
    decode_admits_alone,
    disagg_steady_state,
    prefill_alone_s,
)
from roofline.serving.disagg_simulator import PoolEngine, simulate_disagg
from roofline.serving.kv_transfer import KVLink, kv_link, kv_transfer_bytes, kv_transfer_s
from roofline.serving.metrics import DEFINITIONS, PERCENTILES, meets_slo, trace_metrics
from roofline.serving.overheads import DATASHEET, load_overheads
from roofline.serving.serve import ServeResult, ServingSetup
from roofline.serving.settings import (
    EngineSettings,
    engine_defaults,
    speculative_options,
)
from roofline.serving.step_cost import StepCost
from roofline.serving.workload import Lengths, ServingWorkload, make_requests
from roofline.workload import Parallelism, Workload

__all__ = ["PoolSpec", "DisaggSetup", "serve_disagg", "DISAGG_DEFINITIONS", "disagg_setup", "analytic_disagg",
           "pool_engines", "prefill_kv_demand_tokens", "decode_kv_demand_tokens"]

#: The columns a disaggregated deployment adds or reads differently, with their meaning
#: (roofline.metrics, context "disagg": ``kv_utilization`` is the decode instances').
DISAGG_DEFINITIONS = {name: definition(name, "disagg") for name in (
    "mode", "prefill_instances", "decode_instances", "kv_transfer_ms", "devices", "kv_utilization")}
_POOL_KEYS = ("tp", "pp", "ep", "count")


@dataclass(frozen=True)
class PoolSpec:
    """One pool: ``count`` instances of ``tp x pp`` devices (``ep`` for MoE experts)."""

    tp: int = 1
    pp: int = 1
    ep: int = 1
    count: int = 1

    def __post_init__(self) -> None:
        for k in _POOL_KEYS:
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise SpecError(f"pool: {k}: must be a positive integer, got {v!r}")

    @classmethod
    def parse(cls, text: str, option: str) -> PoolSpec:
        """``"tp=4,count=2"`` (keys tp, pp, ep, count; each a positive integer, default 1)."""
        values: dict[str, int] = {}
        for part in (p.strip() for p in str(text).split(",")):
            if not part:
                continue
            key, sep, raw = part.partition("=")
            key = key.strip()
            if not sep or key not in _POOL_KEYS:
                raise SpecError(f"{option}: {part!r} is not KEY=N with KEY one of {', '.join(_POOL_KEYS)} "
                                f"(e.g. \"tp=4,count=2\")")
            try:
                value = int(raw)
            except ValueError:
                raise SpecError(f"{option}: {key}: {raw.strip()!r} must be a positive integer") from None
            if value < 1:
                raise SpecError(f"{option}: {key}: must be a positive integer, got {value}")
            if key in values:
                raise SpecError(f"{option}: {key} is given twice")
            values[key] = value
        return cls(**values)

    @property
    def instance_devices(self) -> int:
        return self.tp * self.pp

    @property
    def devices(self) -> int:
        return self.instance_devices * self.count

    def label(self) -> str:
        extra = "".join(f",{k}={getattr(self, k)}" for k in ("pp", "ep") if getattr(self, k) != 1)
        return f"{self.count}x tp={self.tp}{extra}"


@dataclass(frozen=True)
class DisaggSetup:
    """A disaggregated deployment: one instance of each pool (:class:`ServingSetup`), the
    instance counts, the KV link and whether the transfer overlaps the prefill layer by layer."""

    prefill: ServingSetup
    decode: ServingSetup
    prefill_count: int
    decode_count: int
    link: KVLink
    overlap: bool = False

    @property
    def devices(self) -> int:
        return self.prefill.devices * self.prefill_count + self.decode.devices * self.decode_count

    def costs(self) -> tuple[StepCost, StepCost, float, float]:
        """(prefill step cost, decode step cost, prefill and decode KV capacity per instance)."""
        return (self.prefill.step_cost(), self.decode.step_cost(), self.prefill.kv_capacity_tokens(),
                self.decode.kv_capacity_tokens())

    def transfer_s(self, prefill_cost: StepCost, prompt: np.ndarray, prefill: np.ndarray) -> np.ndarray:
        """KV transfer seconds of prompts of ``prompt`` tokens (``prefill`` of them computed)."""
        prompt = np.asarray(prompt, dtype=float)
        budget = float(self.prefill.settings.max_num_batched_tokens)
        alone = self.prefill.overheads.prefill_scale * prefill_alone_s(
            prefill_cost, np.zeros(prompt.shape, dtype=int), prompt, prefill, budget)
        return kv_transfer_s(kv_transfer_bytes(self.prefill.model, self.prefill.workload, prompt), self.link,
                             prefill_s=alone, layers=self.prefill.model.num_layers, overlap=self.overlap)


def prefill_kv_demand_tokens(settings: EngineSettings, prompt_tokens: float, concurrency: float | None = None) -> float:
    """Tokens of KV cache a prefill instance holds at most: the prompts one chunked-prefill step
    touches, ``min(max_num_seqs, ceil(M / prompt) + 1)`` of them (a budget of ``M`` tokens starts
    one prompt, carries whole ones, finishes another), at most the ``concurrency`` of a closed
    loop; each as an aggregated engine holds a request of ``prompt`` + 1 token (the disaggregated
    proxies send the prefill instance the prompt with one output token: vLLM's
    ``max_tokens=1``). Queued prompts hold nothing; the KV of a finished prompt leaves with its
    transfer (not counted). Sets how far the KV cache extends into memory tiers beyond HBM
    (:func:`~roofline.serving.capacity.serving_placement`)."""
    running = min(settings.max_num_seqs, math.ceil(settings.max_num_batched_tokens / max(prompt_tokens, 1.0)) + 1)
    if concurrency is not None:
        running = min(running, concurrency)
    return load_kv_demand_tokens(running, prompt_tokens, 1, settings.block_tokens)


def decode_kv_demand_tokens(settings: EngineSettings, prompt_tokens: float, output_tokens: float, instances: int,
                            concurrency: float | None = None) -> float:
    """Tokens of KV cache a decode instance holds at most: ``max_num_seqs`` requests of prompt +
    output, or ``ceil(C / instances)`` of a closed loop of ``C`` (a request joins the instance with
    the fewest, which then holds at most ``floor((C - 1) / y) + 1``): as aggregated ``serve``
    sizes a replica's KV cache at that load."""
    running = settings.max_num_seqs if concurrency is None else min(settings.max_num_seqs,
                                                                    math.ceil(concurrency / instances))
    return load_kv_demand_tokens(running, prompt_tokens, output_tokens, settings.block_tokens)


def disagg_setup(model: ModelSpec, prefill_hw: HardwareSpec, decode_hw: HardwareSpec, prefill: PoolSpec,
                 decode: PoolSpec, workload: Workload, settings: EngineSettings, *, prompt_tokens: float,
                 output_tokens: float, concurrency: float | None = None, datasheet: bool = False,
                 prefetch: bool = False, kv_path: str = "auto", kv_bandwidth_GBps: float | None = None,
                 kv_overlap: bool = False) -> DisaggSetup:
    """The :class:`DisaggSetup` of two pools of ``model`` (the framework's fitted overheads
    unless ``datasheet``).

    Each pool places its weights and KV cache in the device's memory tiers as aggregated
    ``serve`` does (:func:`~roofline.serving.capacity.serving_placement`), its KV cache sized to
    its load: :func:`prefill_kv_demand_tokens` and :func:`decode_kv_demand_tokens` of the
    longest request (``prompt_tokens``, ``output_tokens``) at ``concurrency`` (closed loop;
    ``None``: open loop or a trace, up to ``max_num_seqs``). Without tiers beyond HBM the load
    changes nothing.
    """
    # an MoE model's prefill scale includes its fitted factor, as serve applies it
    over = DATASHEET if datasheet else load_overheads(settings.framework).for_model(model)
    demands = (prefill_kv_demand_tokens(settings, prompt_tokens, concurrency),
               decode_kv_demand_tokens(settings, prompt_tokens, output_tokens, decode.count, concurrency))
    setups = [ServingSetup(model, hw, workload, Parallelism(tp=p.tp, pp=p.pp, ep=p.ep), settings, over, prefetch,
                           kv_demand_tokens=demand)
              for hw, p, demand in ((prefill_hw, prefill, demands[0]), (decode_hw, decode, demands[1]))]
    link = kv_link(prefill_hw, decode_hw, prefill.instance_devices, decode.instance_devices,
                   total_devices=prefill.devices + decode.devices, path=kv_path, bandwidth_GBps=kv_bandwidth_GBps)
    return DisaggSetup(setups[0], setups[1], prefill.count, decode.count, link, kv_overlap)


def pool_engines(setup: DisaggSetup,
                 costs: tuple[StepCost, StepCost, float, float]) -> tuple[PoolEngine, PoolEngine]:
    """The two pools of ``setup`` as the event simulator takes them."""
    p_cost, d_cost, p_cap, d_cap = costs
    return (PoolEngine(p_cost.scalar(), setup.prefill.settings, setup.prefill.overheads, setup.prefill_count, p_cap),
            PoolEngine(d_cost.scalar(), setup.decode.settings, setup.decode.overheads, setup.decode_count, d_cap))


def analytic_disagg(setup: DisaggSetup, costs: tuple[StepCost, StepCost, float, float], *, prompt: float,
                    output: float, prefill: float, concurrency: np.ndarray | None = None,
                    rate_rps: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """:func:`disagg_steady_state` of ``setup`` at the mean lengths, over loads."""
    p_cost, d_cost, _, d_cap = costs
    ps, ds = setup.prefill.settings, setup.decode.settings
    po, do = setup.prefill.overheads, setup.decode.overheads
    t_x = float(setup.transfer_s(p_cost, np.array([prompt]), np.array([prefill]))[0])
    return disagg_steady_state(
        p_cost, d_cost, prefill_row=0, decode_row=0, prompt=prompt, output=output, prefill=prefill,
        prefill_count=setup.prefill_count, decode_count=setup.decode_count, transfer_s=t_x,
        decode_kv_capacity_tokens=d_cap, prefill_budget=ps.max_num_batched_tokens,
        decode_max_num_seqs=ds.max_num_seqs, block_tokens=ds.block_tokens, concurrency=concurrency,
        rate_rps=rate_rps, verify_tokens=ds.speculative.verify_tokens, tokens_per_step=ds.speculative.tokens_per_step,
        prefill_scale=po.prefill_scale, decode_scale=do.decode_scale, prefill_step_overhead_s=po.step_overhead_s,
        decode_step_overhead_s=do.step_overhead_s, prefill_seq_overhead_s=po.seq_overhead_s,
        decode_seq_overhead_s=do.seq_overhead_s, request_overhead_s=po.request_overhead_s,
        kv_admission=ds.kv_admission)


def _row(setup: DisaggSetup, row: dict[str, Any], kv_transfer_ms: float) -> dict[str, Any]:
    tpot = row["tpot_ms"]
    row["throughput_tok_s_per_device"] = row["throughput_tok_s"] / setup.devices
    row["tok_s_per_user"] = 1e3 / tpot if tpot and tpot > 0 else None
    row |= {"mode": "disagg", "prefill_instances": setup.prefill_count, "decode_instances": setup.decode_count,
            "kv_transfer_ms": kv_transfer_ms, "devices": setup.devices}
    return row


def _analytic_rows(setup: DisaggSetup, costs: tuple[StepCost, StepCost, float, float], w: ServingWorkload,
                   loads: list[float], closed: bool, slo: tuple[float | None, float | None]) -> list[dict[str, Any]]:
    prompt = w.prompt.mean
    prefill = max(prompt - np.floor(prompt * w.prefix_hit), 1.0)
    load = np.array(loads, dtype=float)
    res = analytic_disagg(setup, costs, prompt=prompt, output=w.output.mean, prefill=prefill,
                          concurrency=load if closed else None, rate_rps=None if closed else load)
    ok = meets_slo(res["ttft_s"], res["tpot_s"], *slo) & ~res["saturated"]
    rows = []
    for i, value in enumerate(loads):
        sat = bool(res["saturated"][i])
        row: dict[str, Any] = {("concurrency" if closed else "rate_rps"): value}
        for k in ("ttft", "tpot", "itl", "e2e"):
            row[f"{k}_ms"] = None if sat and k in ("ttft", "e2e") else float(res[f"{k}_s"][i] * 1e3)
            for q in PERCENTILES:
                row[f"{k}_p{q}_ms"] = None
        row |= {"throughput_tok_s": float(res["throughput_tok_s"][i]),
                "throughput_rps": float(res["throughput_rps"][i]),
                "goodput_tok_s": float(res["throughput_tok_s"][i]) if ok[i] else 0.0,
                "slo_attainment": float(ok[i]), "kv_utilization": float(res["kv_utilization"][i]),
                "mean_batch": float(res["mean_batch"][i]), "saturated": sat}
        rows.append(_row(setup, row, float(res["transfer_s"][i] * 1e3)))
    return rows


def serve_disagg(
    model: ModelSpec | str,
    prefill_hardware: HardwareSpec | str,
    decode_hardware: HardwareSpec | str | None = None,
    *,
    prefill: PoolSpec | str = PoolSpec(),
    decode: PoolSpec | str = PoolSpec(),
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
    kv_admission: str | None = None,
    draft_tokens: int = 0,
    acceptance: float | None = None,
    slo_ttft_ms: float | None = None,
    slo_tpot_ms: float | None = None,
    simulate_events: bool = False,
    datasheet: bool = False,
    prefetch: bool = False,
    kv_path: str = "auto",
    kv_bandwidth_GBps: float | None = None,
    kv_overlap: bool = False,
    seed: int = 0,
) -> ServeResult:
    """Serving metrics of ``model`` on ``prefill.count`` prefill instances of ``prefill_hardware``
    and ``decode.count`` decode instances of ``decode_hardware`` (default: the same device).

    Takes :func:`roofline.serving.serve`'s workload, engine and SLO arguments (both pools use
    the same engine settings) plus ``prefill``/``decode`` pools (:class:`PoolSpec` or
    ``"tp=4,count=2"``), ``kv_path`` (``auto``, ``intra``, ``inter``), ``kv_bandwidth_GBps``
    (per device per direction, replacing the tier's wire rate) and ``kv_overlap`` (layer-by-layer
    transfer). ``kv_admission`` (default: the framework's) is how the decode instances admit
    (:func:`~roofline.serving.disagg_analytic.decode_running_limit`, the event simulator's decode
    pool); the summary names it. Rows gain ``mode``, ``prefill_instances``, ``decode_instances``,
    ``kv_transfer_ms``.
    """
    m = load_model(model)
    pools = [PoolSpec.parse(p, opt) if isinstance(p, str) else p
             for p, opt in ((prefill, "--prefill"), (decode, "--decode"))]
    settings = engine_defaults(framework).with_overrides(
        max_num_batched_tokens=max_num_batched_tokens, max_num_seqs=max_num_seqs,
        gpu_memory_utilization=gpu_memory_utilization, kv_admission=kv_admission,
        speculative=speculative_options(draft_tokens, acceptance))
    choice = ModelChoice(datasheet, framework)  # as serve: the calibrated profiles unless datasheet
    hw_p = fitted_model(prefill_hardware, choice).hardware
    hw_d = hw_p if decode_hardware is None else fitted_model(decode_hardware, choice).hardware
    settings = settings.for_device(hw_p.memory.hbm_capacity_bytes)  # SGLang's budget: the prefill device's
    loads_c = None if concurrency is None else list(np.atleast_1d(concurrency))
    loads_r = None if rate_rps is None else list(np.atleast_1d(rate_rps))
    if sum(x is not None for x in (loads_c, loads_r, trace)) != 1:
        raise SpecError("serve: give exactly one of concurrency, rate_rps and trace")
    for c in loads_c or []:
        if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)) or c < 1:
            raise SpecError(f"--concurrency: must be positive integers, got {c!r}")
    for r in loads_r or []:
        if isinstance(r, bool) or not np.isfinite(r) or r <= 0:
            raise SpecError(f"--rate: must be positive numbers, got {r!r}")
    for name, v in (("--slo-ttft-ms", slo_ttft_ms), ("--slo-tpot-ms", slo_tpot_ms)):
        if v is not None and (not np.isfinite(v) or v <= 0):
            raise SpecError(f"{name}: must be a positive number, got {v!r}")
    prompt = Lengths(*input_len) if isinstance(input_len, tuple) else Lengths(input_len)
    output = Lengths(*output_len) if isinstance(output_len, tuple) else Lengths(output_len)
    w = Workload.for_model(m, dtype, kv_dtype=kv_dtype, op_dtypes=op_dtypes, lm_head_dtype=lm_head_dtype)
    if trace is not None:
        traced = make_requests(ServingWorkload(trace=trace, num_requests=num_requests, prefix_hit=prefix_hit, seed=seed))
        # the longest prompt (a prefill instance) and the longest request (a decode instance), as serve
        # takes the trace's longest request
        longest_prompt = float(traced.prompt.max())
        longest = (longest_prompt, float((traced.prompt + traced.output).max()) - longest_prompt)
    else:
        longest = (float(prompt.max), float(output.max))
    # each pool's KV cache extends into memory tiers beyond HBM as far as its load needs (as serve)
    setup = disagg_setup(m, hw_p, hw_d, pools[0], pools[1], w, settings, prompt_tokens=longest[0],
                         output_tokens=longest[1], concurrency=max(loads_c) if loads_c else None,
                         datasheet=datasheet, prefetch=prefetch, kv_path=kv_path, kv_bandwidth_GBps=kv_bandwidth_GBps,
                         kv_overlap=kv_overlap)
    costs = setup.costs()
    if trace is None:  # the longest request must fit (an engine refuses it): its prompt and first token on a
        # prefill instance (as the simulator), prompt and output on a decode instance (a trace's: the simulator
        # refuses them)
        check_request_fits(prompt.max, 1, costs[2], settings.block_tokens, "--input (prefill instance)")
        check_request_fits(prompt.max, output.max, costs[3], settings.block_tokens, "--input/--output (decode instance)")
        if not decode_admits_alone(settings.kv_admission, prompt.max, costs[3], settings.block_tokens):
            raise InfeasibleConfigError(decode_admission_message(prompt.max, costs[3], settings.block_tokens,
                                                                 "--input (decode instance)"))
    slo = (slo_ttft_ms, slo_tpot_ms)
    base = ServingWorkload(prompt, output, concurrency=1, num_requests=num_requests, prefix_hit=prefix_hit, seed=seed)
    rows: list[dict[str, Any]] = []
    if simulate_events or trace is not None:
        engines = pool_engines(setup, costs)
        runs: list[tuple[str, Any, ServingWorkload]] = []
        if trace is not None:
            runs.append(("trace", trace, ServingWorkload(trace=trace, num_requests=num_requests,
                                                          prefix_hit=prefix_hit, seed=seed)))
        runs += [("concurrency", int(c), replace(base, concurrency=int(c))) for c in loads_c or []]
        runs += [("rate_rps", float(r), replace(base, concurrency=None, rate_rps=float(r))) for r in loads_r or []]
        for key, load, sw in runs:
            reqs = make_requests(sw)
            t_x = setup.transfer_s(costs[0], reqs.prompt, reqs.prefill)
            tr = simulate_disagg(reqs, *engines, t_x, concurrency=sw.concurrency)
            row = {key: load} | trace_metrics(tr, slo_ttft_ms=slo_ttft_ms, slo_tpot_ms=slo_tpot_ms)
            rows.append(_row(setup, row, float(t_x.mean() * 1e3)))
        evaluator = "event simulator (disaggregated prefill and decode pools)"
    else:
        closed = loads_c is not None
        rows = _analytic_rows(setup, costs, base, [int(x) if closed else float(x) for x in (loads_c or loads_r)],
                              closed, slo)
        evaluator = DISAGG_ANALYTIC_NOTE
    summary: dict[str, Any] = {
        "mode": "disagg", "model": m.name, "hardware": hw_p.name if hw_p.name == hw_d.name else f"{hw_p.name}+{hw_d.name}",
        "prefill_hardware": hw_p.name, "decode_hardware": hw_d.name, "devices": setup.devices,
        "prefill": {"tp": pools[0].tp, "pp": pools[0].pp, "ep": pools[0].ep, "count": pools[0].count},
        "decode": {"tp": pools[1].tp, "pp": pools[1].pp, "ep": pools[1].ep, "count": pools[1].count},
        "kv_link": {"path": setup.link.path, "bandwidth_GBps": setup.link.bandwidth_GBps,
                    "links": setup.link.links, "latency_us": setup.link.latency_s * 1e6, "overlap": kv_overlap},
        "kv_bytes_per_request": float(kv_transfer_bytes(m, w, prompt.mean)[0]),
        "dtype": w.weight_dtype if w.weight_dtype == w.activation_dtype else f"{w.weight_dtype}:{w.activation_dtype}",
        "kv_dtype": w.kv, "op_dtypes": [list(c) for c in w.op_dtypes], "framework": framework,
        "kv_admission": settings.kv_admission,  # the decode pool's (the prefill pool's requests take one token)
        "overheads": {"source": setup.prefill.overheads.source},
        "kv_capacity_tokens": costs[3] * setup.decode_count, "prefill_kv_capacity_tokens": costs[2] * setup.prefill_count,
        "slo_ttft_ms": slo_ttft_ms, "slo_tpot_ms": slo_tpot_ms,
    }
    summary |= _slo_limits(setup, costs, base, slo)
    return ServeResult(rows, dict(DEFINITIONS) | DISAGG_DEFINITIONS | {"evaluator": evaluator}, summary)


def _slo_limits(setup: DisaggSetup, costs: tuple[StepCost, StepCost, float, float], w: ServingWorkload,
                slo: tuple[float | None, float | None]) -> dict[str, Any]:
    """Largest concurrency (every integer to 4096) and rate meeting the SLO (analytic model)."""
    if slo == (None, None):
        return {}
    conc = [float(c) for c in range(1, 4097)]
    rows = _analytic_rows(setup, costs, w, conc, True, slo)
    ok = [r["concurrency"] for r in rows if r["slo_attainment"] > 0]
    top = max(r["throughput_rps"] for r in rows)
    rrows = _analytic_rows(setup, costs, w, list(np.geomspace(top * 1e-3, top, 400)), False, slo)
    okr = [r["rate_rps"] for r in rrows if r["slo_attainment"] > 0]
    best = int(max(ok)) if ok else None
    at = rows[best - 1] if best else None
    return {"slo_max_concurrency": best, "slo_max_rate_rps": float(max(okr)) if okr else None,
            "goodput_tok_s_at_slo_max_concurrency": at["goodput_tok_s"] if at else 0.0}

