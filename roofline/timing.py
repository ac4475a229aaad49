"""Roofline time of every operator: compute, memory or communication bound, plus launch overhead.

Hardware enters as :class:`HardwareArrays`, one array element per configuration, so the same
code times one device (``predict``) and a million configurations (``sweep``). Operators enter as
an :class:`~roofline.graph.OpTable`; results are arrays of shape (n_configs, n_ops).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace

import numpy as np
from numpy.typing import ArrayLike

from roofline.collectives import TierArrays, collective_hbm_bytes, collective_time_s
from roofline.dtypes import peak_unit_for
from roofline.exceptions import SpecError
from roofline.graph import OpTable
from roofline.hardware import HardwareSpec
from roofline.registry import PARAMETERS, fractions, si_reader
from roofline.workload import PrefetchSettings

__all__ = ["HardwareArrays", "OpTimes", "op_times", "comm_times", "gemm_reuse_bytes", "l2_bandwidth_Bps",
           "async_tp_saving_s", "SWEEPABLE", "Recorder", "gemm_efficiency_factor", "gemm_reuse_unit_bytes"]


@dataclass(frozen=True)
class HardwareArrays:
    """Hardware parameters in SI units, each an array of shape (n,) (one per configuration)."""

    peak_flops: dict[str, np.ndarray]
    vector_flops: np.ndarray
    gemm_efficiency: np.ndarray
    launch_s: np.ndarray
    hbm_Bps: np.ndarray
    hbm_efficiency: np.ndarray
    hbm_capacity_bytes: np.ndarray
    l2_bytes: np.ndarray
    l2_Bps: np.ndarray  # the L2 bandwidth in use: fixed, or slices x slice bandwidth
    activation_l2_hit: np.ndarray
    link_Bps: np.ndarray
    links: np.ndarray
    link_latency_s: np.ndarray
    link_efficiency: np.ndarray
    net_Bps: np.ndarray
    net_latency_s: np.ndarray
    net_efficiency: np.ndarray
    prefetch: np.ndarray  # bool: prefetching on
    prefetch_threshold_fraction: np.ndarray
    prefetch_launch_gap_fraction: np.ndarray  # share of launch gaps the prefetch stream may use
    full_mesh: bool
    devices_per_node: int
    prefetch_weights: bool
    prefetch_kv: bool
    efficiency_curve_m: tuple[tuple[float, float], ...]
    # collectives (roofline.collectives): per-algorithm latency terms, topology, and the library
    # the serving framework uses (a scenario choice, Workload.collective_library)
    custom_latency_s: np.ndarray | None = None
    nvls_efficiency: np.ndarray | float = 0.0
    torus_dims: tuple[int, int] | None = None
    collective_library: str = "custom"
    l2_gemm_reuse: np.ndarray | float = 1.0  # 1: tiled GEMMs re-read operands that outgrow L2
    async_tp: bool = False  # prefill TP all-reduces overlap the next GEMM (Workload.async_tp)
    custom_allreduce: bool = True  # the links carry the frameworks' custom all-reduce
    net_protocols: tuple[str, ...] = ("LL", "LL128", "Simple")  # NCCL protocols the network allows
    # memory tiers beyond HBM (MemorySpec.extra_tiers), shape (n, k), one column per tier; the
    # placement (roofline.placement) says what fraction of the weights and of the KV cache each
    # holds (the rest is in HBM); all (n, 0) on a device with only HBM
    tier_names: tuple[str, ...] = ()
    tier_capacity_bytes: np.ndarray | None = None
    tier_Bps: np.ndarray | None = None
    tier_efficiency: np.ndarray | None = None
    weight_tier_fraction: np.ndarray | None = None
    kv_tier_fraction: np.ndarray | None = None

    @property
    def placement_capacity_bytes(self) -> np.ndarray:
        """(n,) bytes HBM and the extra tiers hold together: the memory-fit limit."""
        if not self.tier_names:
            return self.hbm_capacity_bytes
        return self.hbm_capacity_bytes + self.tier_capacity_bytes.sum(axis=1)

    @property
    def spills(self) -> bool:
        """Whether any configuration reads weights or KV cache from a tier beyond HBM."""
        return bool(self.tier_names) and bool(np.any(self.weight_tier_fraction > 0)
                                              or np.any(self.kv_tier_fraction > 0))

    def with_placement(self, weight_fraction: np.ndarray, kv_fraction: np.ndarray) -> HardwareArrays:
        """A copy whose extra tiers hold these (n, k) fractions of the weights and the KV cache."""
        return replace(self, weight_tier_fraction=weight_fraction, kv_tier_fraction=kv_fraction)

    @property
    def n(self) -> int:
        return len(self.hbm_Bps)

    def take(self, rows: np.ndarray) -> HardwareArrays:
        """The configurations at ``rows`` (fancy indexing on every array)."""
        if len(rows) == self.n and np.array_equal(rows, np.arange(self.n)):
            return self
        values = dict(self.__dict__)  # every field: arrays are indexed, flags kept
        for name, value in values.items():
            if isinstance(value, np.ndarray):
                values[name] = value[rows]
            elif isinstance(value, dict):
                values[name] = {k: v[rows] for k, v in value.items()}
        taken = object.__new__(HardwareArrays)
        taken.__dict__.update(values)  # frozen: skip __init__, the fields are already checked
        return taken

    def intra(self) -> TierArrays:
        return TierArrays(self.link_Bps, self.links, self.link_latency_s, self.link_efficiency,
                          self.full_mesh, custom_latency_s=self.custom_latency_s,
                          nvls_efficiency=self.nvls_efficiency, torus_dims=self.torus_dims,
                          launch_s=self.launch_s, custom_allreduce=self.custom_allreduce)

    def inter(self) -> TierArrays:
        return TierArrays(self.net_Bps, 1.0, self.net_latency_s, self.net_efficiency, False, network=True,
                          launch_s=self.launch_s, protocols=self.net_protocols)

    @classmethod
    def from_spec(cls, spec: HardwareSpec, n: int = 1, *, prefetch: ArrayLike | None = None,
                  collective_library: str = "custom", async_tp: bool = False,
                  prefetch_settings: PrefetchSettings | None = None,
                  **overrides: ArrayLike) -> HardwareArrays:
        """Arrays of ``n`` configurations of ``spec`` with swept parameters replaced.

        ``prefetch_settings`` is the scenario's prefetching (default: off); ``prefetch`` (a bool
        or an array of shape (n,)) overrides whether it is on per configuration.

        ``overrides`` use the user-facing names of :data:`SWEEPABLE` (units in the name), each
        a scalar or an array of shape (n,).
        """
        link, tiers = spec.intra_node, spec.memory.extra_tiers
        pf_settings = prefetch_settings or PrefetchSettings()
        ones = np.ones(n)
        # every registry parameter at the spec's (or the scenario's) value, in SI; a device's peaks
        # and tiers (peak:DTYPE, tier:NAME_PART) only where it has them
        values: dict[str, np.ndarray] = {}
        peaks: dict[str, np.ndarray] = {}
        tier_cols: dict[str, np.ndarray] = {}
        targets = {"": values, "peak": peaks, "tier": tier_cols}
        read = [(where, key, si) for get, where, key in _SPEC_READS if (si := get(spec, pf_settings)) is not None]
        rows = np.multiply.outer(np.array([si for *_, si in read], dtype=float), ones)  # one (k, n) block
        for (where, key, _), row in zip(read, rows):
            targets[where][key] = row
        peaks = {d: peaks[d] for d in spec.compute.peak_flops}  # the spec's order
        for key, value in overrides.items():
            if value is None:
                continue
            if key not in SWEEPABLE:
                raise SpecError(f"unknown hardware parameter {key!r}; sweepable: {', '.join(sorted(SWEEPABLE))}")
            arr = np.broadcast_to(np.asarray(value, dtype=float), (n,))
            if np.any(arr < 0) or np.any(~np.isfinite(arr)):
                raise SpecError(f"hardware parameter {key}: must be a finite number >= 0, got {_worst(arr)}")
            if key in _FRACTIONS and np.any(arr > 1):
                raise SpecError(f"hardware parameter {key}: must be at most 1, got {_worst(arr)}"
                                + (" (the prefetch threshold is a fraction of the L2 capacity and cannot "
                                   "exceed it)" if key == "prefetch_threshold_fraction" else ""))
            field_name, convert = SWEEPABLE[key]
            if field_name.startswith("tier:"):
                if field_name[5:] not in tier_cols:
                    names = ", ".join(t.name for t in tiers) or "none beyond HBM"
                    raise SpecError(f"hardware parameter {key}: {spec.name} has no such memory tier "
                                    f"(its tiers: {names})")
                tier_cols[field_name[5:]] = convert(arr).astype(float)
            elif field_name == "peak_scale":
                peaks = {d: v * arr for d, v in peaks.items()}
            elif field_name.startswith("peak:"):
                peaks[field_name[5:]] = convert(arr)
            else:
                values[field_name] = convert(arr).astype(float)
        pf = pf_settings.enabled if prefetch is None else prefetch
        values["l2_Bps"] = l2_bandwidth_Bps(values["l2_bytes"], values["l2_Bps"], values.pop("l2_slice_bytes"),
                                            values.pop("l2_slice_Bps"))
        def tier_matrix(part: str) -> np.ndarray:
            return np.stack([tier_cols[f"{t.name}_{part}"] for t in tiers], axis=1) if tiers else np.zeros((n, 0))

        return cls(
            peak_flops=peaks, **values,
            prefetch=np.broadcast_to(np.asarray(pf, dtype=bool), (n,)).copy(),
            full_mesh=link.topology == "full_mesh", devices_per_node=spec.devices_per_node,
            prefetch_weights=pf_settings.weights, prefetch_kv=pf_settings.kv_cache,
            efficiency_curve_m=spec.compute.efficiency_curve_m, torus_dims=link.torus_dims,
            collective_library=collective_library, async_tp=async_tp,
            custom_allreduce=link.custom_allreduce, net_protocols=spec.inter_node.protocols,
            tier_names=tuple(t.name for t in tiers), tier_capacity_bytes=tier_matrix("capacity"),
            tier_Bps=tier_matrix("bandwidth"), tier_efficiency=tier_matrix("efficiency"),
            weight_tier_fraction=np.zeros((n, len(tiers))), kv_tier_fraction=np.zeros((n, len(tiers))),
        )


def l2_bandwidth_Bps(l2_bytes: ArrayLike, fixed_Bps: ArrayLike, slice_bytes: ArrayLike,
                     slice_Bps: ArrayLike) -> np.ndarray:
    """L2 bandwidth: fixed, or built of slices (when ``slice_Bps`` and ``slice_bytes`` are > 0).

    An L2 of slices (each with its own capacity and port, as GPU L2 slices and Ascend's per-core
    L2 banks are) has ``l2_bytes / slice_bytes`` slices, each delivering ``slice_Bps``; at least
    one slice, so that an empty L2 (from which nothing is read) keeps a finite rate.

    Example:
        >>> float(l2_bandwidth_Bps(192 * 2**20, 4750e9, 8 * 2**20, 200e9))  # 24 slices
        4800000000000.0
    """
    slice_bytes, slice_Bps = np.asarray(slice_bytes, dtype=float), np.asarray(slice_Bps, dtype=float)
    sliced = (slice_Bps > 0) & (slice_bytes > 0)
    slices = np.maximum(np.asarray(l2_bytes, dtype=float) / np.where(sliced, slice_bytes, 1.0), 1.0)
    return np.where(sliced, slices * slice_Bps, np.asarray(fixed_Bps, dtype=float))


_FRACTIONS = fractions()


def _worst(arr: np.ndarray) -> str:
    bad = arr[(arr < 0) | ~np.isfinite(arr) | (arr > 1)] if arr.size else arr
    return f"{(bad if bad.size else arr).flat[0]:g}"


def _scale(factor: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda a: a * factor


def _read_target(array: str) -> tuple[str, str]:
    """(group, key) of a HardwareArrays field name: ``peak:bf16`` -> ("peak", "bf16"), a plain field -> ("", it)."""
    group, sep, key = array.partition(":")
    return (group, key) if sep else ("", array)


#: The registry parameters every configuration starts from (the spec's or the scenario's value):
#: (reader, group, key), read once per HardwareArrays.from_spec
_SPEC_READS = tuple((si_reader(name), *_read_target(p.array)) for name, p in PARAMETERS.items()
                    if p.array is not None and p.array != "peak_scale")

#: Hardware parameters a sweep or override may set: user-facing name (units in the name) ->
#: (field of HardwareArrays, conversion to SI), from the registry (roofline.registry.PARAMETERS).
SWEEPABLE: Mapping[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    name: (p.array or name, _scale(p.scale)) for name, p in PARAMETERS.items()}


class Recorder:
    """max/min that remember which side won, so a caller can tell where a piecewise-linear
    function of the KV length changes slope (see :func:`roofline.evaluate.mean_over_steps`).

    Arrays have the configurations on their last axis; flags are kept as (k, n) blocks.
    """

    def __init__(self, active: bool = True) -> None:
        self.active = active
        self.flags: list[np.ndarray] = []

    def _note(self, a: np.ndarray, b: np.ndarray) -> None:
        if self.active:
            flag = np.greater(a, b)
            self.flags.append(flag.reshape(-1, flag.shape[-1]) if flag.ndim else flag.reshape(1, 1))

    def piece(self, index: np.ndarray) -> None:
        """Note which affine piece each value lies on (e.g. the attention chunk of a KV length):
        two KV lengths on different pieces are never joined by one affine segment."""
        if self.active:
            self.flags.append(np.asarray(index).reshape(-1, np.shape(index)[-1]))

    def max(self, a: ArrayLike, b: ArrayLike) -> np.ndarray:
        self._note(a, b)
        return np.maximum(a, b)

    def min(self, a: ArrayLike, b: ArrayLike) -> np.ndarray:
        self._note(a, b)
        return np.minimum(a, b)


@dataclass(frozen=True)
class OpTimes:
    """Per-operator quantities of one pass, shape (n_ops, n): operators first, configurations last
    (so per-operator rows are contiguous and sums over operators are fast)."""

    compute_s: np.ndarray
    memory_s: np.ndarray
    total_s: np.ndarray  # max(compute, memory) + launch, or the collective time + launch
    flops: np.ndarray
    hbm_bytes: np.ndarray  # bytes read or written in HBM
    l2_bytes: np.ndarray  # activation bytes served by L2 (they fit in it)
    kv_read_bytes: np.ndarray
    hbm_Bps_eff: np.ndarray  # (n,) achievable HBM bandwidth
    # weights and KV bytes read or written in the tiers beyond HBM, shape (k, n_ops, n), and the
    # time they take at each tier's achievable bandwidth, summed over tiers (n_ops, n); None when
    # nothing is placed beyond HBM
    tier_bytes: np.ndarray | None = None
    tier_s: np.ndarray | None = None


def gemm_efficiency_factor(table: OpTable, hw: HardwareArrays) -> np.ndarray | None:
    """(n_ops,) share of ``gemm_efficiency`` each operator reaches on the device's efficiency curve
    by GEMM rows (1 for operators that are no GEMM); None when the device has no curve."""
    if not hw.efficiency_curve_m:
        return None
    sizes, effs = zip(*hw.efficiency_curve_m)
    factor = np.interp(np.log2(np.maximum(table.m, 1.0)), np.log2(sizes), effs)
    return np.where(table.is_matrix, factor / max(effs), 1.0)


def _gemm_efficiency(table: OpTable, hw: HardwareArrays) -> np.ndarray:
    factor = gemm_efficiency_factor(table, hw)
    return hw.gemm_efficiency if factor is None else hw.gemm_efficiency * factor[:, None]


def _compute_rate(table: OpTable, hw: HardwareArrays) -> np.ndarray:
    """(n_ops, n) FLOP/s each operator runs at: its dtype's peak times efficiency, or the vector rate."""
    rows = []
    for dtype, matrix in zip(table.dtypes, table.is_matrix):
        if not matrix:
            rows.append(hw.vector_flops)
        else:
            rows.append(_peak(hw, dtype))
    rate = np.stack(rows)
    return np.where(table.is_matrix[:, None], rate * _gemm_efficiency(table, hw), rate)


