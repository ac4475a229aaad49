"""Silicon formulas: dies per wafer, yield, die cost, SRAM and SerDes area, memory stacks.

Every function broadcasts its array arguments with numpy (no Python loop over configurations);
when every array argument is a scalar the results are numpy scalars.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from roofline.cost.parameters import CostParameters
from roofline.exceptions import SpecError

__all__ = [
    "SRAM_STRUCTURES",
    "dies_per_wafer",
    "dies_per_wafer_of",
    "poisson_yield",
    "murphy_yield",
    "negative_binomial_yield",
    "die_yield",
    "sram_area_mm2",
    "serdes_area_mm2",
    "logic_area_from_total",
    "hbm_stack_count",
    "stack_usd",
    "interposer_area_mm2",
    "die_cost_usd",
]

SRAM_STRUCTURES = ("gpu_l2", "macro")
_CEIL_TOLERANCE = 1e-9  # 3350 / 670 must give 5 stacks, not 6, despite rounding
BYTES_PER_GiB = 2**30


def as_float_array(name: str, value: ArrayLike) -> NDArray[np.float64]:
    """An argument as a float array, rejecting negative or non-finite entries in one line."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"cost argument {name}: not numeric ({exc}); allowed: numbers >= 0") from exc
    if not array.size:
        return array
    # two reductions and no temporaries (a sweep passes every chunk through here): NaN makes the
    # min NaN, inf the max or min infinite
    low, high = np.min(array), np.max(array)
    if not (np.isfinite(low) and np.isfinite(high)):
        raise SpecError(f"cost argument {name}: contains NaN or inf; allowed: finite numbers >= 0")
    if low < 0:
        raise SpecError(f"cost argument {name}: negative value {low:g}; allowed: numbers >= 0")
    return array


def scalar_or_array(value: Any) -> Any:
    """A numpy scalar for a 0-d result, the array otherwise."""
    array = np.asarray(value)
    return array[()] if array.ndim == 0 else array


def dies_per_wafer(die_area_mm2: ArrayLike, wafer_diameter_mm: float = 300.0,
                   edge_exclusion_mm: float = 0.0, scribe_mm: float = 0.0) -> Any:
    """Gross dies per wafer ``pi (d/2)^2 / A - pi d / sqrt(2 A)`` (not rounded down), with
    ``d = diameter - 2 * exclusion`` and each (square) die grown by the scribe lane."""
    area = as_float_array("die_area_mm2", die_area_mm2)
    diameter = wafer_diameter_mm - 2.0 * edge_exclusion_mm
    footprint = (np.sqrt(area) + scribe_mm) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        count = np.pi * (diameter / 2.0) ** 2 / footprint - np.pi * diameter / np.sqrt(2.0 * footprint)
    return scalar_or_array(np.maximum(np.nan_to_num(count, nan=0.0, posinf=0.0), 0.0))


def poisson_yield(die_area_mm2: ArrayLike, defects_per_cm2: ArrayLike) -> Any:
    """Poisson yield ``exp(-A D0)`` (A in cm2)."""
    exposure = as_float_array("die_area_mm2", die_area_mm2) / 100.0 * np.asarray(defects_per_cm2)
    return scalar_or_array(np.exp(-exposure))


def murphy_yield(die_area_mm2: ArrayLike, defects_per_cm2: ArrayLike) -> Any:
    """Murphy yield ``((1 - exp(-A D0)) / (A D0))^2`` (A in cm2; 1 at A D0 = 0)."""
    exposure = as_float_array("die_area_mm2", die_area_mm2) / 100.0 * np.asarray(defects_per_cm2)
    safe = np.where(exposure > 0, exposure, 1.0)
    return scalar_or_array(np.where(exposure > 0, (-np.expm1(-safe) / safe) ** 2, 1.0))


def negative_binomial_yield(die_area_mm2: ArrayLike, defects_per_cm2: ArrayLike,
                            clustering_alpha: float) -> Any:
    """Negative-binomial (Stapper) yield ``(1 + A D0 / alpha)^-alpha`` (A in cm2)."""
    exposure = as_float_array("die_area_mm2", die_area_mm2) / 100.0 * np.asarray(defects_per_cm2)
    return scalar_or_array((1.0 + exposure / clustering_alpha) ** -clustering_alpha)


def die_yield(params: CostParameters, process_node: str, die_area_mm2: ArrayLike) -> Any:
    """Yield of one die with the model and defect density of the cost file."""
    defects = params.per_node("defects.density_per_cm2", process_node)
    model = params.values["defects.yield_model"]
    if model == "murphy":
        return murphy_yield(die_area_mm2, defects)
    if model == "poisson":
        return poisson_yield(die_area_mm2, defects)
    return negative_binomial_yield(die_area_mm2, defects, params.value("defects.clustering_alpha"))


def sram_density_mm2_per_MiB(params: CostParameters, process_node: str, sram_structure: str) -> float:
    """mm2 per MiB of the chosen SRAM structure on a node."""
    if sram_structure not in SRAM_STRUCTURES:
        raise SpecError(f"cost argument sram_structure: {sram_structure!r}; allowed: {', '.join(SRAM_STRUCTURES)}")
    table = "sram.l2_mm2_per_MiB" if sram_structure == "gpu_l2" else "sram.macro_mm2_per_MiB"
    return params.per_node(table, process_node)


