"""Vectorized evaluation of many hardware configurations of one scenario.

A scenario fixes the model, workload, parallelism and base device; the operator tables are built
once and evaluated against arrays of hardware parameters (numpy broadcasting; no Python loop over
configurations). ``predict`` and this engine share every formula, so a grid point equals the
prediction at that point (a test checks it to 1e-9).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from roofline.cost import CostParameters, device_cost, load_cost_parameters, logic_area_from_total
from roofline.evaluate import DecodeSteps, evaluate_pass, mean_over_steps
from roofline.graph import build_phase
from roofline.hardware import HardwareSpec
from roofline.model import ModelSpec
from roofline.predict import decode_kv_range, memory_per_device
from roofline.timing import HardwareArrays, Recorder
from roofline.workload import Parallelism, Workload

__all__ = ["Scenario", "evaluate_configs", "METRICS", "BOUNDS"]

BOUNDS = ("compute", "memory", "comm")

#: Columns evaluate_configs returns, with their meaning.
METRICS = {
    "ttft_ms": "time to first token (prefill of the prompt batch)",
    "tpot_ms": "mean decode-step time over the generated tokens",
    "e2e_ms": "TTFT + (output_len - 1) * TPOT",
    "throughput_tok_s": "batch * output_len / e2e, times DP replicas",
    "baseline_ttft_ms": "TTFT without prefetching",
    "baseline_tpot_ms": "TPOT without prefetching",
    "baseline_e2e_ms": "e2e without prefetching",
    "baseline_throughput_tok_s": "throughput without prefetching",
    "prefetch_speedup": "baseline e2e / e2e",
    "decode_bound": "what most of a decode step waits on: compute, memory or comm",
    "memory_GiB": "weights + KV cache + activations per device",
    "fits": "memory_GiB fits in HBM",
    "device_cost_usd": "manufacturing cost of one device today, USD, not a purchase price (die with logic + "
                       "L2 SRAM, yield, wafer price, HBM, packaging, links, host share; docs/cost_model.md)",
    "system_cost_usd": "devices * device cost (manufacturing cost today, USD)",
    "tok_s_per_kusd": "throughput per 1000 USD of system manufacturing cost (performance per cost)",
    "baseline_tok_s_per_kusd": "the same without prefetching",
}


@dataclass(frozen=True)
class Scenario:
    """What stays fixed while hardware parameters vary."""

    model: ModelSpec
    workload: Workload
    parallelism: Parallelism
    hardware: HardwareSpec

    @property
    def devices(self) -> int:
        return self.parallelism.devices


@functools.lru_cache(maxsize=1)
def _default_cost_parameters() -> CostParameters:
    return load_cost_parameters()


_STACK_PARAMS: dict[tuple[int, str, float], tuple[CostParameters, CostParameters]] = {}


def _device_stacks(params: CostParameters, spec: HardwareSpec) -> CostParameters:
    """Cost parameters whose HBM stack capacity is the device's own (capacity / stacks), so that
    its baseline stack count is the one in its spec (MI300X: 8 x 24 GiB, not 12 x 16)."""
    die = spec.die
    per_stack = spec.memory.hbm_capacity_bytes / 2**30 / die.hbm_stacks
    key = (id(params), die.hbm_generation, per_stack)
    cached = _STACK_PARAMS.get(key)
    if cached is None or cached[0] is not params:  # ids are reused once an object is freed
        derived = params.with_overrides({f"hbm.stack_capacity_GiB.{die.hbm_generation}": per_stack})
        cached = _STACK_PARAMS[key] = (params, derived)
    return cached[1]


def _cost(scenario: Scenario, hw: HardwareArrays, params: CostParameters) -> np.ndarray:
    spec = scenario.hardware
    die = spec.die
    if die is None:
        return np.full(hw.n, np.nan)
    params = _device_stacks(params, spec)
    base_l2_MiB = spec.memory.l2_capacity_bytes / 2**20
    logic = logic_area_from_total(params, die.process_node, die.die_area_mm2, base_l2_MiB,
                                  sram_structure=die.l2_sram)
    base_link = spec.intra_node.device_bandwidth_Bps / 1e9
    cost = device_cost(
        params, process_node=die.process_node, logic_area_mm2=logic, l2_MiB=hw.l2_bytes / 2**20,
        hbm_capacity_GiB=hw.hbm_capacity_bytes / 2**30, hbm_bandwidth_GBps=hw.hbm_Bps / 1e9,
        hbm_generation=die.hbm_generation, link_bandwidth_GBps=hw.link_Bps * hw.links / 1e9,
        num_dies=die.num_dies, link_topology=spec.intra_node.topology,
        baseline_link_bandwidth_GBps=base_link, sram_structure=die.l2_sram)
    return np.broadcast_to(np.asarray(cost.total_usd, dtype=float), (hw.n,))


def evaluate_configs(
    scenario: Scenario,
    n: int = 1,
    *,
    prefetch: ArrayLike | None = None,
    cost_params: CostParameters | None = None,
    **hardware_params: ArrayLike,
) -> dict[str, np.ndarray]:
    """Metrics of ``n`` hardware configurations of ``scenario``.

    Args:
        scenario: model, workload, parallelism and base device.
        n: number of configurations; every array in ``hardware_params`` has shape (n,) or ().
        prefetch: bool per configuration (default: the device spec's setting).
        cost_params: cost model parameters (default: cost_specs/default.yaml).
        **hardware_params: sweepable parameters (units in the names, see
            ``roofline.timing.SWEEPABLE``), e.g. ``l2_capacity_MiB=np.array([0, 64, 128])``.

    Returns:
        Column name -> array of shape (n,); see :data:`METRICS`. Times in milliseconds.
    """
    model, w, par = scenario.model, scenario.workload, scenario.parallelism
    hw = HardwareArrays.from_spec(scenario.hardware, n, prefetch=prefetch, **hardware_params)
    prefill = build_phase(model, w, par, "prefill")
    decode = build_phase(model, w, par, "decode")
    pre = evaluate_pass(prefill, hw)
    steps = DecodeSteps(decode, hw)
    compute_bound = decode.count * ~decode.is_comm
    comm_ops = decode.count * decode.is_comm

    def step(rows: np.ndarray, kv_len: np.ndarray, rec: Recorder) -> np.ndarray:
        res = steps.at(rows, kv_len, rec)
        t = res.times
        is_compute = t.compute_s > t.memory_s  # recorded already by the max in op_times
        compute_s = compute_bound @ (t.total_s * is_compute)
        comm_s = comm_ops @ t.total_s
        memory_s = decode.count @ t.total_s - compute_s - comm_s
        return np.stack([res.base_s, res.time_s, compute_s, memory_s, comm_s], axis=1)

    first, last = decode_kv_range(w)
    means = mean_over_steps(step, np.full(n, first), np.full(n, last))
    steps = w.output_len - 1
    ttft, ttft_base = pre.time_s, pre.base_s
    tpot, tpot_base = means[:, 1], means[:, 0]
    e2e = ttft + steps * tpot
    e2e_base = ttft_base + steps * tpot_base
    scale = w.batch * w.output_len * par.dp
    throughput, throughput_base = scale / e2e, scale / e2e_base

    memory = memory_per_device(model, w, par, 0.0)
    fits = memory.total_bytes <= hw.hbm_capacity_bytes
    device_usd = _cost(scenario, hw, cost_params or _default_cost_parameters())
    system_usd = device_usd * scenario.devices
    return {
        "ttft_ms": ttft * 1e3,
        "tpot_ms": tpot * 1e3,
        "e2e_ms": e2e * 1e3,
        "throughput_tok_s": throughput,
        "baseline_ttft_ms": ttft_base * 1e3,
        "baseline_tpot_ms": tpot_base * 1e3,
        "baseline_e2e_ms": e2e_base * 1e3,
        "baseline_throughput_tok_s": throughput_base,
        "prefetch_speedup": e2e_base / e2e,
        "decode_bound": np.argmax(means[:, 2:5], axis=1),
        "memory_GiB": np.full(n, memory.total_bytes / 2**30),
        "fits": fits,
        "device_cost_usd": device_usd,
        "system_cost_usd": system_usd,
        "tok_s_per_kusd": throughput / system_usd * 1e3,
        "baseline_tok_s_per_kusd": throughput_base / system_usd * 1e3,
    }


def hardware_columns(params: Mapping[str, ArrayLike], n: int) -> dict[str, np.ndarray]:
    """The swept parameters as (n,) columns, for the results table."""
    return {k: np.broadcast_to(np.asarray(v), (n,)) for k, v in params.items()}