def _peak(hw: HardwareArrays, unit: str) -> np.ndarray:
    key = peak_unit_for(unit, hw.peak_flops)
    if key is None:
        # an operator class's precision (--op-dtype experts=nvfp4) reaches here as well as --dtype's
        hint = (" (for weight-only FP4/FP6, keep 16-bit activations: --dtype mxfp4:bf16 or --op-dtype "
                "experts=mxfp4:bf16)" if unit in ("fp4", "fp6") else "")
        raise SpecError(f"the device has no {unit} compute (it supports {', '.join(hw.peak_flops)}); "
                        f"choose another --dtype or --op-dtype{hint}")
    return hw.peak_flops[key]


def op_times(table: OpTable, hw: HardwareArrays, kv_len: ArrayLike | None = None,
             rec: Recorder | None = None, comm_s: np.ndarray | None = None) -> OpTimes:
    """Roofline time of every operator of ``table`` on every configuration of ``hw``.

    compute = FLOPs / (peak(dtype) * efficiency); memory = HBM bytes / (HBM bandwidth *
    efficiency) + L2 bytes / L2 bandwidth, where the ``activation_l2_hit`` fraction of an operator's
    activations is served by L2 when they fit in it (its producer just wrote them; 0 by default);
    time = max(compute, memory) + launch overhead.
    Weights and KV bytes placed beyond HBM (``hw.weight_tier_fraction``, ``hw.kv_tier_fraction``)
    are read at their tier's bandwidth times efficiency, and those parts add to the memory time (no
    overlap between tiers: one operator's reads from HBM and from LPDDR are timed one after the
    other, the conservative bound; GEMM operand re-reads beyond L2 stay in HBM).
    Collectives take their alpha-beta time plus a launch. ``kv_len`` (shape (n,)) is the decode
    KV length; prefill tables ignore it. ``comm_s`` may pass in :func:`comm_times` computed
    earlier (they do not depend on the KV length).
    """
    rec = rec or Recorder(active=False)
    n = hw.n
    kv = np.zeros(n) if kv_len is None else np.broadcast_to(np.asarray(kv_len, dtype=float), (n,))
    attended = table.attended_kv(kv, rec)
    flops = table.flops_at(attended)
    kv_read = table.kv_read_at(attended)
    act = table.act_bytes[:, None]
    act_in_l2 = np.where(act <= hw.l2_bytes, act * hw.activation_l2_hit, 0.0)
    hbm_bytes = kv_read + (table.weight_bytes + table.kv_write_bytes)[:, None] + (act - act_in_l2)
    hbm_bytes = hbm_bytes + gemm_reuse_bytes(table, flops, hw)
    compute = flops / _compute_rate(table, hw)
    hbm_eff = hw.hbm_Bps * hw.hbm_efficiency
    memory = hbm_bytes / hbm_eff + act_in_l2 / hw.l2_Bps
    tier_bytes = tier_s = None
    if hw.spills:
        tier_bytes = _tier_bytes(table, kv_read, hw)
        hbm_bytes = hbm_bytes - tier_bytes.sum(axis=0)
        tier_s = (tier_bytes / (hw.tier_Bps * hw.tier_efficiency).T[:, None, :]).sum(axis=0)
        memory = hbm_bytes / hbm_eff + act_in_l2 / hw.l2_Bps + tier_s
    comm = comm_times(table, hw) if comm_s is None else comm_s
    busy = rec.max(compute, memory) + hw.launch_s
    total = np.where(table.is_comm[:, None], comm + hw.launch_s, busy)
    return OpTimes(compute, memory, total, flops, hbm_bytes, act_in_l2, kv_read, hbm_eff, tier_bytes, tier_s)


