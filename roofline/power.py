"""Power model: the energy of a pass from its operator traffic, the device's idle and busy power,
and the TDP cap.

Dynamic energy of one pass on one device is the sum over its operators of
``FLOPs x pJ/FLOP(unit, node) + HBM bytes x (pJ/B(generation) + NoC) + L2 bytes x (pJ/B(L2) + NoC)
+ link bytes x pJ/B`` (+ the bytes read from a tier beyond HBM x (that tier's pJ/B + NoC),
``tiers.pj_per_byte``), plus ``2 x prefetched bytes x (pJ/B(L2) + NoC)`` (written into L2, then
read). NoC is the on-chip wire energy of a byte crossing the die between the memory partitions, L2
and the SMs (``energy.noc_pj_per_byte``). A device draws, besides, its idle power (the part as
sold with nothing to do, ``energy.static_fraction_of_tdp`` x TDP) at all times, and its busy power
(clocks at full speed, leakage at the operating voltage and temperature, schedulers and the
memory and link interfaces awake: ``energy.busy_fraction_of_tdp`` x TDP) while it runs work, however
little: ``static_w`` is their sum, the power of a working device that no operation accounts for.
Where the average power of a phase would exceed the TDP, the phase slows down until it fits:
``t = max(t, E_dynamic / (TDP - P_static))`` (dynamic energy per operation is taken as fixed;
real parts also lower the voltage, so this overstates the slowdown a little). Every parameter is
in ``cost_specs/default.yaml`` (``energy`` section, ``hbm.pj_per_byte``) with its source.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from roofline.cost import CostParameters, die_of
from roofline.dtypes import peak_unit_for
from roofline.evaluate import PassResult
from roofline.graph import OpTable
from roofline.hardware import HardwareSpec, MemoryTier
from roofline.prefetch import SegmentPrefetch
from roofline.timing import OpTimes, Recorder

__all__ = ["EnergyRates", "energy_rates", "link_bytes_per_device", "pass_energy_j", "tdp_capped_s",
           "pass_energy_and_capped", "op_energy_constants", "tier_pj_per_byte"]

PJ = 1e-12


@dataclass(frozen=True)
class EnergyRates:
    """Energy per operation of one device (joules) and its idle, busy and TDP power (watts)."""

    flop_j: dict[str, float]  # matrix unit -> J per FLOP
    vector_flop_j: float
    hbm_byte_j: float  # the DRAM access and the on-chip path to the SMs
    l2_byte_j: float  # the SRAM access and the on-chip path to the SMs
    link_byte_j: float
    static_w: float  # idle_w + busy_w: what a working device draws beyond its operations' energy
    tdp_w: float
    #: J per byte read from each tier beyond HBM (``spec.memory.extra_tiers`` order), on-chip path included
    tier_byte_j: tuple[float, ...] = ()
    idle_w: float = 0.0  # the part as sold with nothing to do, drawn at all times
    busy_w: float = 0.0  # added while it runs work: clocks, leakage at the operating point, interfaces


def energy_rates(params: CostParameters, spec: HardwareSpec) -> EnergyRates:
    """The rates of a device: its node scales the FLOP energies, its memory generation the HBM bytes.

    Raises:
        SpecError: The device has no ``die`` block (node, memory generation, TDP).
    """
    die = die_of(spec, params)
    scale = params.per_node("energy.node_scale", die.process_node)
    noc = params.value("energy.noc_pj_per_byte")  # every byte the SMs read crosses the die
    idle_w = params.value("energy.static_fraction_of_tdp") * die.tdp_w
    busy_w = params.value("energy.busy_fraction_of_tdp") * die.tdp_w
    return EnergyRates(
        flop_j={unit: float(v) * scale * PJ for unit, v in params.table("energy.pj_per_flop").items()},
        vector_flop_j=params.value("energy.vector_pj_per_flop") * scale * PJ,
        hbm_byte_j=(params.per_generation("hbm.pj_per_byte", die.hbm_generation) + noc) * PJ,
        l2_byte_j=(params.value("energy.l2_pj_per_byte") + noc) * PJ,
        link_byte_j=params.value("energy.link_pj_per_byte") * PJ,
        static_w=idle_w + busy_w,
        tdp_w=die.tdp_w,
        tier_byte_j=tuple((tier_pj_per_byte(params, t) + noc) * PJ for t in spec.memory.extra_tiers),
        idle_w=idle_w, busy_w=busy_w,
    )


def tier_pj_per_byte(params: CostParameters, tier: MemoryTier) -> float:
    """Energy per byte the device reads from a tier beyond HBM: the spec's own
    ``energy_pj_per_byte``, else the cost file's ``tiers.pj_per_byte.<tier name>``."""
    if tier.energy_pj_per_byte is not None:
        return float(tier.energy_pj_per_byte)
    return params.value(f"tiers.pj_per_byte.{tier.name}")


