"""Cost, power and TCO of serving operating points: the step energy of
:mod:`roofline.serving.energy` priced by :func:`roofline.economics.serving_economic_columns`.

``roofline serve`` rows and the ``serving:`` columns of a sweep both call
:func:`operating_point_economics`, so a serve row and a sweep point agree.
"""

from __future__ import annotations

import numpy as np

from roofline.cost import CostParameters
from roofline.economics import SERVING_ECONOMIC_METRICS, serving_economic_columns
from roofline.hardware import HardwareSpec
from roofline.model import ModelSpec
from roofline.power import energy_rates
from roofline.serving.energy import StepEnergy, build_step_energy, serving_power_w
from roofline.serving.settings import EngineSettings
from roofline.timing import HardwareArrays
from roofline.workload import Parallelism, Workload

__all__ = ["operating_point_economics", "step_energy_of", "SERVING_ECONOMIC_METRICS"]


def operating_point_economics(
    params: CostParameters,
    model: ModelSpec,
    workload: Workload,
    par: Parallelism,
    spec: HardwareSpec,
    hw: HardwareArrays,
    settings: EngineSettings,
    *,
    throughput_rps: np.ndarray,
    throughput_tok_s: np.ndarray,
    goodput_tok_s: np.ndarray,
    mean_step_s: np.ndarray,
    mean_running: np.ndarray,
    prompt: np.ndarray | float,
    prefill: np.ndarray | float,
    output: np.ndarray | float,
    step_energy: StepEnergy | None = None,
) -> dict[str, np.ndarray]:
    """:data:`SERVING_ECONOMIC_METRICS` of operating points of one replica (``tp x pp`` devices).

    ``hw`` has one configuration per operating point, or one for all of them; the throughputs,
    mean step time (s) and mean running requests come from the serving evaluator, the lengths are
    a request's mean prompt, computed prompt (after prefix-cache hits) and output tokens.
    ``step_energy``: the energy tables of ``hw`` when the caller has them (:func:`step_energy_of`).
    """
    n = np.broadcast_shapes(np.shape(throughput_tok_s), (hw.n,))[0]
    if spec.die is None:
        return {k: np.full(n, np.nan) for k in SERVING_ECONOMIC_METRICS}
    rates = energy_rates(params, spec)
    energy = step_energy or step_energy_of(params, model, workload, par, spec, hw, settings)
    power = serving_power_w(energy, rates, throughput_rps=throughput_rps, mean_step_s=mean_step_s,
                            mean_running=mean_running, prompt=prompt, prefill=prefill, output=output,
                            max_num_batched_tokens=settings.max_num_batched_tokens,
                            verify_tokens=settings.speculative.verify_tokens,
                            tokens_per_step=settings.speculative.tokens_per_step)
    return serving_economic_columns(params, spec, hw, devices=par.tp * par.pp, throughput_tok_s=throughput_tok_s,
                                    goodput_tok_s=goodput_tok_s, power_w=power.power_w,
                                    sustained_scale=power.sustained_scale)


def step_energy_of(params: CostParameters, model: ModelSpec, workload: Workload, par: Parallelism,
                   spec: HardwareSpec, hw: HardwareArrays, settings: EngineSettings) -> StepEnergy:
    """The step-energy tables of ``hw`` for the engine ``settings`` (the device needs a ``die`` block)."""
    s = settings
    return build_step_energy(model, workload, par, hw, energy_rates(params, spec),
                             s.max_num_batched_tokens + s.max_num_seqs * s.speculative.verify_tokens, s.attention_dp)
