"""Sweep and search columns of a disaggregated deployment: ``serving: {disagg: {...}}``.

With a ``disagg:`` entry in a sweep file's ``serving:`` block, the serving metrics of every
hardware configuration are those of ``x`` prefill and ``y`` decode instances of that
configuration (both pools on the swept device), from the vectorized model of
:mod:`roofline.serving.disagg_analytic` at the block's concurrency, and the SLO search over
:data:`~roofline.serving.columns.SLO_CONCURRENCIES` as in the aggregated mode::

    serving:
      concurrency: 64
      slo_ttft_ms: 2000
      slo_tpot_ms: 30
      disagg: {prefill: "tp=2,count=2", decode: "tp=4", kv_bandwidth_GBps: 50, kv_path: inter, kv_overlap: true}

``kv_bandwidth_GBps`` (per device per direction) and ``kv_path`` (``auto``, ``intra``,
``inter``) are optional: by default the KV link is the swept device's own (its
``link_bandwidth_GBps``/``inter_node_bandwidth_GBps`` and their efficiencies), so sweeping
those fields sweeps the KV link too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from roofline._specfile import keyed_mapping
from roofline.cost import CostParameters
from roofline.economics import serving_economic_columns
from roofline.exceptions import SpecError
from roofline.hardware import HardwareSpec
from roofline.model import ModelSpec
from roofline.registry import KV_BANDWIDTH
from roofline.serving.capacity import request_fits, serving_placement
from roofline.serving.disagg import PoolSpec, decode_kv_demand_tokens, prefill_kv_demand_tokens
from roofline.serving.disagg_analytic import (
    decode_admits_alone,
    disagg_steady_state,
    prefill_alone_s,
)
from roofline.serving.kv_transfer import KV_PATHS, kv_link_arrays, kv_transfer_bytes, kv_transfer_s
from roofline.serving.metrics import meets_slo
from roofline.serving.overheads import Overheads
from roofline.serving.settings import EngineSettings
from roofline.serving.step_cost import StepCost, build_step_cost, engine_token_grid
from roofline.timing import HardwareArrays
from roofline.workload import Parallelism, Workload

__all__ = ["DisaggBlock", "parse_disagg_block", "disagg_columns", "NOT_MODELLED"]

#: Serving columns with no disaggregated model yet: power, energy and TCO need the step energy of
#: both pools (roofline.serving.economics models one replica); they are NaN (unknown: null in JSON), as for a
#: device without a die block.
NOT_MODELLED = ("serving_power_w", "serving_energy_j_per_token", "serving_tco_usd_per_mtok",
                "goodput_tok_s_per_tco_kusd", "slo_max_goodput_tok_s_per_tco_kusd")
_KEYS = ("prefill", "decode", "kv_bandwidth_GBps", "kv_path", "kv_overlap")


@dataclass(frozen=True)
class DisaggBlock:
    """The parsed ``serving.disagg`` entry of a sweep file."""

    prefill: PoolSpec
    decode: PoolSpec
    kv_bandwidth_GBps: float | None = None
    kv_path: str = "auto"
    kv_overlap: bool = False

    @property
    def devices(self) -> int:
        return self.prefill.devices + self.decode.devices


def parse_disagg_block(data: Any, where: str) -> DisaggBlock:
    """Check ``serving.disagg``; errors name the file and the key (``where`` is "FILE: serving")."""
    where = f"{where}.disagg"
    data = keyed_mapping(data, where, _KEYS)
    pools = []
    for key in ("prefill", "decode"):
        if key not in data:
            raise SpecError(f"{where}.{key}: missing; a pool such as \"tp=4,count=2\"")
        pools.append(PoolSpec.parse(str(data[key]), f"{where}.{key}"))
    bw = data.get("kv_bandwidth_GBps")
    if bw is not None:
        KV_BANDWIDTH.check(bw, f"{where}.")
    path = data.get("kv_path", "auto")
    if path not in KV_PATHS:
        raise SpecError(f"{where}.kv_path: {path!r} is not allowed; choose one of {', '.join(KV_PATHS)}")
    overlap = data.get("kv_overlap", False)
    if not isinstance(overlap, bool):
        raise SpecError(f"{where}.kv_overlap: must be true or false, got {overlap!r}")
    return DisaggBlock(pools[0], pools[1], None if bw is None else float(bw), path, overlap)


def _pool_cost(model: ModelSpec, workload: Workload, pool: PoolSpec, hw: HardwareArrays, settings: EngineSettings,
               grid: np.ndarray, kv_demand_tokens: float, hardware: HardwareSpec) -> tuple[StepCost, np.ndarray]:
    """One pool's step cost and (n,) KV capacity per instance, its weights and KV cache placed in
    the device's memory tiers as ``roofline serve`` places them (``kv_demand_tokens``: its load;
    the framework's measured all-reduce on ``hardware``'s calibrated device, as serve)."""
    par = Parallelism(tp=pool.tp, pp=pool.pp, ep=pool.ep)
    placed, cap = serving_placement(model, workload, par, hw, gpu_memory_utilization=settings.gpu_memory_utilization,
                                    max_num_batched_tokens=settings.max_num_batched_tokens,
                                    block_tokens=settings.block_tokens, kv_demand_tokens=kv_demand_tokens,
                                    kv_memory_rule=settings.kv_memory_rule, name=model.name)
    return build_step_cost(model, workload, par, placed, grid, 1, framework=settings.framework,
                           hardware=hardware), cap


def disagg_columns(model: ModelSpec, workload: Workload, hw: HardwareArrays, block: DisaggBlock,
                   settings: EngineSettings, overheads: Overheads, *, concurrency: int, concurrencies: np.ndarray,
                   slo_ttft_ms: float | None, slo_tpot_ms: float | None, prefix_hit: float,
                   hardware: HardwareSpec, cost_params: CostParameters) -> dict[str, np.ndarray]:
    """The serving columns (``roofline.serving.columns.SERVING_METRICS``) of the disaggregated
    deployment on the ``hw.n`` configurations of ``hardware`` (both pools): goodput per 1000 USD
    of all its devices; :data:`NOT_MODELLED` columns are NaN (unknown: null in JSON, '-' in tables,
    never ranked as best)."""
    n = hw.n
    overheads = overheads.for_model(model)  # an MoE model's prefill factor, as the aggregated columns apply it
    grid = engine_token_grid(settings)  # roofline serve's grid: the two agree to rounding
    prompt, output = float(workload.input_len), float(workload.output_len)
    # each pool's KV cache extends into tiers beyond HBM as far as its load at the block's concurrency needs
    p_cost, p_cap = _pool_cost(model, workload, block.prefill, hw, settings, grid,
                               prefill_kv_demand_tokens(settings, prompt, concurrency), hardware)
    d_cost, d_cap = _pool_cost(model, workload, block.decode, hw, settings, grid,
                               decode_kv_demand_tokens(settings, prompt, output, block.decode.count, concurrency),
                               hardware)
    prefill = max(prompt - np.floor(prompt * prefix_hit), 1.0)
    rows = np.arange(n)
    alone = overheads.prefill_scale * prefill_alone_s(p_cost, rows, prompt, prefill,
                                                      float(settings.max_num_batched_tokens))
    link = kv_link_arrays(hw, block.prefill.instance_devices, block.decode.instance_devices,
                          total_devices=block.devices, path=block.kv_path, bandwidth_GBps=block.kv_bandwidth_GBps)
    t_x = kv_transfer_s(kv_transfer_bytes(model, workload, prompt)[0], link, prefill_s=alone,
                        layers=model.num_layers, overlap=block.kv_overlap)
    o, s = overheads, settings

    def evaluate(load: np.ndarray, r: np.ndarray) -> dict[str, np.ndarray]:
        return disagg_steady_state(
            p_cost, d_cost, prefill_row=r, decode_row=r, prompt=prompt, output=output, prefill=prefill,
            prefill_count=block.prefill.count, decode_count=block.decode.count, transfer_s=t_x[r],
            decode_kv_capacity_tokens=d_cap[r], prefill_budget=s.max_num_batched_tokens,
            decode_max_num_seqs=s.max_num_seqs, block_tokens=s.block_tokens, concurrency=load,
            verify_tokens=s.speculative.verify_tokens, tokens_per_step=s.speculative.tokens_per_step,
            prefill_scale=o.prefill_scale, decode_scale=o.decode_scale,
            # each pool's step overhead at its TP group
            prefill_step_overhead_s=o.for_parallelism(block.prefill.tp).step_overhead_s,
            decode_step_overhead_s=o.for_parallelism(block.decode.tp).step_overhead_s,
            prefill_seq_overhead_s=o.seq_overhead_s,
            decode_seq_overhead_s=o.seq_overhead_s, request_overhead_s=o.request_overhead_s,
            kv_admission=s.kv_admission)

    def meets(r: dict[str, np.ndarray]) -> np.ndarray:
        return ~r["saturated"] & meets_slo(r["ttft_s"], r["tpot_s"], slo_ttft_ms, slo_tpot_ms)

    # the prefill instance holds the prompt and its first token (as the simulator), the decode instance the
    # whole request
    fits = request_fits(prompt, 1.0, p_cap, s.block_tokens) & request_fits(prompt, output, d_cap, s.block_tokens) \
        & decode_admits_alone(s.kv_admission, prompt, d_cap, s.block_tokens)  # (SGLang's reserve beside the prompt)
    r = evaluate(np.full(n, float(concurrency)), rows)
    goodput = np.where(meets(r) & fits, r["throughput_tok_s"], 0.0)
    k = len(concurrencies)
    grid = evaluate(np.tile(concurrencies, n), np.repeat(rows, k))
    grid_ok = meets(grid).reshape(n, k) & fits[:, None]
    met = grid_ok.any(axis=1)
    best_i = k - 1 - np.argmax(grid_ok[:, ::-1], axis=1)
    best = np.where(met, concurrencies[best_i], 0.0)
    slo_max_goodput = np.where(met, grid["throughput_tok_s"].reshape(n, k)[rows, best_i], 0.0)

    def per_kusd(good: np.ndarray) -> np.ndarray:
        # the cost columns only: the zero power leaves them unchanged (energy and TCO: NOT_MODELLED)
        cols = serving_economic_columns(cost_params, hardware, hw, devices=block.devices, throughput_tok_s=good,
                                        goodput_tok_s=good, power_w=np.zeros(n), sustained_scale=np.ones(n))
        return cols["goodput_tok_s_per_kusd"]

    return dict.fromkeys(NOT_MODELLED, np.full(n, np.nan)) | {
        "serving_ttft_ms": r["ttft_s"] * 1e3, "serving_tpot_ms": r["tpot_s"] * 1e3,
        "serving_throughput_tok_s": r["throughput_tok_s"],
        "serving_tok_s_per_device": r["throughput_tok_s"] / block.devices,
        "goodput_tok_s": goodput, "goodput_tok_s_per_kusd": per_kusd(goodput),
        "slo_max_concurrency": best, "slo_max_goodput_tok_s": slo_max_goodput,
        "slo_max_goodput_tok_s_per_kusd": per_kusd(slo_max_goodput), "serving_kv_utilization": r["kv_utilization"],
        "serving_mean_batch": r["mean_batch"], "serving_fits": fits,
        "prefill_instances": np.full(n, float(block.prefill.count)),
        "decode_instances": np.full(n, float(block.decode.count)), "kv_transfer_ms": t_x * 1e3,
    }