def _tier_bytes(table: OpTable, kv_read: np.ndarray, hw: HardwareArrays) -> np.ndarray:
    """(k, n_ops, n) weight and KV bytes each extra tier serves: every operator reads the same
    fraction of its weights (and of its KV cache) from a tier as the tier holds of all of them."""
    kv = kv_read + table.kv_write_bytes[:, None]
    w_frac, kv_frac = hw.weight_tier_fraction.T[:, None, :], hw.kv_tier_fraction.T[:, None, :]
    return table.weight_bytes[None, :, None] * w_frac + kv[None] * kv_frac


#: Smallest block a GEMM keeps on chip without L2: a 128 x 128 threadblock tile in shared memory
#: (CUTLASS's default threadblock shape for large tensor-core GEMMs).
MIN_GEMM_BLOCK = 128.0


def gemm_reuse_bytes(table: OpTable, flops: np.ndarray, hw: HardwareArrays) -> np.ndarray:
    """(n_ops, n) HBM bytes a tiled GEMM reads beyond its compulsory traffic because its operands
    outgrow L2.

    Blocked matrix multiplication (Lam, Rothberg and Wolf, ASPLOS 1991; the I/O bound of Hong and
    Kung, 1981): with b x b blocks of A, B and C resident in a cache of M bytes,
    ``b = sqrt(M / (w + 2a))`` (w, a: bytes per weight and activation element), the weights
    [k, n] are read ``m / b`` times and the input activations [m, k] ``n / b`` times:
    ``F/2 w / b`` and ``F/2 a / b`` bytes (F = 2mnk), never below the compulsory ``W`` and
    ``act``. An operand that fits in half the L2 stays there and is read once (a decode GEMM's
    few activation rows, a small weight matrix). b is at least :data:`MIN_GEMM_BLOCK` (the
    on-chip tile without L2). Scaled by ``l2_gemm_reuse`` (0 turns the term off); only GEMMs with
    weights (kind ``gemm``).
    """
    rows, unit_bytes = gemm_reuse_unit_bytes(table)
    out = np.zeros((table.n_ops, hw.n))
    if not len(rows) or not np.any(np.asarray(hw.l2_gemm_reuse) > 0):
        return out
    f = flops[rows]  # (r, n)
    w_bytes = table.weight_bytes[rows][:, None]
    act_bytes = table.act_bytes[rows][:, None]
    w = w_bytes * 2.0 * table.m[rows][:, None] / f  # bytes per weight element: W / (k n)
    a = unit_bytes[:, None]
    a = np.where(np.isnan(a), w, a)  # a unit with no format of its own (fp4, fp6): the weights'
    l2 = hw.l2_bytes[None, :]
    block = np.maximum(np.sqrt(l2 / (w + 2.0 * a)), MIN_GEMM_BLOCK)
    weights = np.where(w_bytes > l2 / 2, np.maximum(f / 2.0 * w / block - w_bytes, 0.0), 0.0)
    acts = np.where(act_bytes > l2 / 2, np.maximum(f / 2.0 * a / block - act_bytes, 0.0), 0.0)
    out[rows] = (weights + acts) * hw.l2_gemm_reuse
    return out


