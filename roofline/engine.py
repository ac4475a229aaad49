"""One evaluation path: n hardware configurations of one scenario at once; ``predict`` is n = 1.

A scenario fixes the model, workload, parallelism and base device; the operator tables are built
once (cached) and evaluated against arrays of hardware parameters (numpy broadcasting; no Python
loop over configurations). :func:`evaluate` returns one :class:`Evaluation` whatever n is: the
metric columns of :mod:`roofline.metrics` (stages engine and economics) and what the per-operator
detail of a row needs. A :class:`roofline.Prediction` is its first row plus those detail tables.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from roofline.cost import CostParameters, load_cost_parameters
from roofline.economics import economic_columns
from roofline.fitted import SoftwareOverheads
from roofline.graph import MemoryReport, OpTable, build_phase, decode_kv_range, memory_footprint
from roofline.hardware import HardwareSpec
from roofline.metrics import descriptions
from roofline.model import ModelSpec
from roofline.placement import place_blocks
from roofline.power import EnergyRates, energy_rates
from roofline.registry import check_overrides
from roofline.static_kernel import static_phases
from roofline.timing import HardwareArrays
from roofline.workload import Parallelism, PrefetchSettings, Workload

__all__ = ["Scenario", "Evaluation", "evaluate", "evaluate_configs", "scenario_arrays", "with_overheads", "METRICS",
           "BOUNDS"]

BOUNDS = ("compute", "memory", "comm")

#: Columns :func:`evaluate` returns, with their meaning (roofline.metrics, stages engine and economics).
METRICS = descriptions("engine", "economics")


@dataclass(frozen=True)
class Scenario:
    """What stays fixed while hardware parameters vary (prefetching: off unless the scenario says).

    ``overheads``: fitted software overheads added to the roofline times (:mod:`roofline.fitted`);
    None, the default of a Scenario built by hand, is the raw roofline. ``roofline.predict`` and
    sweep files build theirs with the fitted model by default.
    """

    model: ModelSpec
    workload: Workload
    parallelism: Parallelism
    hardware: HardwareSpec
    #: blocks pinned to a memory tier, e.g. (("kv_cache", "lpddr"),) (roofline.placement)
    pins: tuple[tuple[str, str], ...] = ()
    prefetch: PrefetchSettings = PrefetchSettings()
    overheads: SoftwareOverheads | None = None

    @property
    def devices(self) -> int:
        return self.parallelism.devices


@functools.lru_cache(maxsize=1)
def _default_cost_parameters() -> CostParameters:
    return load_cost_parameters()


#: Energy rates by (params, device) identity: they depend only on the scenario and the cost file,
#: and a single prediction would otherwise spend a tenth of its time re-deriving them.
_RATES: dict[tuple[int, int], tuple[CostParameters, HardwareSpec, EnergyRates]] = {}


def _rates(scenario: Scenario, params: CostParameters) -> EnergyRates | None:
    spec = scenario.hardware
    if spec.die is None:
        return None
    hit = _RATES.get((id(params), id(spec)))
    if hit is not None and hit[0] is params and hit[1] is spec:  # ids are reused once freed
        return hit[2]
    if len(_RATES) > 256:
        _RATES.clear()
    rates = energy_rates(params, spec)
    _RATES[(id(params), id(spec))] = (params, spec, rates)
    return rates


@dataclass(frozen=True)
class Evaluation:
    """``n`` configurations of one scenario: metric columns, exact times and the detail inputs."""

    scenario: Scenario
    #: the configurations, with the weights and KV cache placed in their memory tiers (scenario_arrays)
    arrays: HardwareArrays
    #: bytes per device (the same for every configuration; capacity 0, see ``arrays``)
    footprint: MemoryReport
    #: metric name -> (n,) array: :data:`METRICS` (times in milliseconds)
    columns: dict[str, np.ndarray]
    #: ttft_s, tpot_s, e2e_s and their baseline_* -> (n,) seconds
    seconds: dict[str, np.ndarray]
    #: the operator tables (the per-operator detail of a row re-times them on demand)
    prefill: OpTable
    decode: OpTable
    #: KV lengths attended by the first and the last decode step
    kv_range: tuple[int, int]
    cost_basis: str

    @property
    def n(self) -> int:
        return self.arrays.n

    def row(self, i: int = 0) -> dict[str, Any]:
        """Metrics of configuration ``i`` as Python scalars (``decode_bound`` by name)."""
        out: dict[str, Any] = {}
        for k, v in self.columns.items():
            x = v[i]
            out[k] = BOUNDS[int(x)] if k == "decode_bound" else bool(x) if v.dtype == bool else float(x)
        return out


def scenario_arrays(scenario: Scenario, n: int = 1, *, prefetch: ArrayLike | None = None,
                    **hardware_params: ArrayLike) -> HardwareArrays:
    """The hardware arrays of ``n`` configurations of ``scenario``: its base device with
    ``hardware_params`` swept, the scenario's collective library, async TP and prefetching, and
    the weights and KV cache placed in the memory tiers (HBM first, then the scenario's pins)."""
    w = scenario.workload
    arrays = HardwareArrays.from_spec(scenario.hardware, n, prefetch=prefetch,
                                      collective_library=w.collective_library, async_tp=w.async_tp,
                                      prefetch_settings=scenario.prefetch, **hardware_params)
    memory = memory_footprint(scenario.model, w, scenario.parallelism)
    return place_blocks(arrays, memory.weights_bytes, memory.kv_cache_bytes, memory.activation_bytes,
                        dict(scenario.pins), scenario.hardware.name)


def evaluate(scenario: Scenario, arrays: HardwareArrays, cost_params: CostParameters | None = None, *,
             compiled: bool | None = None) -> Evaluation:
    """Every metric of the ``arrays.n`` configurations ``arrays`` of ``scenario``.

    Args:
        scenario: model, workload, parallelism, base device, pins and prefetch settings.
        arrays: the configurations, blocks placed (:func:`scenario_arrays`).
        cost_params: cost model parameters (default: cost_specs/default.yaml).
        compiled: the compiled kernel of the static phases (:mod:`roofline.static_kernel`, equal to
            the numpy path to 1e-12): None from its size threshold on, True wherever it covers the
            configurations, False never (``predict``: one prediction never waits for a compilation).

    Returns:
        An :class:`Evaluation`; ``.columns`` are (n,) arrays, see :data:`METRICS`.
    """
    model, w, par = scenario.model, scenario.workload, scenario.parallelism
    n = arrays.n
    memory = memory_footprint(model, w, par)
    hw = arrays
    prefill = build_phase(model, w, par, "prefill")
    decode = build_phase(model, w, par, "decode")
    params = cost_params or _default_cost_parameters()
    rates = _rates(scenario, params)
    first, last = decode_kv_range(w)
    phases = static_phases(prefill, decode, hw, rates, first, last, compiled=compiled)
    means = phases.decode_means
    decode_steps = w.output_len - 1
    ttft, ttft_base = phases.ttft_s, phases.ttft_base_s
    tpot, tpot_base = means[:, 1], means[:, 0]
    prefill_capped_s, decode_capped_s = phases.prefill_capped_s, means[:, 6]
    if scenario.overheads is not None:
        o = scenario.overheads.for_model(model).for_parallelism(par.tp)
        (ttft_base, tpot_base), (ttft_fit, tpot_fit) = (with_overheads(o, w.batch, ttft_base, tpot_base),
                                                        with_overheads(o, w.batch, ttft, tpot))
        # the overhead time is idle on the device: static power only, so the TDP-capped times grow by it
        prefill_capped_s = prefill_capped_s + (ttft_fit - ttft)
        decode_capped_s = decode_capped_s + (tpot_fit - tpot)
        ttft, tpot = ttft_fit, tpot_fit
    e2e = ttft + decode_steps * tpot
    e2e_base = ttft_base + decode_steps * tpot_base
    scale = w.batch * w.output_len * par.dp
    throughput, throughput_base = scale / e2e, scale / e2e_base

    fits = memory.total_bytes <= hw.placement_capacity_bytes
    economics = economic_columns(
        params, scenario.hardware, hw, devices=scenario.devices, tokens_per_request=scale, steps=decode_steps,
        throughput_tok_s=throughput, baseline_throughput_tok_s=throughput_base, prefill_j=phases.prefill_j,
        prefill_capped_s=prefill_capped_s, decode_j=means[:, 5], decode_capped_s=decode_capped_s,
        rates=rates)
    columns = {
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
    seconds = {"ttft_s": ttft, "tpot_s": tpot, "e2e_s": e2e, "baseline_ttft_s": ttft_base,
               "baseline_tpot_s": tpot_base, "baseline_e2e_s": e2e_base}
    return Evaluation(scenario, hw, memory, columns, seconds, prefill, decode, (first, last), params.basis)


def with_overheads(overheads: SoftwareOverheads, batch: int, ttft_s: np.ndarray,
                   tpot_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TTFT and TPOT (seconds, any shape) of a static batch of ``batch`` sequences per replica with
    the fitted software overheads, as the serving model defines them (roofline.serving.analytic):
    the prefill pass is one engine step of the whole batch after the request overhead, every decode
    step pays the step overhead and the per-sequence overhead of each running sequence."""
    o = overheads
    per_step_s = o.step_overhead_s + o.seq_overhead_s * batch
    return (o.request_overhead_s + o.prefill_scale * ttft_s + per_step_s,
            o.decode_scale * tpot_s + per_step_s)


def evaluate_configs(
    scenario: Scenario,
    n: int = 1,
    *,
    prefetch: ArrayLike | None = None,
    cost_params: CostParameters | None = None,
    **hardware_params: ArrayLike,
) -> dict[str, np.ndarray]:
    """Metrics of ``n`` hardware configurations of ``scenario``: ``evaluate(...).columns``.

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
    arrays = scenario_arrays(scenario, n, prefetch=prefetch, **hardware_params)
    check_overrides(hardware_params)  # the bounds of spec files and sweeps: a zero bandwidth is NaN
    return evaluate(scenario, arrays, cost_params).columns