def sram_area_mm2(params: CostParameters, process_node: str, l2_MiB: ArrayLike, *,
                  sram_structure: str = "gpu_l2") -> Any:
    """Die area of an L2 of ``l2_MiB``: ``l2_MiB * mm2_per_MiB(node)``; ``gpu_l2`` is cache SRAM
    with tags, ECC and periphery, ``macro`` dense scratchpad macros."""
    density = sram_density_mm2_per_MiB(params, process_node, sram_structure)
    return scalar_or_array(as_float_array("l2_MiB", l2_MiB) * density)


def serdes_area_mm2(params: CostParameters, process_node: str, link_bandwidth_GBps: ArrayLike) -> Any:
    """Die area of the link PHYs: ``bandwidth * interconnect.serdes_mm2_per_GBps[node]``."""
    per_GBps = params.per_node("interconnect.serdes_mm2_per_GBps", process_node)
    return scalar_or_array(as_float_array("link_bandwidth_GBps", link_bandwidth_GBps) * per_GBps)


def logic_area_from_total(params: CostParameters, process_node: str, die_area_mm2: ArrayLike,
                          l2_MiB: ArrayLike, *, sram_structure: str = "gpu_l2",
                          link_bandwidth_GBps: ArrayLike = 0.0) -> Any:
    """Area of a published die that is neither its L2 nor its link PHYs:
    ``die_area - l2_MiB * mm2_per_MiB(node) - link_bandwidth * serdes_mm2_per_GBps(node)``.

    Raises:
        SpecError: The L2 and PHYs would not fit in the published die area.
    """
    total = as_float_array("die_area_mm2", die_area_mm2)
    logic = (total - np.asarray(sram_area_mm2(params, process_node, l2_MiB, sram_structure=sram_structure))
             - np.asarray(serdes_area_mm2(params, process_node, link_bandwidth_GBps)))
    if np.any(logic <= 0):
        raise SpecError(
            f"cost argument l2_MiB: the L2 ({sram_structure}, {params.node(process_node)}) needs more "
            f"area than the die ({np.min(total):g} mm2); allowed: an L2 smaller than the die "
            f"(or sram_structure='macro', or a smaller sram.l2_mm2_per_MiB)")
    return scalar_or_array(logic)


def hbm_stack_count(params: CostParameters, hbm_generation: str, hbm_capacity_GiB: ArrayLike,
                    hbm_bandwidth_GBps: ArrayLike, stack_capacity_GiB: float | None = None) -> Any:
    """Stacks needed: ``max(ceil(bandwidth / stack bandwidth), ceil(capacity / stack capacity))``
    (integers; 0 when both are 0). ``stack_capacity_GiB`` replaces the file's value."""
    per_stack_bw = params.per_generation("hbm.stack_bandwidth_GBps", hbm_generation)
    per_stack_cap = stack_capacity_GiB or params.per_generation("hbm.stack_capacity_GiB", hbm_generation)
    by_bw = np.ceil(as_float_array("hbm_bandwidth_GBps", hbm_bandwidth_GBps) / per_stack_bw - _CEIL_TOLERANCE)
    by_cap = np.ceil(as_float_array("hbm_capacity_GiB", hbm_capacity_GiB) / per_stack_cap - _CEIL_TOLERANCE)
    return scalar_or_array(np.maximum(np.maximum(by_bw, by_cap), 0).astype(np.int64))


def stack_usd(params: CostParameters, hbm_generation: str, stack_capacity_GiB: float | None = None) -> float:
    """Price of one stack: its capacity in GB (1e9 bytes, not GiB) times ``hbm.usd_per_GB``."""
    capacity_GiB = stack_capacity_GiB or params.per_generation("hbm.stack_capacity_GiB", hbm_generation)
    return capacity_GiB * BYTES_PER_GiB / 1e9 * params.per_generation("hbm.usd_per_GB", hbm_generation)


def interposer_area_mm2(params: CostParameters, die_area_mm2: ArrayLike, hbm_stacks: ArrayLike) -> Any:
    """Interposer area: ``factor * (die area + stacks * stack footprint)``."""
    silicon = as_float_array("die_area_mm2", die_area_mm2) + as_float_array(
        "hbm_stacks", hbm_stacks) * params.value("hbm.stack_footprint_mm2")
    return scalar_or_array(params.value("packaging.interposer_area_factor") * silicon)


def dies_per_wafer_of(params: CostParameters, die_area_mm2: ArrayLike) -> Any:
    """:func:`dies_per_wafer` with the wafer geometry of the cost file."""
    return dies_per_wafer(die_area_mm2, wafer_diameter_mm=params.value("wafer.diameter_mm"),
                          edge_exclusion_mm=params.value("wafer.edge_exclusion_mm"),
                          scribe_mm=params.value("wafer.scribe_mm"))


def die_cost_usd(params: CostParameters, process_node: str, die_area_mm2: ArrayLike,
                 num_dies: ArrayLike = 1) -> Any:
    """Known-good logic dies of one device: ``n * wafer / (DPW(A/n) * Y(A/n))``."""
    dies = as_float_array("num_dies", num_dies)
    per_die = as_float_array("die_area_mm2", die_area_mm2) / np.maximum(dies, 1.0)
    good_per_wafer = np.asarray(dies_per_wafer_of(params, per_die)) * np.asarray(
        die_yield(params, process_node, per_die))
    with np.errstate(divide="ignore"):
        cost = dies * params.per_node("wafer.usd_per_wafer", process_node) / good_per_wafer
    return scalar_or_array(cost)
