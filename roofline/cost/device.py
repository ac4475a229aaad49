"""Device assembly: a device's manufacturing cost from its parts, and the cost of a device spec.

The chain for one device (``docs/cost_model.md`` gives every parameter and its source):

1. die area ``A = logic + L2 MiB * sram_mm2_per_MiB(node) + link GB/s * serdes_mm2_per_GBps(node)``;
   a part of ``num_dies`` dies is ``num_dies`` dies of ``A / num_dies``. Dies above the reticle
   are priced and flagged.
2. dies per wafer, negative-binomial yield and known-good die cost (:mod:`roofline.cost.silicon`).
3. memory: per generation, ``stacks = max(ceil(bandwidth / stack bandwidth), ceil(capacity / stack
   capacity))`` at ``stack GB * $/GB`` a stack (GB = 1e9 bytes); more bandwidth buys more stacks or,
   when cheaper, stacks of a faster generation of the same family (HBM3 -> HBM3e).
4. interposer ``factor * (A + stacks * footprint)`` for HBM (GDDR sits on the board), test and
   assembly; a failed assembly loses its known-good dies, stacks and interposer.
5. links: the switch share for a switched fabric, board traces/cables for every topology, and
   switch ports and optics for the inter-node bandwidth when the system spans nodes.
6. the host share of the server.
7. memory tiers beyond HBM (Grace LPDDR5X, CXL): capacity x $/GB and the CPU share they bring.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from roofline.cost.parameters import TOPOLOGIES, CostParameters
from roofline.cost.silicon import (
    as_float_array,
    die_cost_usd,
    die_yield,
    dies_per_wafer_of,
    hbm_stack_count,
    logic_area_from_total,
    scalar_or_array,
    serdes_area_mm2,
    sram_density_mm2_per_MiB,
    stack_usd,
)
from roofline.exceptions import SpecError
from roofline.hardware import HardwareSpec

__all__ = ["CostBreakdown", "CostTotals", "device_cost", "hardware_cost_totals", "system_cost", "spec_logic_area_mm2", "hardware_cost", "die_of",
           "memory_tiers_usd"]


@dataclass(frozen=True)
class CostBreakdown:
    """Per-device manufacturing cost and the quantities behind it (arrays, or numpy scalars).

    The ``*_usd`` lines add up to ``total_usd``:
    ``die + hbm + packaging + assembly_loss + interconnect + board_system + memory_tiers``.
    """

    logic_area_mm2: Any  #: area that is neither L2 nor link PHYs
    sram_area_mm2: Any  #: L2 area
    serdes_area_mm2: Any  #: link PHY area
    die_area_mm2: Any  #: all logic silicon (sum over dies)
    per_die_area_mm2: Any
    num_dies: Any
    exceeds_reticle: Any  #: a die is larger than ``die.reticle_limit_mm2``
    dies_per_wafer: Any
    die_yield: Any
    hbm_generation: Any  #: index into ``params.hbm_generations`` of the generation bought
    hbm_stacks: Any  #: stacks (GDDR: chips), integer
    interposer_area_mm2: Any  #: 0 for GDDR parts
    assembly_yield: Any
    die_usd: Any  #: known-good logic dies
    hbm_usd: Any  #: stacks x stack GB x $/GB
    packaging_usd: Any  #: interposer + test and assembly
    assembly_loss_usd: Any  #: dies, stacks and interposer lost in failed assemblies
    interconnect_usd: Any  #: switch share, board/cables per GB/s, scale-out ports and optics
    board_system_usd: Any  #: host share (CPUs, memory, NICs, power, chassis)
    total_usd: Any  #: one device in a system, manufacturing basis
    memory_tiers_usd: Any  #: tiers beyond HBM (LPDDR, CXL) and the share of the CPU they hang off

    @property
    def module_usd(self) -> Any:
        """The accelerator module alone (dies, memory, package, test, assembly losses): what
        published "cost to make an H100" figures estimate, and what a module price is compared to."""
        return self.die_usd + self.hbm_usd + self.packaging_usd + self.assembly_loss_usd

    def to_dict(self) -> dict[str, Any]:
        """Every field plus ``module_usd``, for reports and ``pandas.DataFrame(...)``."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["module_usd"] = self.module_usd
        return out


def _family(generation: str) -> str:
    return "".join(ch for ch in generation.upper() if ch.isalpha()).rstrip("E") or generation


