"""numba kernels of :mod:`roofline.static_kernel` (imported only when a sweep first needs them).

Every formula mirrors the numpy reference (``timing.op_times``, ``prefetch.segment_prefetch``,
``evaluate.evaluate_pass``, ``power.pass_energy_j``, ``evaluate.mean_over_steps``) line by line;
the row constants come from :mod:`roofline.static_kernel`. Every max/min whose outcome can change
with the KV length is written to a flag buffer, as the numpy path's Recorder does.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from roofline.static_kernel import (
    _ACT,
    _ACT_HIT,
    _BEYOND,
    _CHUNK,
    _COUNT,
    _FIXED_BYTES,
    _FLOPS,
    _FLOPS_KV,
    _GAP,
    _GEMM_EFF,
    _GEMM_FACTOR,
    _HBM_BPS,
    _HBM_EFF,
    _IS_COMM,
    _IS_MATRIX,
    _JOULE_PER_FLOP,
    _KV_DEP,
    _KV_READ,
    _KV_READ_KV,
    _L2,
    _L2_BPS,
    _LAUNCH,
    _LINK_BYTES,
    _PREFETCH,
    _PREFETCH_W,
    _REUSE_A,
    _REUSE_M,
    _REUSE_ROW,
    _REUSE_SCALE,
    _REUSE_W,
    _STAGE,
    _THRESHOLD,
    _UNIT,
    _VECTOR,
    _WINDOW,
)

MIN_GEMM_BLOCK = 128.0  # roofline.timing.MIN_GEMM_BLOCK (a test checks they agree)
_STACK = 130  # bisection depth bound: 64-bit KV lengths halve at most 64 times, two entries a level


@njit(cache=True)
def flag_capacity(n_ops, n_segments, n_fetch):
    """Upper bound of the comparisons one pass records (sizes the flag buffers)."""
    return 3 * n_ops + 6 * n_segments + 5 * n_fetch + 4


@njit(cache=True)
def _pipeline(path, stage, pp, micro, decode, flags, nf):
    if pp == 1.0 and micro == 1.0:
        return path, nf
    if not decode:
        return path + (micro - 1.0) * stage, nf
    other = micro * stage
    flags[nf] = 1.0 if path > other else 0.0
    return max(path, other), nf + 1


@njit(cache=True, inline="always")
def _pass(kv_len, j, ops, comm, cfg, peaks, seg, member, fetch, pf, energy, pipe, decode, reuse,
          flags, work, out):
    """One pass of configuration ``j`` at KV length ``kv_len``: fills ``out`` (7 values,
    ``static_kernel.DECODE_COLUMNS``) and returns how many flags it wrote. ``work`` holds the
    per-operator results; with ``reuse`` only the operators whose work depends on the KV length
    are computed again (the others hold this configuration's values from the previous call)."""
    nf = 0
    n_ops = ops.shape[1]
    l2, l2_bps = cfg[_L2, j], cfg[_L2_BPS, j]
    bw = cfg[_HBM_BPS, j] * cfg[_HBM_EFF, j]
    launch = cfg[_LAUNCH, j]
    has_energy = energy[0] > 0.0
    for i in range(n_ops):
        if reuse and ops[_KV_DEP, i] == 0.0:
            continue
        att = kv_len
        window = ops[_WINDOW, i]
        if window >= 0.0:
            flags[nf] = 1.0 if kv_len > window else 0.0
            nf += 1
            near = min(kv_len, window)
            att = near + ops[_BEYOND, i] * (kv_len - near)
        chunk = ops[_CHUNK, i]
        if chunk > 0.0:
            piece = np.floor((kv_len - 1.0) / chunk)
            flags[nf] = piece
            nf += 1
            att = kv_len - chunk * piece
        f = ops[_FLOPS, i] + ops[_FLOPS_KV, i] * att
        kv = ops[_KV_READ, i] + ops[_KV_READ_KV, i] * att
        act = ops[_ACT, i]
        act_l2 = act * cfg[_ACT_HIT, j] if act <= l2 else 0.0
        h = kv + ops[_FIXED_BYTES, i] + (act - act_l2)
        if ops[_REUSE_ROW, i] > 0.0:
            wb = ops[_REUSE_W, i]
            w = wb * 2.0 * ops[_REUSE_M, i] / f
            a = ops[_REUSE_A, i]
            if np.isnan(a):
                a = w
            block = max(np.sqrt(l2 / (w + 2.0 * a)), MIN_GEMM_BLOCK)
            weights = max(f / 2.0 * w / block - wb, 0.0) if wb > l2 / 2 else 0.0
            acts = max(f / 2.0 * a / block - act, 0.0) if act > l2 / 2 else 0.0
            h = h + (weights + acts) * cfg[_REUSE_SCALE, j]
        if ops[_IS_MATRIX, i] > 0.0:
            rate = peaks[int(ops[_UNIT, i]), j] * (cfg[_GEMM_EFF, j] * ops[_GEMM_FACTOR, i])
        else:
            rate = cfg[_VECTOR, j]
        c = f / rate
        m = h / bw + act_l2 / l2_bps
        if ops[_IS_COMM, i] > 0.0:
            t = comm[i, j] + launch
            work[6, i] = 0.0
        else:
            if ops[_KV_DEP, i] > 0.0:  # a comparison that cannot change with the KV length is no breakpoint
                flags[nf] = 1.0 if c > m else 0.0
                nf += 1
            t = max(c, m) + launch
            work[6, i] = 1.0 if c > m else 0.0
        work[0, i], work[1, i], work[2, i], work[3, i], work[4, i] = t, c, h, act_l2, kv
        if has_energy:
            work[5, i] = (f * ops[_JOULE_PER_FLOP, i] + h * energy[1] + act_l2 * energy[2]
                        + ops[_LINK_BYTES, i] * energy[3])
    path = 0.0
    stage = 0.0
    compute_s = 0.0
    comm_s = 0.0
    joules = 0.0
    for i in range(n_ops):
        count, t = ops[_COUNT, i], work[0, i]
        path += count * t
        stage += ops[_STAGE, i] * t
        if ops[_IS_COMM, i] > 0.0:
            comm_s += count * t
        elif work[6, i] > 0.0:
            compute_s += count * t
        if has_energy:
            joules += count * work[5, i]
    pp, micro = pipe[0], pipe[1]
    base, nf = _pipeline(path, stage, pp, micro, decode, flags, nf)
    time = base
    n_seg = seg.shape[0]
    if n_seg:
        prefetch = cfg[_PREFETCH, j] > 0.0
        threshold = cfg[_THRESHOLD, j] * l2
        lost_gap = (1.0 - cfg[_GAP, j]) * launch
        saved_path = 0.0
        saved_stage = 0.0
        moved = 0.0
        for s in range(n_seg):
            base_s = 0.0
            hbm_seg = 0.0
            for i in range(n_ops):
                if member[s, i] > 0.0:
                    base_s += work[0, i]
                    hbm_seg += work[2, i]
            needed = 0.0
            for k in range(fetch.shape[0]):
                if int(fetch[k, 1]) == s:
                    op = int(fetch[k, 0])
                    needed += (ops[_PREFETCH_W, op] if pf[0] > 0.0 else 0.0) + (work[4, op] if pf[1] > 0.0 else 0.0)
            free_l2 = max(l2 - seg[s, 3], 0.0)
            flags[nf] = 1.0 if threshold > needed else 0.0
            target = min(threshold, needed)
            flags[nf + 1] = 1.0 if target > free_l2 else 0.0
            useful = min(target, free_l2)
            budget = max((work[0, int(seg[s, 0])] - lost_gap) * bw - seg[s, 4], 0.0)
            flags[nf + 2] = 1.0 if target > budget else 0.0
            during = min(target, budget)
            nf += 3
            end = 0.0
            in_l2_seg = 0.0
            delta = 0.0
            for k in range(fetch.shape[0]):
                if int(fetch[k, 1]) != s:
                    continue
                op = int(fetch[k, 0])
                wanted = (ops[_PREFETCH_W, op] if pf[0] > 0.0 else 0.0) + (work[4, op] if pf[1] > 0.0 else 0.0)
                end += wanted
                lo_a, lo_b = end - wanted, target - useful
                flags[nf] = 1.0 if lo_a > lo_b else 0.0
                lo = max(lo_a, lo_b)
                flags[nf + 1] = 1.0 if end > target else 0.0
                hi = min(end, target)
                flags[nf + 2] = 1.0 if hi - lo > 0.0 else 0.0
                in_l2 = max(hi - lo, 0.0)
                mem = (work[2, op] - in_l2) / bw + (work[3, op] + in_l2) / l2_bps
                flags[nf + 3] = 1.0 if work[1, op] > mem else 0.0
                nf += 4
                op_time = max(work[1, op], mem) + launch
                in_l2_seg += in_l2
                delta += op_time - work[0, op]
            busy = (hbm_seg - in_l2_seg + (target - during)) / bw + seg[s, 5] * lost_gap
            ops_time = base_s + delta
            flags[nf] = 1.0 if ops_time > busy else 0.0
            with_prefetch = max(ops_time, busy)
            flags[nf + 1] = 1.0 if with_prefetch > base_s else 0.0
            nf += 2
            seg_time = min(with_prefetch, base_s) if prefetch else base_s
            saving = base_s - seg_time
            saved_path += seg[s, 1] * saving
            saved_stage += seg[s, 2] * saving
            if prefetch and with_prefetch < base_s:
                moved += seg[s, 1] * during
        time, nf = _pipeline(path - saved_path, stage - saved_stage, pp, micro, decode, flags, nf)
        joules = joules + 2.0 * energy[2] * moved
    joules = joules * micro / pp
    capped = time
    if has_energy and energy[4] > 0.0:
        dynamic = joules / energy[4]
        flags[nf] = 1.0 if time > dynamic else 0.0
        nf += 1
        capped = max(time, dynamic)
    out[0], out[1], out[2], out[3], out[4], out[5], out[6] = (base, time, compute_s, path - compute_s - comm_s,
                                                              comm_s, joules, capped)
    return nf


@njit(cache=True)
def prefill_pass(ops, comm, cfg, peaks, seg, member, fetch, pf, energy, pipe):
    """(n, 4) [base, time, energy, capped time] of the prefill pass of every configuration."""
    n, n_ops = cfg.shape[1], ops.shape[1]
    flags = np.empty(flag_capacity(n_ops, seg.shape[0], fetch.shape[0]))
    work = np.empty((7, n_ops))
    values = np.empty(7)
    res = np.empty((n, 4))
    for j in range(n):
        _pass(0.0, j, ops, comm, cfg, peaks, seg, member, fetch, pf, energy, pipe, False, False, flags, work, values)
        res[j, 0], res[j, 1], res[j, 2], res[j, 3] = values[0], values[1], values[5], values[6]
    return res


@njit(cache=True)
def decode_means(ops, comm, cfg, peaks, seg, member, fetch, pf, energy, pipe, first, last):
    """(n, 7) exact mean over the decode steps with KV lengths ``first..last`` of every
    configuration (columns ``static_kernel.DECODE_COLUMNS``): intervals whose ends took every
    flagged comparison the same way are affine and average their ends; the others are halved."""
    n, n_ops = cfg.shape[1], ops.shape[1]
    cap = flag_capacity(n_ops, seg.shape[0], fetch.shape[0])
    work = np.empty((7, n_ops))
    lo_s, hi_s = np.empty(_STACK, np.int64), np.empty(_STACK, np.int64)
    lo_v, hi_v = np.empty((_STACK, 7)), np.empty((_STACK, 7))
    lo_f, hi_f = np.empty((_STACK, cap)), np.empty((_STACK, cap))
    lo_n, hi_n = np.empty(_STACK, np.int64), np.empty(_STACK, np.int64)
    mid_v, mid_f = np.empty(7), np.empty(cap)
    res = np.empty((n, 7))
    steps_total = last - first + 1.0
    for j in range(n):
        lo_s[0], hi_s[0] = int(first), int(last)
        lo_n[0] = _pass(first, j, ops, comm, cfg, peaks, seg, member, fetch, pf, energy, pipe, True, False,
                        lo_f[0], work, lo_v[0])
        hi_n[0] = _pass(last, j, ops, comm, cfg, peaks, seg, member, fetch, pf, energy, pipe, True, True,
                        hi_f[0], work, hi_v[0])
        acc = np.zeros(7)
        sp = 1
        while sp > 0:
            sp -= 1
            lo, hi = lo_s[sp], hi_s[sp]
            same = lo_n[sp] == hi_n[sp]
            if same:
                for q in range(lo_n[sp]):
                    if lo_f[sp, q] != hi_f[sp, q]:
                        same = False
                        break
            if same or hi - lo <= 1:
                if hi == lo:
                    for q in range(7):
                        acc[q] += lo_v[sp, q]
                else:
                    steps = float(hi - lo + 1)
                    for q in range(7):
                        acc[q] += steps * (lo_v[sp, q] + hi_v[sp, q]) / 2
                continue
            mid = (lo + hi) // 2
            nm = _pass(float(mid), j, ops, comm, cfg, peaks, seg, member, fetch, pf, energy, pipe, True, True, mid_f,
                       work, mid_v)
            for q in range(7):
                acc[q] -= mid_v[q]  # mid belongs to both halves
            # [lo, mid] replaces the popped entry; [mid, hi] goes on top
            lo_s[sp + 1], hi_s[sp + 1], hi_n[sp + 1], lo_n[sp + 1] = mid, hi, hi_n[sp], nm
            hi_v[sp + 1, :], hi_f[sp + 1, :] = hi_v[sp, :], hi_f[sp, :]
            lo_v[sp + 1, :], lo_f[sp + 1, :] = mid_v, mid_f
            hi_s[sp], hi_n[sp] = mid, nm
            hi_v[sp, :], hi_f[sp, :] = mid_v, mid_f
            sp += 2
        for q in range(7):
            res[j, q] = acc[q] / steps_total
    return res