def gemm_reuse_unit_bytes(table: OpTable) -> tuple[np.ndarray, np.ndarray]:
    """The operators :func:`gemm_reuse_bytes` applies to (GEMMs with weights and FLOPs) and the
    bytes per activation element of each (NaN: the weights' bytes); cached beside the table."""
    cached = table.__dict__.get("_gemm_reuse_rows")
    if cached is None:
        rows = np.flatnonzero(np.array([k == "gemm" for k in table.kinds], dtype=bool) & (table.weight_bytes > 0)
                              & (table.flops > 0))
        cached = (rows, np.array([_unit_bytes(table.dtypes[i]) for i in rows], dtype=float))
        table.__dict__["_gemm_reuse_rows"] = cached  # tables are immutable (build_phase caches them)
    return cached


def _unit_bytes(unit: str) -> float:
    """Bytes per activation element of a GEMM's unit; NaN for a unit that is no storage format."""
    from roofline.dtypes import bytes_per_element

    try:
        return bytes_per_element(unit)
    except SpecError:
        return float("nan")


def async_tp_saving_s(table: OpTable, t: OpTimes, hw: HardwareArrays) -> np.ndarray:
    """(n_ops, n) time asynchronous tensor parallelism hides per operator (prefill only).

    Async TP (PyTorch's micro-pipelined TP, Wang et al. "Overlap communication with dependent
    computation via decomposition", ASPLOS 2023) splits a TP all-reduce and the GEMM that produces
    its input (O-proj, down-proj) into ``c`` chunks (``c`` = the TP degree) and runs them as a two-stage pipeline: the pair takes
    ``max(T_c, T_g) + min(T_c, T_g) / c`` instead of ``T_c + T_g``, a saving of
    ``min(T_c, T_g) (1 - 1/c)`` charged to the collective. ``T_c`` is the collective's wire time
    (its launch is not hidden). Not modelled: the SMs the collective takes from the GEMM.
    """
    out = np.zeros((table.n_ops, hw.n))
    if not hw.async_tp or table.phase != "prefill":
        return out
    for i in np.flatnonzero(table.is_comm[1:] & table.is_matrix[:-1]) + 1:
        if table.collectives[i] != "allreduce" or table.group[i] <= 1:
            continue
        wire = t.total_s[i] - hw.launch_s
        shorter = np.minimum(wire, t.total_s[i - 1] - hw.launch_s)
        out[i] = np.maximum(shorter, 0.0) * (1.0 - 1.0 / table.group[i])
    return out