def _memory_options(params: CostParameters, generation: str, upgrade: bool) -> list[str]:
    """The device's generation, then the faster ones of its family it may buy instead."""
    if not upgrade:
        return [generation]
    own_bw = params.value(f"hbm.stack_bandwidth_GBps.{generation}")
    return [generation] + [g for g in params.hbm_generations if g != generation
                           and _family(g) == _family(generation)
                           and params.value(f"hbm.stack_bandwidth_GBps.{g}") > own_bw]


def _package(params: CostParameters, option: str, stacks: np.ndarray, stack_GiB: float | None,
             die_area: np.ndarray, dies: np.ndarray, die_usd: np.ndarray, lines: bool = True) -> dict[str, np.ndarray]:
    """Memory, interposer, test and assembly losses of a module with ``stacks`` of ``option``
    (``lines`` False: only ``module_usd``, what a total needs)."""
    on_interposer = params.value(f"hbm.on_interposer.{option}")
    hbm_usd = stacks * stack_usd(params, option, stack_GiB)
    interposer = on_interposer * params.value("packaging.interposer_area_factor") * (
        die_area + stacks * params.value("hbm.stack_footprint_mm2"))
    interposer_usd = interposer * params.value("packaging.usd_per_interposer_mm2")
    bond = params.value("packaging.bond_yield_per_component")
    if on_interposer:
        assembly_yield = params.value("packaging.assembly_yield") * bond ** (stacks + dies - 1)
    else:  # organic flip-chip package: only the dies are bonded, GDDR sits on the board
        assembly_yield = bond**dies * np.ones_like(stacks, dtype=float)
    at_risk = die_usd + on_interposer * (hbm_usd + interposer_usd)
    packaging_usd = interposer_usd + params.value("packaging.test_assembly_usd")
    assembly_loss_usd = at_risk * (1.0 / assembly_yield - 1.0)
    module_usd = die_usd + hbm_usd + packaging_usd + assembly_loss_usd
    if not lines:
        return {"module_usd": module_usd}
    return {
        "hbm_generation": np.full(stacks.shape, params.hbm_generations.index(option)),
        "hbm_stacks": stacks.astype(np.int64), "interposer_area_mm2": interposer,
        "assembly_yield": assembly_yield, "hbm_usd": hbm_usd, "packaging_usd": packaging_usd,
        "assembly_loss_usd": assembly_loss_usd, "module_usd": module_usd,
    }


def _memory_package(params: CostParameters, generation: str, capacity: np.ndarray, bandwidth: np.ndarray,
                    stack_GiB: float | None, stock_stacks: int | None, die_area: np.ndarray,
                    dies: np.ndarray, die_usd: np.ndarray, lines: bool = True) -> dict[str, np.ndarray]:
    """The cheapest module that delivers the capacity and bandwidth.

    The device's own generation, except where it would need more than ``stock_stacks`` stacks:
    there the cheapest module of it and the faster generations of its family, never cheaper than
    the device as sold (so cost stays monotone in bandwidth and capacity; the difference is
    charged to the memory line).
    """
    own_stacks = np.asarray(hbm_stack_count(params, generation, capacity, bandwidth, stack_GiB))
    best = _package(params, generation, own_stacks, stack_GiB, die_area, dies, die_usd, lines)
    options = _memory_options(params, generation, stock_stacks is not None)
    if len(options) == 1:
        return best
    outgrown = own_stacks > stock_stacks
    floor = _package(params, generation, np.minimum(own_stacks, stock_stacks), stack_GiB, die_area, dies,
                     die_usd, lines=False)["module_usd"]
    for option in options[1:]:  # a few generations, not configurations
        stacks = np.asarray(hbm_stack_count(params, option, capacity, bandwidth))
        upgrade = _package(params, option, stacks, None, die_area, dies, die_usd, lines)
        lift = np.maximum(floor - upgrade["module_usd"], 0.0)
        if lines:
            upgrade["hbm_usd"] = upgrade["hbm_usd"] + lift
        upgrade["module_usd"] = upgrade["module_usd"] + lift
        better = outgrown & (upgrade["module_usd"] < best["module_usd"])
        best = {k: np.where(better, upgrade[k], best[k]) for k in best}
    return best


