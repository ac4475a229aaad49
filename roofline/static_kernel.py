"""Compiled kernel of the static phases: the prefill pass and the exact mean decode step, per configuration.

The numpy path (:func:`roofline.evaluate.evaluate_pass` and :func:`roofline.evaluate.mean_over_steps`)
is the reference and stays the only path for ``predict``; a sweep spends most of its time there in
(operators x configurations) temporaries. This kernel runs the same formulas in one fused loop per
configuration (numba, compiled on first use and cached on disk), and finds the exact TPOT mean the
same way: a decode step is piecewise affine in the KV length, so an interval whose ends took every
max/min the same way has the mean of its ends, and other intervals are halved. A test checks that
both paths agree to 1e-12 on every covered feature.

Covered: every table the engine builds, with prefetching, pipeline stages, windowed and chunked
attention, GEMM operand re-reads and the TDP cap. Not covered (the engine takes the numpy path):
memory tiers beyond HBM in use (spills) and asynchronous tensor parallelism.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from roofline._memo import IdentityMemo
from roofline.dtypes import peak_unit_for
from roofline.evaluate import DecodeSteps, evaluate_pass, mean_over_steps
from roofline.graph import OpTable
from roofline.power import EnergyRates, op_energy_constants, pass_energy_and_capped
from roofline.prefetch import segment_layout
from roofline.timing import (
    HardwareArrays,
    Recorder,
    comm_times,
    gemm_efficiency_factor,
    gemm_reuse_unit_bytes,
)

__all__ = ["StaticPhases", "covers", "static_phases", "reference_phases", "kernel_loaded", "kernel_cached",
           "DECODE_COLUMNS", "KERNEL_MIN_CONFIGS"]

#: Columns of the mean decode step (the engine's step values, in this order).
DECODE_COLUMNS = ("base_s", "time_s", "compute_s", "memory_s", "comm_s", "energy_j", "capped_s")

# rows of the per-operator constant matrix
(_COUNT, _STAGE, _FLOPS, _FLOPS_KV, _KV_READ, _KV_READ_KV, _FIXED_BYTES, _ACT, _IS_COMM, _IS_MATRIX, _UNIT,
 _GEMM_FACTOR, _REUSE_ROW, _REUSE_W, _REUSE_A, _REUSE_M, _WINDOW, _BEYOND, _CHUNK, _JOULE_PER_FLOP,
 _LINK_BYTES, _PREFETCH_W, _KV_DEP, _N_OP_ROWS) = range(24)
# rows of the per-configuration matrix
(_HBM_BPS, _HBM_EFF, _L2, _L2_BPS, _ACT_HIT, _LAUNCH, _GEMM_EFF, _VECTOR, _REUSE_SCALE, _PREFETCH, _THRESHOLD,
 _GAP, _N_CFG_ROWS) = range(13)


@dataclass(frozen=True)
class StaticPhases:
    """Prefill pass and mean decode step of ``n`` configurations (all arrays shape (n,))."""

    ttft_s: np.ndarray
    ttft_base_s: np.ndarray
    prefill_j: np.ndarray  # NaN without energy rates
    prefill_capped_s: np.ndarray
    decode_means: np.ndarray  # (n, 7), columns DECODE_COLUMNS


def covers(hw: HardwareArrays) -> bool:
    """Whether the kernel computes these configurations (else the numpy path does)."""
    return not hw.spills and not hw.async_tp


def _op_matrix(table: OpTable, hw: HardwareArrays, units: list[str], rates: EnergyRates | None) -> np.ndarray | None:
    """(rows, n_ops) constants of every operator; None when an operator's unit has no peak.

    They depend on the table and on what of the device does not vary per configuration (the peak
    units, the efficiency curve, the energy rates), so they are kept beside the (immutable, cached)
    table: a repeated prediction does not rebuild them. Callers only read the matrix."""
    memo = table.__dict__.setdefault("_kernel_ops", IdentityMemo(16))
    return memo.get((rates,), (tuple(units), hw.efficiency_curve_m),
                    lambda: _make_op_matrix(table, hw, units, rates))


def _make_op_matrix(table: OpTable, hw: HardwareArrays, units: list[str],
                    rates: EnergyRates | None) -> np.ndarray | None:
    n_ops = table.n_ops
    out = np.zeros((_N_OP_ROWS, n_ops))
    out[_COUNT], out[_STAGE] = table.count, table.stage_count
    out[_FLOPS], out[_FLOPS_KV] = table.flops, table.flops_per_kv
    out[_KV_READ], out[_KV_READ_KV] = table.kv_read_bytes, table.kv_read_per_kv
    out[_FIXED_BYTES] = table.weight_bytes + table.kv_write_bytes
    out[_ACT] = table.act_bytes
    out[_IS_COMM], out[_IS_MATRIX] = table.is_comm, table.is_matrix
    for i, (dtype, matrix) in enumerate(zip(table.dtypes, table.is_matrix)):  # operators, not configs
        if matrix:
            key = peak_unit_for(dtype, hw.peak_flops)
            if key is None:
                return None  # the numpy path raises the one-line error
            out[_UNIT, i] = units.index(key)
    factor = gemm_efficiency_factor(table, hw)
    out[_GEMM_FACTOR] = 1.0 if factor is None else factor
    rows, a_bytes = gemm_reuse_unit_bytes(table)
    out[_REUSE_ROW, rows] = 1.0
    out[_REUSE_W, rows] = table.weight_bytes[rows]
    out[_REUSE_A, rows] = a_bytes
    out[_REUSE_M, rows] = table.m[rows]
    windowed, chunked = np.isfinite(table.kv_window) & (table.kv_chunk == 0), table.kv_chunk > 0
    out[_WINDOW] = np.where(windowed, table.kv_window, -1.0)  # -1: no window
    out[_BEYOND] = table.kv_beyond
    out[_CHUNK] = np.where(chunked, table.kv_chunk, 0.0)
    if rates is not None:
        out[_JOULE_PER_FLOP], out[_LINK_BYTES] = op_energy_constants(table, rates)
    out[_PREFETCH_W] = table.prefetch_weight_bytes
    # operators whose work changes with the KV length (the others are computed once per configuration)
    out[_KV_DEP] = (table.flops_per_kv != 0) | (table.kv_read_per_kv != 0) | windowed | chunked
    return out


def _cfg_matrix(hw: HardwareArrays, units: list[str]) -> np.ndarray:
    """(rows, n) values of every configuration; the peak of each matrix unit follows the named rows."""
    n = hw.n
    out = np.empty((_N_CFG_ROWS + len(units), n))
    for r, unit in enumerate(units):
        out[_N_CFG_ROWS + r] = hw.peak_flops[unit]
    out[_HBM_BPS], out[_HBM_EFF], out[_L2], out[_L2_BPS] = hw.hbm_Bps, hw.hbm_efficiency, hw.l2_bytes, hw.l2_Bps
    out[_ACT_HIT], out[_LAUNCH], out[_GEMM_EFF] = hw.activation_l2_hit, hw.launch_s, hw.gemm_efficiency
    out[_VECTOR], out[_REUSE_SCALE] = hw.vector_flops, np.broadcast_to(hw.l2_gemm_reuse, (n,))
    out[_PREFETCH], out[_THRESHOLD], out[_GAP] = hw.prefetch, hw.prefetch_threshold_fraction, \
        hw.prefetch_launch_gap_fraction
    return out


def _segments(table: OpTable, hw: HardwareArrays) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segment constants: (s, 6) [collective op, count, stage count, working set, collective HBM
    bytes, operators], (s, n_ops) membership, and (f, 3) [operator, segment, position in segment
    order] of the operators that read prefetchable bytes (kept beside the table, as the op matrix)."""
    key = (hw.prefetch_weights, hw.prefetch_kv)
    cache = table.__dict__.setdefault("_kernel_segments", {})
    if key not in cache:
        cache[key] = _make_segments(table, hw)
    return cache[key]