def comm_times(table: OpTable, hw: HardwareArrays) -> np.ndarray:
    """(n_ops, n) collective times; zero for the other operators."""
    if hw.n == 1:  # one configuration (predict): the same links give the same times
        key = (table.collectives, table.comm_bytes.tobytes(), table.group.tobytes(), hw.full_mesh,
               hw.devices_per_node, float(hw.link_Bps[0]), float(hw.links[0]), float(hw.link_latency_s[0]),
               float(hw.link_efficiency[0]), float(hw.launch_s[0]), float(hw.net_Bps[0]), float(hw.net_latency_s[0]),
               float(hw.net_efficiency[0]), float(np.asarray(hw.custom_latency_s).flat[0]),
               float(np.asarray(hw.nvls_efficiency).flat[0]), hw.torus_dims, hw.collective_library,
               hw.custom_allreduce, hw.net_protocols)
        cached = _SCALAR_COMM.get(key)
        if cached is None:
            if len(_SCALAR_COMM) > 4096:
                _SCALAR_COMM.clear()
            cached = _SCALAR_COMM[key] = _comm_times(table, hw)
        return cached
    return _comm_times(table, hw)


_SCALAR_COMM: dict[tuple, np.ndarray] = {}

#: Fewest configurations whose link settings are checked for repeats (a check costs a few passes).
_DISTINCT_MIN_CONFIGS = 256
_SAMPLE = 1024  # link values sampled to tell a grid's repeats from random values
#: the last configurations' distinct link settings: (arrays, result); both phases of an evaluation share it
_LAST_LINKS: list[tuple[HardwareArrays, tuple]] = []


