"""Component cost model: what a device and its share of the server cost, on a named basis.

Three modules, one concept each:

- :mod:`roofline.cost.parameters`: the sourced YAML of ``cost_specs/`` (read with the same spec
  reader as hardware and models), dotted keys, overrides and plausible ranges;
- :mod:`roofline.cost.silicon`: wafer, yield, die, SRAM, SerDes and memory-stack formulas;
- :mod:`roofline.cost.device`: a device assembled from its parts, and a hardware spec's cost;

plus :mod:`roofline.cost.price` (manufacturing cost or price, and the margin fitted to the
bundled devices' prices) and :mod:`roofline.cost.tco` (total cost of ownership). See
``docs/cost_model.md`` for every formula and parameter.
"""

from roofline.cost.device import (
    CostBreakdown,
    CostTotals,
    device_cost,
    die_of,
    hardware_cost,
    hardware_cost_totals,
    spec_logic_area_mm2,
    system_cost,
)
from roofline.cost.parameters import (
    COST_BASES,
    DEFAULT_COST_SPEC,
    TOPOLOGIES,
    CostParameters,
    load_cost_parameters,
)
from roofline.cost.price import MarginFit, basis_total_usd, fit_margin, module_price_usd
from roofline.cost.silicon import (
    die_cost_usd,
    die_yield,
    dies_per_wafer,
    hbm_stack_count,
    interposer_area_mm2,
    logic_area_from_total,
    murphy_yield,
    negative_binomial_yield,
    poisson_yield,
    serdes_area_mm2,
    sram_area_mm2,
    stack_usd,
)
from roofline.exceptions import SpecError

__all__ = [
    "COST_BASES", "DEFAULT_COST_SPEC", "TOPOLOGIES", "CostParameters", "load_cost_parameters",
    "CostBreakdown", "CostTotals", "device_cost", "die_of", "hardware_cost", "hardware_cost_totals", "spec_logic_area_mm2", "system_cost",
    "MarginFit", "basis_total_usd", "fit_margin", "module_price_usd",
    "dies_per_wafer", "die_cost_usd", "die_yield", "hbm_stack_count", "interposer_area_mm2",
    "logic_area_from_total", "murphy_yield", "negative_binomial_yield", "poisson_yield",
    "serdes_area_mm2", "sram_area_mm2", "stack_usd", "SpecError",
]