def device_cost(
    params: CostParameters,
    *,
    process_node: str,
    logic_area_mm2: ArrayLike,
    l2_MiB: ArrayLike,
    hbm_capacity_GiB: ArrayLike,
    hbm_bandwidth_GBps: ArrayLike,
    hbm_generation: str,
    link_bandwidth_GBps: ArrayLike,
    num_dies: ArrayLike = 1,
    link_topology: str = "switched",
    sram_structure: str = "gpu_l2",
    stack_capacity_GiB: float | None = None,
    scale_out_GBps: ArrayLike = 0.0,
    stock_stacks: int | None = None,
) -> CostBreakdown:
    """Manufacturing cost of one device and its share of the server, broadcast over arrays.

    Args:
        params: Cost parameters (:func:`roofline.cost.load_cost_parameters`).
        process_node: Logic process node or alias (``"N4"``, ``"4N"``, ``"SMIC-N+1"``).
        logic_area_mm2: Die area that is neither L2 nor link PHYs.
        l2_MiB: L2 capacity; adds ``l2_MiB * sram.l2_mm2_per_MiB[node]`` of die area.
        hbm_capacity_GiB, hbm_bandwidth_GBps: memory the device needs.
        hbm_generation: ``"HBM3"``, ``"GDDR6"``... (any key of ``hbm.usd_per_GB``).
        link_bandwidth_GBps: scale-up bandwidth per device, per direction (H100: 450); adds
            SerDes area and the per-GB/s fabric cost.
        num_dies: equal dies the logic is split into (B200: 2); yield is per die.
        link_topology: ``"switched"`` (pays the switch share) or ``"full_mesh"``.
        sram_structure: ``"gpu_l2"`` (cache with tags) or ``"macro"`` SRAM density.
        stack_capacity_GiB: capacity of one stack of ``hbm_generation`` (default: the file's).
        scale_out_GBps: inter-node bandwidth per device when the system spans nodes (else 0).
        stock_stacks: the device's stack count as sold; where more stacks of its generation would be
            needed, stacks of a faster generation of its family are bought if cheaper (None: never).

    Raises:
        SpecError: Unknown node, generation or topology; negative arguments; a die of no area.
    """
    return _device_cost(params, process_node, logic_area_mm2, l2_MiB, hbm_capacity_GiB, hbm_bandwidth_GBps,
                        hbm_generation, link_bandwidth_GBps, num_dies, link_topology, sram_structure,
                        stack_capacity_GiB, scale_out_GBps, stock_stacks, lines=True)


@dataclass(frozen=True)
class CostTotals:
    """The two lines of a :class:`CostBreakdown` a metric column needs (a sweep prices every
    configuration; the other lines would cost it twice as much)."""

    total_usd: Any
    module_usd: Any


def _device_cost(params: CostParameters, process_node: str, logic_area_mm2: ArrayLike, l2_MiB: ArrayLike,
                 hbm_capacity_GiB: ArrayLike, hbm_bandwidth_GBps: ArrayLike, hbm_generation: str,
                 link_bandwidth_GBps: ArrayLike, num_dies: ArrayLike, link_topology: str, sram_structure: str,
                 stack_capacity_GiB: float | None, scale_out_GBps: ArrayLike, stock_stacks: int | None, *,
                 lines: bool) -> CostBreakdown | CostTotals:
    """:func:`device_cost`; ``lines`` False: only its total and module lines (same arithmetic)."""
    node = params.node(process_node)
    generation = params.generation(hbm_generation)
    if link_topology not in TOPOLOGIES:
        raise SpecError(f"cost argument link_topology: {link_topology!r}; allowed: {', '.join(TOPOLOGIES)}")
    logic, l2, capacity, bandwidth, link, dies, scale_out = np.broadcast_arrays(
        as_float_array("logic_area_mm2", logic_area_mm2), as_float_array("l2_MiB", l2_MiB),
        as_float_array("hbm_capacity_GiB", hbm_capacity_GiB),
        as_float_array("hbm_bandwidth_GBps", hbm_bandwidth_GBps),
        as_float_array("link_bandwidth_GBps", link_bandwidth_GBps), as_float_array("num_dies", num_dies),
        as_float_array("scale_out_GBps", scale_out_GBps))
    if np.any(dies < 1) or np.any(dies != np.round(dies)):
        raise SpecError("cost argument num_dies: must be whole numbers >= 1; allowed: 1, 2, 3, ...")
    sram = l2 * sram_density_mm2_per_MiB(params, node, sram_structure)
    serdes = np.asarray(serdes_area_mm2(params, node, link))
    die_area = logic + sram + serdes
    if np.any(die_area <= 0):
        raise SpecError("cost argument logic_area_mm2: the die has no area; allowed: logic_area_mm2 > 0")

    die_usd = np.asarray(die_cost_usd(params, node, die_area, dies))
    module = _memory_package(params, generation, capacity, bandwidth, stack_capacity_GiB, stock_stacks,
                             die_area, dies, die_usd, lines)
    interconnect_usd = (link * (params.value(f"interconnect.switch_usd_per_GBps.{link_topology}")
                                + params.value("interconnect.board_usd_per_GBps"))
                        + scale_out * params.value("interconnect.scale_out_usd_per_GBps"))
    host_usd = params.value("system.host_share_usd")
    if not lines:
        module_usd = module["module_usd"]
        return CostTotals(scalar_or_array(module_usd + interconnect_usd + host_usd), scalar_or_array(module_usd))
    per_die = die_area / dies
    board_system = np.full(die_area.shape, host_usd)
    total = module.pop("module_usd") + interconnect_usd + board_system
    lines_usd = {
        "logic_area_mm2": logic, "sram_area_mm2": sram, "serdes_area_mm2": serdes,
        "die_area_mm2": die_area, "per_die_area_mm2": per_die, "num_dies": dies.astype(np.int64),
        "exceeds_reticle": per_die > params.value("die.reticle_limit_mm2"),
        "dies_per_wafer": dies_per_wafer_of(params, per_die), "die_yield": die_yield(params, node, per_die),
        "die_usd": die_usd, **module, "interconnect_usd": interconnect_usd,
        "board_system_usd": board_system, "total_usd": total,
        "memory_tiers_usd": np.zeros(die_area.shape),  # hardware_cost adds a spec's tiers
    }
    return CostBreakdown(**{name: scalar_or_array(value) for name, value in lines_usd.items()})