def _distinct_links(hw: HardwareArrays) -> tuple[TierArrays, TierArrays, np.ndarray | None]:
    """The link tiers of the configurations' distinct link settings, and the index of each
    configuration's among them (None: the tiers as given). A grid sweep's chunk repeats a few
    link bandwidths over every L2 and HBM value, so the collectives are timed a few hundred times,
    not once per configuration; the times are the same numbers (elementwise formulas)."""
    last = next(iter(_LAST_LINKS), None)  # read once: another thread may replace it
    if last is not None and last[0] is hw:
        return last[1]
    intra, inter, n = hw.intra(), hw.inter(), hw.n
    result: tuple[TierArrays, TierArrays, np.ndarray | None] = (intra, inter, None)
    if n >= _DISTINCT_MIN_CONFIGS:
        swept = [(t, f.name, v) for t in (intra, inter) for f in fields(t)
                 if isinstance(v := getattr(t, f.name), np.ndarray) and v.shape == (n,)]
        varying = [v for _, _, v in swept if v.min() != v.max()]
        # one varying setting (more: rare, time them all) that repeats (a sample is not all distinct)
        if not varying or (len(varying) == 1 and
                           len(np.unique(varying[0][:: max(n // _SAMPLE, 1)])) < 0.9 * min(n, _SAMPLE)):
            if varying:
                _, first, where = np.unique(varying[0], return_index=True, return_inverse=True)
            else:
                first, where = np.zeros(1, dtype=np.intp), np.zeros(n, dtype=np.intp)
            taken: dict[int, dict[str, np.ndarray]] = {id(intra): {}, id(inter): {}}
            for t, name, v in swept:
                taken[id(t)][name] = v[first]
            result = replace(intra, **taken[id(intra)]), replace(inter, **taken[id(inter)]), where
    _LAST_LINKS[:] = [(hw, result)]
    return result


def _spread(values: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Times of the distinct link settings, back to every configuration."""
    return np.asarray(values)[where] if np.ndim(values) else np.full(len(where), float(values))


def _comm_times(table: OpTable, hw: HardwareArrays) -> np.ndarray:
    out = np.zeros((table.n_ops, hw.n))
    comm = np.flatnonzero(table.is_comm)
    if not len(comm):
        out.flags.writeable = False
        return out
    intra, inter, where = _distinct_links(hw)
    done: dict[tuple[str, float, int], np.ndarray] = {}
    for i in comm:  # a handful of collectives per table, not configs
        key = (table.collectives[i], float(table.comm_bytes[i]), int(table.group[i]))
        if key not in done:
            done[key] = collective_time_s(*key, intra, inter, hw.devices_per_node, hw.collective_library)
        out[i] = done[key] if where is None else _spread(done[key], where)
    out.flags.writeable = False  # shared by the callers of comm_times (cached for one configuration)
    return out


def collective_hbm(table: OpTable, op: int) -> float:
    """HBM bytes the collective at index ``op`` moves (it competes with prefetching)."""
    return float(collective_hbm_bytes(table.collectives[op], table.comm_bytes[op]))