def link_bytes_per_device(kind: str, size_bytes: float, group: int) -> float:
    """Bytes one device sends in a collective of ``size_bytes`` over ``group`` devices (ring
    algorithms: an all-reduce sends ``2 (p-1)/p`` of the buffer, gather/scatter/all-to-all ``(p-1)/p``)."""
    if kind == "sendrecv":
        return float(size_bytes)
    share = (group - 1) / group if group > 1 else 0.0
    return (2.0 if kind == "allreduce" else 1.0) * share * float(size_bytes)


def _op_joules_per_flop(table: OpTable, rates: EnergyRates) -> np.ndarray:
    """(n_ops,) J per FLOP of each operator: its matrix unit's, or the vector unit's."""
    out = np.full(table.n_ops, rates.vector_flop_j)
    for i, (dtype, matrix) in enumerate(zip(table.dtypes, table.is_matrix)):  # operators, not configs
        unit = peak_unit_for(dtype, rates.flop_j) if matrix else None
        if unit is not None:
            out[i] = rates.flop_j[unit]
    return out


def op_energy_constants(table: OpTable, rates: EnergyRates) -> tuple[np.ndarray, np.ndarray]:
    """(n_ops,) J per FLOP of every operator and (n_ops,) bytes each sends over the links."""
    link = np.array([link_bytes_per_device(kind, size, group) if comm else 0.0
                     for kind, size, group, comm in zip(table.collectives, table.comm_bytes, table.group,
                                                        table.is_comm)], dtype=float).reshape(table.n_ops)
    return _op_joules_per_flop(table, rates), link


def pass_energy_j(table: OpTable, times: OpTimes, prefetch: SegmentPrefetch | None,
                  rates: EnergyRates) -> np.ndarray:
    """(n,) dynamic energy of one pass per device: the operator path of ``table`` (one
    micro-batch through every pipeline stage) times the micro-batches, shared by the ``pp`` stages."""
    joules_per_flop, link = op_energy_constants(table, rates)
    per_op = (times.flops * joules_per_flop[:, None]
              + times.hbm_bytes * rates.hbm_byte_j + times.l2_bytes * rates.l2_byte_j
              + (link * rates.link_byte_j)[:, None])
    if times.tier_bytes is not None and len(rates.tier_byte_j):
        # bytes read from a tier beyond HBM (LPDDR over NVLink-C2C, CXL) at that tier's energy
        per_op = per_op + np.tensordot(np.asarray(rates.tier_byte_j), times.tier_bytes, axes=1)
    energy = table.count @ per_op
    if prefetch is not None and len(table.segments):
        counts = np.array([s.count for s in table.segments])
        moved = np.where(prefetch.helps, prefetch.prefetched_bytes, 0.0)
        energy = energy + 2.0 * rates.l2_byte_j * (counts @ moved)
    return energy * table.microbatches / table.pp


def tdp_capped_s(time_s: np.ndarray, dynamic_j: np.ndarray, rates: EnergyRates,
                 rec: Recorder | None = None) -> np.ndarray:
    """Phase time with the TDP cap: ``max(t, E_dynamic / (TDP - P_static))`` (no cap without a
    TDP). ``rec`` records the comparison, so exact means over decode steps stay exact."""
    headroom_w = rates.tdp_w - rates.static_w
    if rates.tdp_w <= 0 or headroom_w <= 0:
        return np.asarray(time_s, dtype=float)
    return (rec or Recorder(active=False)).max(time_s, dynamic_j / headroom_w)


def pass_energy_and_capped(table: OpTable, res: PassResult, rates: EnergyRates | None,
                           rec: Recorder | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(n,) dynamic energy of a pass per device and its TDP-capped time; NaN energy and the
    uncapped time when the device has no ``die`` block (``rates`` None)."""
    if rates is None:
        return np.full_like(res.time_s, np.nan), res.time_s
    energy = pass_energy_j(table, res.times, res.prefetch, rates)
    return energy, tdp_capped_s(res.time_s, energy, rates, rec)