def system_cost(breakdown: CostBreakdown, num_devices: ArrayLike) -> Any:
    """``num_devices * breakdown.total_usd``: every per-device overhead is inside the total and
    nothing is added per system (racks and data-centre build-out are in the TCO's hosting)."""
    return scalar_or_array(as_float_array("num_devices", num_devices) * np.asarray(breakdown.total_usd))


def spec_logic_area_mm2(params: CostParameters, spec: HardwareSpec) -> float:
    """A device's logic area (neither L2 nor link PHYs): its ``die.logic_area_mm2``, or for a
    legacy spec with ``die.die_area_mm2`` that area minus its own L2 and link PHYs."""
    die = die_of(spec)
    if die.logic_area_mm2 > 0:
        return die.logic_area_mm2
    return float(logic_area_from_total(
        params, die.process_node, die.die_area_mm2, spec.memory.l2_capacity_bytes / 2**20,
        sram_structure=die.l2_sram, link_bandwidth_GBps=spec.intra_node.device_bandwidth_Bps / 1e9))


def die_of(spec: HardwareSpec, params: CostParameters | None = None) -> Any:
    """The ``die`` block of a device spec, or a one-line error saying cost, power and TCO need it.

    With ``params``, its process node and memory generation must be ones the cost file prices; the
    error names the spec file and its field (the cost file's own key told a user nothing about the
    spec to fix)."""
    file = spec.source_file or spec.name
    if spec.die is None:
        raise SpecError(f"{file}: die: missing; cost, power and TCO need the die "
                        "block (process_node, logic_area_mm2, hbm_stacks, hbm_generation, tdp_w)")
    if params is not None:
        for field, canonical in (("process_node", params.node), ("hbm_generation", params.generation)):
            try:
                canonical(getattr(spec.die, field))
            except SpecError as e:
                raise SpecError(f"{file}: die.{field}: {e}") from None
    return spec.die


def hardware_cost(
    params: CostParameters,
    spec: HardwareSpec,
    *,
    l2_MiB: ArrayLike | None = None,
    hbm_capacity_GiB: ArrayLike | None = None,
    hbm_bandwidth_GBps: ArrayLike | None = None,
    link_bandwidth_GBps: ArrayLike | None = None,
    spans_nodes: bool = False,
    tier_capacity_GiB: Mapping[str, ArrayLike] | None = None,
) -> CostBreakdown:
    """Manufacturing cost of a device spec, with any of its swept parameters replaced by arrays.

    The device's own stack capacity (``hbm_capacity / die.hbm_stacks``) prices its generation, so
    its stock stack count is the one in its spec (MI300X: 8 x 24 GiB, not 12 x 16). Memory tiers
    beyond HBM add :func:`memory_tiers_usd` (``tier_capacity_GiB``: swept capacities by tier name).
    """
    breakdown = _spec_device_cost(params, spec, l2_MiB, hbm_capacity_GiB, hbm_bandwidth_GBps, link_bandwidth_GBps,
                                  spans_nodes, lines=True)
    if not spec.memory.extra_tiers:
        return breakdown
    tiers = memory_tiers_usd(params, spec, tier_capacity_GiB)
    return replace(breakdown, memory_tiers_usd=scalar_or_array(tiers),
                   total_usd=scalar_or_array(np.asarray(breakdown.total_usd) + tiers))


