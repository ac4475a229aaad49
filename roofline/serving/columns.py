"""Serving metrics as sweep and search columns: the ``serving:`` block of a sweep file.

For every hardware configuration of a sweep chunk the analytic model gives the serving metrics of
the file's workload (a closed-loop benchmark at ``concurrency``, 10 x c requests as ``roofline
serve``, the sweep's ``input_len``/``output_len``) and engine settings, with the framework's fitted
overheads. Every request has those lengths unless ``lengths: varied`` says the client draws them
within +-10% of them: identical lengths run in lock-step (:mod:`roofline.serving.lockstep`, as
``roofline serve --input 1024``), varied ones staggered (as ``roofline serve --input 922-1126``;
disaggregated pools are always staggered). The step
cost is evaluated for all configurations at once on ``roofline serve``'s token grid
(:func:`~roofline.serving.step_cost.engine_token_grid`), so a row agrees with its ``roofline serve``
command to rounding; a sweep with a ``serving:`` block pays about 100 operator-table passes per chunk.

A ``serving:`` block::

    serving:
      framework: vllm             # engine defaults and fitted overheads
      concurrency: 64             # closed loop
      slo_ttft_ms: 2000           # goodput SLO (optional)
      slo_tpot_ms: 50
      max_num_batched_tokens: 8192   # optional overrides
      max_num_seqs: 256
      gpu_memory_utilization: 0.9
      batch_wait_timeout_iters: 20      # TensorRT-LLM's batch waiting (both positive for a wait)
      batch_wait_max_tokens_ratio: 0.9
      kv_admission: on_demand     # reserve (TensorRT-LLM), on_demand (vLLM) or sglang_ratio (SGLang); default: the framework's
      attention_dp: 1
      prefix_hit: 0.0
      lengths: identical          # every request input_len / output_len: the lock-step model
                                  # (roofline.serving.lockstep); varied: the client draws lengths
                                  # within +-10% of them (staggered arrivals, as InferenceMAX's)
      disagg: {prefill: "tp=2,count=2", decode: "tp=4"}   # optional: disaggregated pools
                                                          # (roofline.serving.disagg_columns)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from roofline._specfile import keyed_mapping
from roofline.cost import CostParameters
from roofline.exceptions import SpecError
from roofline.hardware import HardwareSpec
from roofline.metrics import descriptions
from roofline.model import ModelSpec
from roofline.serving.analytic import steady_state
from roofline.serving.capacity import load_kv_demand_tokens, request_fits, serving_placement
from roofline.serving.disagg_columns import DisaggBlock, disagg_columns, parse_disagg_block
from roofline.serving.economics import operating_point_economics, step_energy_of
from roofline.serving.overheads import DATASHEET, load_overheads
from roofline.serving.serve import benchmark_requests
from roofline.serving.settings import (
    FRAMEWORKS,
    KV_ADMISSION,
    EngineSettings,
    batch_wait_options,
    engine_defaults,
)
from roofline.serving.step_cost import build_step_cost, engine_token_grid
from roofline.timing import HardwareArrays
from roofline.workload import Parallelism, Workload

__all__ = ["ServingBlock", "SERVING_METRICS", "parse_serving_block", "serving_columns", "SLO_CONCURRENCIES",
           "ServingPoints", "serving_points", "serving_cost_columns", "LENGTHS", "length_range", "SERVING_KEYS"]

#: The columns :func:`serving_columns` adds, with their meaning (roofline.metrics, stage serving).
SERVING_METRICS = descriptions("serving")
#: Concurrencies tried for ``slo_max_concurrency``: 1, 2, 3, 4, 6, 8, 12, ... 4096.
SLO_CONCURRENCIES = np.unique(np.concatenate([2 ** np.arange(13), 3 * 2 ** np.arange(11)])).astype(float)
#: The keys a ``serving:`` block takes (one value each per sweep file).
SERVING_KEYS = ("framework", "concurrency", "slo_ttft_ms", "slo_tpot_ms", "max_num_batched_tokens", "max_num_seqs",
                "gpu_memory_utilization", "attention_dp", "prefix_hit", "lengths", "disagg",
                "batch_wait_timeout_iters", "batch_wait_max_tokens_ratio", "kv_admission")
#: What a serving block's ``lengths`` may say: every request the same, or drawn around the lengths.
LENGTHS = ("identical", "varied")
#: ``lengths: varied``: each length uniform within this share of the workload's (the same mean;
#: the longest request decides whether it fits the KV cache), as ``roofline serve --input LOW-HIGH``
VARIED_SPREAD = 0.1


def length_range(length: int, lengths: str) -> tuple[int, int]:
    """The shortest and longest of a serving block's requests of mean ``length`` tokens: both
    ``length`` when ``lengths`` is identical, else ``length`` -+ 10% (rounded: the mean stays)."""
    spread = round(VARIED_SPREAD * length) if lengths == "varied" else 0
    return length - spread, length + spread


@dataclass(frozen=True)
class ServingBlock:
    """The parsed ``serving:`` block of a sweep file."""

    settings: EngineSettings
    concurrency: int = 64
    slo_ttft_ms: float | None = None
    slo_tpot_ms: float | None = None
    prefix_hit: float = 0.0
    disagg: DisaggBlock | None = None  # disaggregated prefill and decode pools
    #: "identical": every request has the workload's lengths (a closed loop in lock-step);
    #: "varied": the client draws lengths around them (staggered arrivals)
    lengths: str = "identical"


def parse_serving_block(data: Any, file: str) -> ServingBlock:
    """Check a ``serving:`` block; errors name the file and the key."""
    where = f"{file}: serving"
    data = keyed_mapping(data, where, SERVING_KEYS)
    fw = data.get("framework", "vllm")
    if fw not in FRAMEWORKS:
        raise SpecError(f"{where}.framework: {fw!r} is not allowed; choose one of {', '.join(FRAMEWORKS)}")

    def number(key: str, integer: bool = False, upper: float | None = None) -> Any:
        v = data.get(key)
        if v is None:
            return None
        ok = not isinstance(v, bool) and isinstance(v, int if integer else (int, float)) and v > 0 and np.isfinite(v)
        if not ok or (upper is not None and v > upper):
            kind = "a positive integer" if integer else "a positive number"
            raise SpecError(f"{where}.{key}: must be {kind}{f' <= {upper}' if upper else ''}, got {v!r}")
        return v

    admission = data.get("kv_admission")
    if admission is not None and (not isinstance(admission, str) or admission not in KV_ADMISSION):
        raise SpecError(f"{where}.kv_admission: {admission!r} is not allowed; choose one of {', '.join(KV_ADMISSION)}")
    settings = engine_defaults(fw).with_overrides(
        max_num_batched_tokens=number("max_num_batched_tokens", True), max_num_seqs=number("max_num_seqs", True),
        gpu_memory_utilization=number("gpu_memory_utilization", upper=1.0),
        attention_dp=number("attention_dp", True),
        batch_wait_timeout_iters=number("batch_wait_timeout_iters", True),
        batch_wait_max_tokens_ratio=number("batch_wait_max_tokens_ratio", upper=1.0),
        kv_admission=admission)
    hit = data.get("prefix_hit", 0.0)
    if isinstance(hit, bool) or not isinstance(hit, (int, float)) or not 0 <= hit < 1:
        raise SpecError(f"{where}.prefix_hit: must be in [0, 1), got {hit!r}")
    lengths = data.get("lengths", "identical")
    if lengths not in LENGTHS:
        raise SpecError(f"{where}.lengths: {lengths!r} is not allowed; choose one of {', '.join(LENGTHS)}")
    disagg = parse_disagg_block(data["disagg"], where) if "disagg" in data else None
    if disagg is not None and settings.attention_dp != 1:
        raise SpecError(f"{where}.attention_dp: not modelled with disaggregated pools (serving.disagg); leave it at 1")
    # as serve refuses --batch-wait-* with --disagg: a prefill pool runs no decode steps to hold its prompts
    # behind, and a sweep silently ignoring a key it was given is worse than one refusing it (kv_admission
    # is the decode pool's)
    for key in ("batch_wait_timeout_iters", "batch_wait_max_tokens_ratio"):
        if disagg is not None and data.get(key) is not None:
            raise SpecError(f"{where}.{key}: not modelled with disaggregated pools (serving.disagg); leave it out")
    try:  # after the refusal above: one alone changed nothing
        batch_wait_options(data.get("batch_wait_timeout_iters"), data.get("batch_wait_max_tokens_ratio"),
                           ("batch_wait_timeout_iters", "batch_wait_max_tokens_ratio"))
    except SpecError as e:
        raise SpecError(f"{where}.{e}") from None
    return ServingBlock(settings, number("concurrency", True) or 64, number("slo_ttft_ms"), number("slo_tpot_ms"),
                        float(hit), disagg, lengths)


@dataclass(frozen=True)
class ServingPoints:
    """The two operating points of every configuration of a sweep chunk (performance only).

    ``at_block``: the steady state at the block's concurrency; ``at_slo_max``: at the largest
    concurrency of :data:`SLO_CONCURRENCIES` meeting the SLO (``slo_max_concurrency``, 0 if none).
    Each is a dict of (n,) arrays with ``throughput_rps``, ``throughput_tok_s``, ``mean_step_s``,
    ``mean_batch`` and ``goodput_tok_s``; ``lengths`` are a request's prompt, computed prompt and output.
    ``fits``: the request fits the KV cache (else no goodput at either point: an engine refuses it).
    """

    at_block: dict[str, np.ndarray]
    at_slo_max: dict[str, np.ndarray]
    slo_max_concurrency: np.ndarray
    lengths: dict[str, float]
    fits: np.ndarray


def serving_points(model: ModelSpec, workload: Workload, par: Parallelism, hw: HardwareArrays,
                   block: ServingBlock, datasheet: bool = False, hardware: HardwareSpec | None = None) -> ServingPoints:
    """Steady-state serving metrics of the ``hw.n`` configurations at both operating points (the
    fitted overheads of the block's framework, none if ``datasheet``: the raw roofline).
    ``hardware``: the spec ``hw`` was made of, for the framework's measured all-reduce on its
    calibrated device (:func:`~roofline.serving.step_cost.build_step_cost`; None: the generic model)."""
    s = block.settings
    o = DATASHEET if datasheet else load_overheads(s.framework).for_model(model).for_parallelism(par.tp)
    prompt, output = float(workload.input_len), float(workload.output_len)
    # the longest request (varied lengths: +10%) must fit, and sizes the KV cache's reach into tiers
    longest = (length_range(workload.input_len, block.lengths)[1], length_range(workload.output_len, block.lengths)[1])
    # weights and KV cache placed as roofline.serve places them (tiers beyond HBM: the block's load)
    hw, cap = serving_placement(model, workload, par, hw, gpu_memory_utilization=s.gpu_memory_utilization,
                                max_num_batched_tokens=s.max_num_batched_tokens, block_tokens=s.block_tokens,
                                attention_dp=s.attention_dp, kv_memory_rule=s.kv_memory_rule, name=model.name,
                                kv_demand_tokens=load_kv_demand_tokens(min(block.concurrency, s.max_num_seqs),
                                                                       *longest, s.block_tokens))
    cost = build_step_cost(model, workload, par, hw, engine_token_grid(s), s.attention_dp,  # serve's grid
                           framework=s.framework, hardware=hardware)
    common = dict(prompt=prompt, output=output, prefill=max(prompt - np.floor(prompt * block.prefix_hit), 1.0),
                  max_num_batched_tokens=s.max_num_batched_tokens, max_num_seqs=s.max_num_seqs,
                  block_tokens=s.block_tokens, verify_tokens=s.speculative.verify_tokens,
                  tokens_per_step=s.speculative.tokens_per_step, step_overhead_s=o.step_overhead_s,
                  request_overhead_s=o.request_overhead_s, decode_scale=o.decode_scale,
                  prefill_scale=o.prefill_scale, seq_overhead_s=o.seq_overhead_s, prefill_first=s.prefill_first,
                  batch_wait_timeout_iters=s.batch_wait_iters_applied,
                  batch_wait_max_tokens_ratio=s.batch_wait_max_tokens_ratio,
                  lockstep=block.lengths == "identical", kv_reserve=s.kv_admission == "reserve")
    n = hw.n
    fits = request_fits(*longest, cap, s.block_tokens)  # else an engine refuses the request
    conc = np.full(n, float(block.concurrency))
    r = steady_state(cost, kv_capacity_tokens=cap, concurrency=conc, burst_requests=benchmark_requests(conc), **common)
    r["goodput_tok_s"] = np.where(_meets(r, block) & fits, r["throughput_tok_s"], 0.0)
    # the SLO search: every configuration at every concurrency of SLO_CONCURRENCIES at once
    k = len(SLO_CONCURRENCIES)
    rows = np.repeat(np.arange(n), k)
    grid_c = np.tile(SLO_CONCURRENCIES, n)
    grid_r = steady_state(cost, kv_capacity_tokens=cap[rows], concurrency=grid_c, hw_row=rows,
                          burst_requests=benchmark_requests(grid_c), **common)
    meets = _meets(grid_r, block).reshape(n, k) & fits[:, None]
    met = meets.any(axis=1)
    best_i = k - 1 - np.argmax(meets[:, ::-1], axis=1)
    at = {key: grid_r[key].reshape(n, k)[np.arange(n), best_i]
          for key in ("throughput_rps", "throughput_tok_s", "mean_step_s", "mean_batch")}
    at["goodput_tok_s"] = np.where(met, at["throughput_tok_s"], 0.0)
    return ServingPoints(r, at, np.where(met, SLO_CONCURRENCIES[best_i], 0.0),
                         {"prompt": prompt, "prefill": common["prefill"], "output": output}, fits)


def serving_cost_columns(points: ServingPoints, model: ModelSpec, workload: Workload, par: Parallelism,
                         hw: HardwareArrays, block: ServingBlock, hardware: HardwareSpec,
                         cost_params: CostParameters) -> dict[str, np.ndarray]:
    """The cost, power and TCO columns of :data:`SERVING_METRICS` at both operating points (NaN where
    unknown, e.g. a device without a ``die`` block: null in JSON, '-' in tables, never ranked best)."""
    s = block.settings
    energy = None if hardware.die is None else step_energy_of(cost_params, model, workload, par, hardware, hw, s)
    econ = {}
    for name, point in (("block", points.at_block), ("slo_max", points.at_slo_max)):
        econ[name] = {k: np.asarray(v, dtype=float) for k, v in operating_point_economics(
            cost_params, model, workload, par, hardware, hw, s, throughput_rps=point["throughput_rps"],
            throughput_tok_s=point["throughput_tok_s"], goodput_tok_s=point["goodput_tok_s"],
            mean_step_s=point["mean_step_s"], mean_running=point["mean_batch"], step_energy=energy,
            **points.lengths).items()}
    return {
        "goodput_tok_s_per_kusd": econ["block"]["goodput_tok_s_per_kusd"],
        "serving_power_w": econ["block"]["power_w"],
        "serving_energy_j_per_token": econ["block"]["energy_j_per_token"],
        "serving_tco_usd_per_mtok": econ["block"]["tco_usd_per_mtok"],
        "goodput_tok_s_per_tco_kusd": econ["block"]["goodput_tok_s_per_tco_kusd"],
        "slo_max_goodput_tok_s_per_kusd": econ["slo_max"]["goodput_tok_s_per_kusd"],
        "slo_max_goodput_tok_s_per_tco_kusd": econ["slo_max"]["goodput_tok_s_per_tco_kusd"],
    }


def serving_columns(model: ModelSpec, workload: Workload, par: Parallelism, hw: HardwareArrays,
                    block: ServingBlock, hardware: HardwareSpec, cost_params: CostParameters,
                    datasheet: bool = False) -> dict[str, np.ndarray]:
    """:data:`SERVING_METRICS` columns for the ``hw.n`` configurations of ``hardware`` (0 where a
    count is empty, e.g. no goodput; NaN where a value is unknown: the cost, energy and TCO of a
    device without a ``die`` block, or of disaggregated pools' power). ``datasheet``: the raw
    roofline, no fitted overheads (a sweep's ``scenario: {datasheet: true}``)."""
    # SGLang's token budget by the device file's memory, as serve takes it (not a swept HBM size)
    block = replace(block, settings=block.settings.for_device(hardware.memory.hbm_capacity_bytes))
    if block.disagg is not None:  # x prefill and y decode instances (roofline.serving.disagg_columns)
        s = block.settings
        over = DATASHEET if datasheet else load_overheads(s.framework)
        columns = disagg_columns(model, workload, hw, block.disagg, s, over,
                                 concurrency=block.concurrency, concurrencies=SLO_CONCURRENCIES,
                                 slo_ttft_ms=block.slo_ttft_ms, slo_tpot_ms=block.slo_tpot_ms,
                                 prefix_hit=block.prefix_hit, hardware=hardware, cost_params=cost_params)
        return {k: columns[k] for k in SERVING_METRICS}
    points = serving_points(model, workload, par, hw, block, datasheet, hardware)
    r = points.at_block
    columns = {
        "serving_ttft_ms": r["ttft_s"] * 1e3, "serving_tpot_ms": r["tpot_s"] * 1e3,
        "serving_throughput_tok_s": r["throughput_tok_s"],
        "serving_tok_s_per_device": r["throughput_tok_s"] / (par.tp * par.pp),
        "goodput_tok_s": r["goodput_tok_s"],
        "slo_max_concurrency": points.slo_max_concurrency, "slo_max_goodput_tok_s": points.at_slo_max["goodput_tok_s"],
        "serving_kv_utilization": r["kv_utilization"], "serving_mean_batch": r["mean_batch"],
        "serving_fits": points.fits,
    }
    columns |= serving_cost_columns(points, model, workload, par, hw, block, hardware, cost_params)
    columns |= {"prefill_instances": np.zeros(hw.n), "decode_instances": np.zeros(hw.n), "kv_transfer_ms": np.zeros(hw.n)}
    return {k: columns[k] for k in SERVING_METRICS}


def _meets(r: dict[str, np.ndarray], block: ServingBlock) -> np.ndarray:
    ok = ~r["saturated"]
    if block.slo_ttft_ms is not None:
        ok &= r["ttft_s"] * 1e3 <= block.slo_ttft_ms
    if block.slo_tpot_ms is not None:
        ok &= r["tpot_s"] * 1e3 <= block.slo_tpot_ms
    return ok
