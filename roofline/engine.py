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

from roofline.cost import CostParameters, load_cost_parameters
from roofline.economics import economic_columns
from roofline.graph import build_phase
from roofline.hardware import HardwareSpec
from roofline.metrics import descriptions
from roofline.model import ModelSpec
from roofline.placement import place_blocks
from roofline.power import EnergyRates, energy_rates
from roofline.predict import decode_kv_range, memory_per_device
from roofline.static_kernel import static_phases
from roofline.timing import HardwareArrays
from roofline.workload import Parallelism, PrefetchSettings, Workload

__all__ = ["Scenario", "evaluate_configs", "METRICS", "BOUNDS"]

BOUNDS = ("compute", "memory", "comm")

#: Columns evaluate_configs returns, with their meaning (roofline.metrics, stages engine and economics).
METRICS = descriptions("engine", "economics")


@dataclass(frozen=True)
class Scenario:
    """What stays fixed while hardware parameters vary (prefetching: off unless the scenario says)."""

    model: ModelSpec
    workload: Workload
    parallelism: Parallelism
    hardware: HardwareSpec
    #: blocks pinned to a memory tier, e.g. (("kv_cache", "lpddr"),) (roofline.placement)
    pins: tuple[tuple[str, str], ...] = ()
    prefetch: PrefetchSettings = PrefetchSettings()

    @property
    def devices(self) -> int:
        return self.parallelism.devices


@functools.lru_cache(maxsize=1)
def _default_cost_parameters() -> CostParameters:
    return load_cost_parameters()


def _rates(scenario: Scenario, params: CostParameters) -> EnergyRates | None:
    return None if scenario.hardware.die is None else energy_rates(params, scenario.hardware)


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
        prefetch: bool per configuration (default: ``scenario.prefetch.enabled``, off).
        cost_params: cost model parameters (default: cost_specs/default.yaml).
        **hardware_params: sweepable parameters (units in the names, see
            ``roofline.timing.SWEEPABLE``), e.g. ``l2_capacity_MiB=np.array([0, 64, 128])``.

    Returns:
        Column name -> array of shape (n,); see :data:`METRICS`. Times in milliseconds.
    """
    model, w, par = scenario.model, scenario.workload, scenario.parallelism
    hw = HardwareArrays.from_spec(scenario.hardware, n, prefetch=prefetch,
                                  collective_library=w.collective_library, async_tp=w.async_tp,
                                  prefetch_settings=scenario.prefetch, **hardware_params)
    memory = memory_per_device(model, w, par, 0.0)
    hw = place_blocks(hw, memory.weights_bytes, memory.kv_cache_bytes, memory.activation_bytes,
                      dict(scenario.pins), scenario.hardware.name)
    prefill = build_phase(model, w, par, "prefill")
    decode = build_phase(model, w, par, "decode")
    params = cost_params or _default_cost_parameters()
    rates = _rates(scenario, params)
    first, last = decode_kv_range(w)
    phases = static_phases(prefill, decode, hw, rates, first, last)
    means = phases.decode_means
    steps = w.output_len - 1
    ttft, ttft_base = phases.ttft_s, phases.ttft_base_s
    tpot, tpot_base = means[:, 1], means[:, 0]
    e2e = ttft + steps * tpot
    e2e_base = ttft_base + steps * tpot_base
    scale = w.batch * w.output_len * par.dp
    throughput, throughput_base = scale / e2e, scale / e2e_base

    fits = memory.total_bytes <= hw.placement_capacity_bytes
    economics = economic_columns(
        params, scenario.hardware, hw, devices=scenario.devices, tokens_per_request=scale, steps=steps,
        throughput_tok_s=throughput, baseline_throughput_tok_s=throughput_base, prefill_j=phases.prefill_j,
        prefill_capped_s=phases.prefill_capped_s, decode_j=means[:, 5], decode_capped_s=means[:, 6])
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
        **economics,
    }


def hardware_columns(params: Mapping[str, ArrayLike], n: int) -> dict[str, np.ndarray]:
    """The swept parameters as (n,) columns, for the results table."""
    return {k: np.broadcast_to(np.asarray(v), (n,)) for k, v in params.items()}