def hardware_cost_totals(
    params: CostParameters,
    spec: HardwareSpec,
    *,
    l2_MiB: ArrayLike | None = None,
    hbm_capacity_GiB: ArrayLike | None = None,
    hbm_bandwidth_GBps: ArrayLike | None = None,
    link_bandwidth_GBps: ArrayLike | None = None,
    spans_nodes: bool = False,
    tier_capacity_GiB: Mapping[str, ArrayLike] | None = None,
) -> CostTotals:
    """The ``total_usd`` and ``module_usd`` of :func:`hardware_cost` (equal to them), without
    building the other lines: what a sweep's cost columns need."""
    totals = _spec_device_cost(params, spec, l2_MiB, hbm_capacity_GiB, hbm_bandwidth_GBps, link_bandwidth_GBps,
                               spans_nodes, lines=False)
    if not spec.memory.extra_tiers:
        return totals
    tiers = memory_tiers_usd(params, spec, tier_capacity_GiB)
    return replace(totals, total_usd=scalar_or_array(np.asarray(totals.total_usd) + tiers))


def memory_tiers_usd(params: CostParameters, spec: HardwareSpec,
                     tier_capacity_GiB: Mapping[str, ArrayLike] | None = None) -> Any:
    """Cost of the memory tiers beyond HBM of one device (manufacturing basis, also on the price
    basis): each tier's capacity at ``tiers.usd_per_GB`` (or the spec's ``cost_usd_per_GiB``), plus
    the share of the CPU it hangs off, ``tiers.cpu_usd x capacity / tiers.cpu_memory_GiB`` (a GH200
    pays one Grace, a GB200 GPU half of one)."""
    total: Any = 0.0
    for tier in spec.memory.extra_tiers:  # a tier or two
        given = (tier_capacity_GiB or {}).get(tier.name)
        gib = np.asarray(tier.capacity_bytes / 2**30 if given is None else given, dtype=float)
        memory_usd = (gib * tier.cost_usd_per_GiB if tier.cost_usd_per_GiB is not None
                      else gib * 2**30 / 1e9 * params.value(f"tiers.usd_per_GB.{tier.name}"))
        cpu_usd = params.value(f"tiers.cpu_usd.{tier.name}") * gib / params.value(f"tiers.cpu_memory_GiB.{tier.name}")
        total = total + memory_usd + cpu_usd
    return total


def _spec_device_cost(params: CostParameters, spec: HardwareSpec, l2_MiB: ArrayLike | None,
                      hbm_capacity_GiB: ArrayLike | None, hbm_bandwidth_GBps: ArrayLike | None,
                      link_bandwidth_GBps: ArrayLike | None, spans_nodes: bool, *,
                      lines: bool) -> CostBreakdown | CostTotals:
    die = die_of(spec, params)
    memory = spec.memory
    return _device_cost(
        params, die.process_node, spec_logic_area_mm2(params, spec),
        memory.l2_capacity_bytes / 2**20 if l2_MiB is None else l2_MiB,
        memory.hbm_capacity_bytes / 2**30 if hbm_capacity_GiB is None else hbm_capacity_GiB,
        memory.hbm_bandwidth_Bps / 1e9 if hbm_bandwidth_GBps is None else hbm_bandwidth_GBps,
        die.hbm_generation,
        spec.intra_node.device_bandwidth_Bps / 1e9 if link_bandwidth_GBps is None else link_bandwidth_GBps,
        die.num_dies, spec.intra_node.topology, die.l2_sram,
        memory.hbm_capacity_bytes / 2**30 / die.hbm_stacks,  # the device's own stack capacity
        spec.inter_node.link_bandwidth_Bps / 1e9 if spans_nodes else 0.0, die.hbm_stacks, lines=lines)