def _make_segments(table: OpTable, hw: HardwareArrays) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not table.segments:
        return np.zeros((0, 6)), np.zeros((0, table.n_ops)), np.zeros((0, 2))
    lay = segment_layout(table, hw.prefetch_weights, hw.prefetch_kv)
    seg = np.stack([lay.collective, [s.count for s in table.segments], [s.stage_count for s in table.segments],
                    lay.working_set, lay.collective_hbm, lay.member.sum(axis=1)], axis=1).astype(float)
    fetch = np.stack([lay.fetch, lay.fetch_seg], axis=1).astype(float)
    return np.ascontiguousarray(seg), np.ascontiguousarray(lay.member), np.ascontiguousarray(fetch).reshape(-1, 2)


@functools.lru_cache(maxsize=1)
def _compiled() -> tuple | None:
    """The numba kernels, compiled on first use (``roofline --help`` never imports numba); None
    without numba (the numpy path runs)."""
    try:
        from roofline import _static_numba
    except ImportError:
        return None
    return _static_numba.prefill_pass, _static_numba.decode_means


#: Fewest configurations the compiled kernel is used for by default: below it the numpy path is as
#: fast, and a short-lived process (a search worker, ``roofline predict``) never imports numba.
KERNEL_MIN_CONFIGS = 512

_ENTRY_POINTS = ("prefill_pass", "decode_means")


def kernel_loaded() -> bool:
    """Whether this process has loaded the compiled kernel already (a sweep or a prediction did)."""
    return _compiled.cache_info().currsize > 0


def kernel_cached() -> bool:
    """Whether loading the kernel costs only numba's import (about 0.4 CPU-s), not a compilation
    (about 20 CPU-s): numba's on-disk cache (``NUMBA_CACHE_DIR``, else ``__pycache__`` beside the
    source) holds an index of both entry points written after the source last changed. numba
    itself is not imported here."""
    import importlib.util
    import os
    import sys
    from pathlib import Path

    source = Path(__file__).with_name("_static_numba.py")
    if importlib.util.find_spec("numba") is None or not source.is_file():
        return False
    changed = source.stat().st_mtime
    tag = f"py{sys.version_info.major}{sys.version_info.minor}"
    user_dir = os.environ.get("NUMBA_CACHE_DIR")
    dirs = [p for p in Path(user_dir).glob("roofline_*")] if user_dir else [source.parent / "__pycache__"]
    return any(all(any(f.stat().st_mtime >= changed for f in d.glob(f"_static_numba.{name}-*.{tag}.nbi"))
                   for name in _ENTRY_POINTS) for d in dirs)


def static_phases(prefill: OpTable, decode: OpTable, hw: HardwareArrays, rates: EnergyRates | None,
                  first_kv: int, last_kv: int, *, compiled: bool | None = None) -> StaticPhases:
    """Prefill pass and exact mean decode step (KV lengths ``first_kv..last_kv``) of every
    configuration of ``hw``: the compiled kernel where it covers them (:func:`covers`) and numba
    is installed, else the numpy reference. ``compiled``: None uses the kernel from
    :data:`KERNEL_MIN_CONFIGS` configurations on, True whenever it covers them, False never."""
    wanted = hw.n >= KERNEL_MIN_CONFIGS if compiled is None else compiled
    kernels = _compiled() if wanted and covers(hw) else None
    if kernels is not None:
        units = list(hw.peak_flops)
        ops_pre, ops_dec = _op_matrix(prefill, hw, units, rates), _op_matrix(decode, hw, units, rates)
        if ops_pre is not None and ops_dec is not None:
            return _kernel_phases(kernels, prefill, decode, hw, rates, first_kv, last_kv, units, ops_pre, ops_dec)
    return reference_phases(prefill, decode, hw, rates, first_kv, last_kv)


def _kernel_phases(kernels: tuple, prefill: OpTable, decode: OpTable, hw: HardwareArrays, rates: EnergyRates | None,
                   first_kv: int, last_kv: int, units: list[str], ops_pre: np.ndarray,
                   ops_dec: np.ndarray) -> StaticPhases:
    prefill_pass, decode_means = kernels
    n = hw.n
    cfg = _cfg_matrix(hw, units)
    energy = _energy_vector(rates)
    switches = np.array([hw.prefetch_weights, hw.prefetch_kv], dtype=float)
    seg_p, member_p, fetch_p = _segments(prefill, hw)
    seg_d, member_d, fetch_d = _segments(decode, hw)
    pre = prefill_pass(ops_pre, comm_times(prefill, hw), cfg, seg_p, member_p, fetch_p, switches,
                       energy, np.array([prefill.pp, prefill.microbatches], dtype=float))
    means = decode_means(ops_dec, comm_times(decode, hw), cfg, seg_d, member_d, fetch_d, switches,
                         energy, np.array([decode.pp, decode.microbatches], dtype=float), float(first_kv),
                         float(last_kv)).T
    if rates is None:  # no die block: energy unknown, times uncapped (as the numpy path)
        means[:, 5] = np.nan
        return StaticPhases(pre[1], pre[0], np.full(n, np.nan), pre[1], means)
    return StaticPhases(pre[1], pre[0], pre[5], pre[6], means)


def reference_phases(prefill: OpTable, decode: OpTable, hw: HardwareArrays, rates: EnergyRates | None,
                     first_kv: int, last_kv: int) -> StaticPhases:
    """The numpy path: :func:`evaluate_pass` on the prefill table and :func:`mean_over_steps` of
    the decode step (the reference the kernel is tested against; every configuration it covers)."""
    pre = evaluate_pass(prefill, hw)
    steps = DecodeSteps(decode, hw)
    prefill_j, prefill_capped_s = pass_energy_and_capped(prefill, pre, rates)
    compute_bound = decode.count * ~decode.is_comm
    comm_ops = decode.count * decode.is_comm

    def step(rows: np.ndarray, kv_len: np.ndarray, rec: Recorder) -> np.ndarray:
        res = steps.at(rows, kv_len, rec)
        t = res.times
        is_compute = t.compute_s > t.memory_s  # recorded already by the max in op_times
        compute_s = compute_bound @ (t.total_s * is_compute)
        comm_s = comm_ops @ t.total_s
        memory_s = decode.count @ t.total_s - compute_s - comm_s
        energy_j, capped_s = pass_energy_and_capped(decode, res, rates, rec)
        return np.stack([res.base_s, res.time_s, compute_s, memory_s, comm_s, energy_j, capped_s], axis=1)

    n = hw.n
    means = mean_over_steps(step, np.full(n, first_kv), np.full(n, last_kv))
    return StaticPhases(pre.time_s, pre.base_s, prefill_j, prefill_capped_s, means)


def _energy_vector(rates: EnergyRates | None) -> np.ndarray:
    """[has rates, J per HBM byte, J per L2 byte, J per link byte, TDP headroom W (0: no cap)]."""
    if rates is None:
        return np.zeros(5)
    headroom = rates.tdp_w - rates.static_w
    cap = headroom if rates.tdp_w > 0 and headroom > 0 else 0.0
    return np.array([1.0, rates.hbm_byte_j, rates.l2_byte_j, rates.link_byte_j, cap])
