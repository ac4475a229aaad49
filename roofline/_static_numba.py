"""numba kernels of :mod:`roofline.static_kernel` (imported only when a sweep first needs them).

Every formula mirrors the numpy reference (``timing.op_times``, ``prefetch.segment_prefetch``,
``evaluate.evaluate_pass``, ``power.pass_energy_j``, ``evaluate.mean_over_steps``) line by line;
the row constants come from :mod:`roofline.static_kernel`. A pass runs on a block of lanes (a
configuration and a KV length each) with the lanes in the innermost loops, so that the compiler
vectorizes them; every max/min whose outcome can change with the KV length is written to a flag
row, as the numpy path's Recorder does.
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
    _N_CFG_ROWS,
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
BLOCK = 256  # lanes per block: the per-operator work of a block stays in the L1/L2 caches
_STACK = 130  # bisection depth bound: 64-bit KV lengths halve at most 64 times, two entries a level
# rows of the per-operator work of a block, shape (_W_ROWS, n_ops, lanes)
_W_TIME, _W_COMPUTE, _W_HBM, _W_L2, _W_KV, _W_JOULE, _W_BOUND, _W_ROWS = range(8)
# rows of the per-lane scratch of the segment loop, shape (_S_ROWS, lanes)
(_S_BASE, _S_HBM, _S_NEEDED, _S_TARGET, _S_USEFUL, _S_DURING, _S_END, _S_IN_L2, _S_DELTA, _S_SAVED_PATH,
 _S_SAVED_STAGE, _S_MOVED, _S_PATH, _S_STAGE, _S_COMPUTE, _S_COMM, _S_JOULES, _S_ROWS) = range(18)


@njit(cache=True)
def flag_capacity(n_ops, n_segments, n_fetch):
    """Upper bound of the flag rows one pass writes."""
    return 3 * n_ops + 6 * n_segments + 5 * n_fetch + 4


@njit(cache=True)
def _pass(kv, j0, nb, ops, comm, cfg, seg, member, fetch, pf, energy, pipe, decode, reuse, flags, work, scratch,
          out):
    """Passes of configurations ``j0 .. j0 + nb - 1`` at KV lengths ``kv[:nb]``: fills ``out``
    (7, B) with the values of ``static_kernel.DECODE_COLUMNS`` and returns how many flag rows of
    ``flags`` (rows, B) it wrote. With ``reuse`` only the operators whose work depends on the KV
    length are computed again (``work`` holds the same lanes' values from the previous call)."""
    n_ops = ops.shape[1]
    nf = 0
    has_energy = energy[0] > 0.0
    for i in range(n_ops):
        if reuse and ops[_KV_DEP, i] == 0.0:
            continue
        window, beyond, chunk = ops[_WINDOW, i], ops[_BEYOND, i], ops[_CHUNK, i]
        f_window = nf if window >= 0.0 else -1
        nf += 1 if window >= 0.0 else 0
        f_chunk = nf if chunk > 0.0 else -1
        nf += 1 if chunk > 0.0 else 0
        is_comm = ops[_IS_COMM, i] > 0.0
        f_bound = nf if not is_comm and ops[_KV_DEP, i] > 0.0 else -1  # constant comparisons are no breakpoints
        nf += 1 if f_bound >= 0 else 0
        flops0, flops_kv, kv0, kv_kv = ops[_FLOPS, i], ops[_FLOPS_KV, i], ops[_KV_READ, i], ops[_KV_READ_KV, i]
        fixed, act = ops[_FIXED_BYTES, i], ops[_ACT, i]
        reuse_row, wb, a_unit, m_rows = ops[_REUSE_ROW, i] > 0.0, ops[_REUSE_W, i], ops[_REUSE_A, i], ops[_REUSE_M, i]
        a_is_w = np.isnan(a_unit)
        matrix, unit_row, factor = ops[_IS_MATRIX, i] > 0.0, _N_CFG_ROWS + int(ops[_UNIT, i]), ops[_GEMM_FACTOR, i]
        joule_flop, link = ops[_JOULE_PER_FLOP, i], ops[_LINK_BYTES, i]
        for b in range(nb):
            j = j0 + b
            k = kv[b]
            att = k
            if f_window >= 0:
                flags[f_window, b] = 1.0 if k > window else 0.0
                near = min(k, window)
                att = near + beyond * (k - near)
            if f_chunk >= 0:
                piece = np.floor((k - 1.0) / chunk)
                flags[f_chunk, b] = piece
                att = k - chunk * piece
            f = flops0 + flops_kv * att
            kv_read = kv0 + kv_kv * att
            l2 = cfg[_L2, j]
            act_l2 = act * cfg[_ACT_HIT, j] if act <= l2 else 0.0
            h = kv_read + fixed + (act - act_l2)
            if reuse_row:
                w = wb * 2.0 * m_rows / f
                a = w if a_is_w else a_unit
                block = max(np.sqrt(l2 / (w + 2.0 * a)), MIN_GEMM_BLOCK)
                weights = max(f / 2.0 * w / block - wb, 0.0) if wb > l2 / 2 else 0.0
                acts = max(f / 2.0 * a / block - act, 0.0) if act > l2 / 2 else 0.0
                h = h + (weights + acts) * cfg[_REUSE_SCALE, j]
            rate = cfg[unit_row, j] * (cfg[_GEMM_EFF, j] * factor) if matrix else cfg[_VECTOR, j]
            c = f / rate
            m = h / (cfg[_HBM_BPS, j] * cfg[_HBM_EFF, j]) + act_l2 / cfg[_L2_BPS, j]
            bound = 1.0 if c > m else 0.0
            if is_comm:
                t = comm[i, j] + cfg[_LAUNCH, j]
                bound = 0.0
            else:
                t = max(c, m) + cfg[_LAUNCH, j]
            if f_bound >= 0:
                flags[f_bound, b] = bound
            work[_W_TIME, i, b] = t
            work[_W_COMPUTE, i, b] = c
            work[_W_HBM, i, b] = h
            work[_W_L2, i, b] = act_l2
            work[_W_KV, i, b] = kv_read
            work[_W_BOUND, i, b] = bound
            work[_W_JOULE, i, b] = (f * joule_flop + h * energy[1] + act_l2 * energy[2] + link * energy[3]
                                    if has_energy else 0.0)
    for r in (_S_PATH, _S_STAGE, _S_COMPUTE, _S_COMM, _S_JOULES):
        scratch[r, :nb] = 0.0
    for i in range(n_ops):
        count, stage_count, is_comm = ops[_COUNT, i], ops[_STAGE, i], ops[_IS_COMM, i] > 0.0
        for b in range(nb):
            t = work[_W_TIME, i, b]
            scratch[_S_PATH, b] += count * t
            scratch[_S_STAGE, b] += stage_count * t
            if is_comm:
                scratch[_S_COMM, b] += count * t
            else:
                scratch[_S_COMPUTE, b] += count * t * work[_W_BOUND, i, b]
            scratch[_S_JOULES, b] += count * work[_W_JOULE, i, b]
    pp, micro = pipe[0], pipe[1]
    piped = not (pp == 1.0 and micro == 1.0)
    f_pipe = nf if piped and decode else -1
    nf += 1 if f_pipe >= 0 else 0
    for b in range(nb):
        path, stage = scratch[_S_PATH, b], scratch[_S_STAGE, b]
        base = path
        if piped:
            if decode:
                other = micro * stage
                flags[f_pipe, b] = 1.0 if path > other else 0.0
                base = max(path, other)
            else:
                base = path + (micro - 1.0) * stage
        out[0, b] = base
        out[1, b] = base
    n_seg = seg.shape[0]
    if n_seg:
        nf = _segments(nb, j0, ops, cfg, seg, member, fetch, pf, work, scratch, flags, nf)
        f_pipe = nf if piped and decode else -1
        nf += 1 if f_pipe >= 0 else 0
        for b in range(nb):
            path = scratch[_S_PATH, b] - scratch[_S_SAVED_PATH, b]
            stage = scratch[_S_STAGE, b] - scratch[_S_SAVED_STAGE, b]
            time = path
            if piped:
                if decode:
                    other = micro * stage
                    flags[f_pipe, b] = 1.0 if path > other else 0.0
                    time = max(path, other)
                else:
                    time = path + (micro - 1.0) * stage
            out[1, b] = time
            scratch[_S_JOULES, b] = scratch[_S_JOULES, b] + 2.0 * energy[2] * scratch[_S_MOVED, b]
    capped = has_energy and energy[4] > 0.0
    f_cap = nf if capped else -1
    nf += 1 if capped else 0
    for b in range(nb):
        joules = scratch[_S_JOULES, b] * micro / pp
        time = out[1, b]
        out[2, b] = scratch[_S_COMPUTE, b]
        out[3, b] = scratch[_S_PATH, b] - scratch[_S_COMPUTE, b] - scratch[_S_COMM, b]
        out[4, b] = scratch[_S_COMM, b]
        out[5, b] = joules
        out[6, b] = time
        if capped:
            dynamic = joules / energy[4]
            flags[f_cap, b] = 1.0 if time > dynamic else 0.0
            out[6, b] = max(time, dynamic)
    return nf


@njit(cache=True)
def _segments(nb, j0, ops, cfg, seg, member, fetch, pf, work, scratch, flags, nf):
    """PRESERVE prefetch of every segment on every lane: the savings go to ``scratch``."""
    n_ops = ops.shape[1]
    for r in (_S_SAVED_PATH, _S_SAVED_STAGE, _S_MOVED):
        scratch[r, :nb] = 0.0
    for s in range(seg.shape[0]):
        for r in (_S_BASE, _S_HBM, _S_NEEDED, _S_END, _S_IN_L2, _S_DELTA):
            scratch[r, :nb] = 0.0
        for i in range(n_ops):
            if member[s, i] > 0.0:
                for b in range(nb):
                    scratch[_S_BASE, b] += work[_W_TIME, i, b]
                    scratch[_S_HBM, b] += work[_W_HBM, i, b]
        for q in range(fetch.shape[0]):
            if int(fetch[q, 1]) == s:
                op = int(fetch[q, 0])
                weights = ops[_PREFETCH_W, op] if pf[0] > 0.0 else 0.0
                for b in range(nb):
                    scratch[_S_NEEDED, b] += weights + (work[_W_KV, op, b] if pf[1] > 0.0 else 0.0)
        coll, working_set, coll_hbm = int(seg[s, 0]), seg[s, 3], seg[s, 4]
        for b in range(nb):
            j = j0 + b
            l2, needed = cfg[_L2, j], scratch[_S_NEEDED, b]
            free_l2 = max(l2 - working_set, 0.0)
            threshold = cfg[_THRESHOLD, j] * l2
            flags[nf, b] = 1.0 if threshold > needed else 0.0
            target = min(threshold, needed)
            flags[nf + 1, b] = 1.0 if target > free_l2 else 0.0
            lost_gap = (1.0 - cfg[_GAP, j]) * cfg[_LAUNCH, j]
            bw = cfg[_HBM_BPS, j] * cfg[_HBM_EFF, j]
            budget = max((work[_W_TIME, coll, b] - lost_gap) * bw - coll_hbm, 0.0)
            flags[nf + 2, b] = 1.0 if target > budget else 0.0
            scratch[_S_TARGET, b] = target
            scratch[_S_USEFUL, b] = min(target, free_l2)
            scratch[_S_DURING, b] = min(target, budget)
        nf += 3
        for q in range(fetch.shape[0]):
            if int(fetch[q, 1]) != s:
                continue
            op = int(fetch[q, 0])
            weights = ops[_PREFETCH_W, op] if pf[0] > 0.0 else 0.0
            for b in range(nb):
                j = j0 + b
                wanted = weights + (work[_W_KV, op, b] if pf[1] > 0.0 else 0.0)
                end = scratch[_S_END, b] + wanted
                scratch[_S_END, b] = end
                target = scratch[_S_TARGET, b]
                lo_a, lo_b = end - wanted, target - scratch[_S_USEFUL, b]
                flags[nf, b] = 1.0 if lo_a > lo_b else 0.0
                lo = max(lo_a, lo_b)
                flags[nf + 1, b] = 1.0 if end > target else 0.0
                hi = min(end, target)
                flags[nf + 2, b] = 1.0 if hi - lo > 0.0 else 0.0
                in_l2 = max(hi - lo, 0.0)
                bw = cfg[_HBM_BPS, j] * cfg[_HBM_EFF, j]
                mem = (work[_W_HBM, op, b] - in_l2) / bw + (work[_W_L2, op, b] + in_l2) / cfg[_L2_BPS, j]
                compute = work[_W_COMPUTE, op, b]
                flags[nf + 3, b] = 1.0 if compute > mem else 0.0
                op_time = max(compute, mem) + cfg[_LAUNCH, j]
                scratch[_S_IN_L2, b] += in_l2
                scratch[_S_DELTA, b] += op_time - work[_W_TIME, op, b]
            nf += 4
        count, stage_count, members = seg[s, 1], seg[s, 2], seg[s, 5]
        for b in range(nb):
            j = j0 + b
            base = scratch[_S_BASE, b]
            lost_gap = (1.0 - cfg[_GAP, j]) * cfg[_LAUNCH, j]
            bw = cfg[_HBM_BPS, j] * cfg[_HBM_EFF, j]
            target, during = scratch[_S_TARGET, b], scratch[_S_DURING, b]
            busy = (scratch[_S_HBM, b] - scratch[_S_IN_L2, b] + (target - during)) / bw + members * lost_gap
            ops_time = base + scratch[_S_DELTA, b]
            flags[nf, b] = 1.0 if ops_time > busy else 0.0
            with_prefetch = max(ops_time, busy)
            flags[nf + 1, b] = 1.0 if with_prefetch > base else 0.0
            prefetch = cfg[_PREFETCH, j] > 0.0
            seg_time = min(with_prefetch, base) if prefetch else base
            saving = base - seg_time
            scratch[_S_SAVED_PATH, b] += count * saving
            scratch[_S_SAVED_STAGE, b] += stage_count * saving
            if prefetch and with_prefetch < base:
                scratch[_S_MOVED, b] += count * during
        nf += 2
    return nf


@njit(cache=True)
def _buffers(n_ops, cap, lanes):
    return np.empty((cap, lanes)), np.empty((_W_ROWS, n_ops, lanes)), np.empty((_S_ROWS, lanes)), np.empty((7, lanes))


@njit(cache=True)
def prefill_pass(ops, comm, cfg, seg, member, fetch, pf, energy, pipe):
    """(7, n) values of the prefill pass of every configuration (``static_kernel.DECODE_COLUMNS``)."""
    n, n_ops = cfg.shape[1], ops.shape[1]
    lanes = max(min(BLOCK, n), 1)  # a block's buffers are touched lane by lane: a small n gets small ones
    flags, work, scratch, out = _buffers(n_ops, flag_capacity(n_ops, seg.shape[0], fetch.shape[0]), lanes)
    res = np.empty((7, n))
    kv = np.zeros(lanes)
    for j0 in range(0, n, lanes):
        nb = min(lanes, n - j0)
        _pass(kv, j0, nb, ops, comm, cfg, seg, member, fetch, pf, energy, pipe, False, False, flags, work, scratch,
              out)
        res[:, j0:j0 + nb] = out[:, :nb]
    return res


@njit(cache=True)
def decode_means(ops, comm, cfg, seg, member, fetch, pf, energy, pipe, first, last):
    """(7, n) exact mean over the decode steps with KV lengths ``first..last`` of every
    configuration (``static_kernel.DECODE_COLUMNS``): a block of configurations is evaluated at
    both ends; a configuration whose ends took every flagged comparison the same way is affine
    over the run and averages its ends; the others are halved until that holds (one lane)."""
    n, n_ops = cfg.shape[1], ops.shape[1]
    cap = flag_capacity(n_ops, seg.shape[0], fetch.shape[0])
    lanes = max(min(BLOCK, n), 1)  # as prefill_pass
    flags_lo, work, scratch, lo_v = _buffers(n_ops, cap, lanes)
    flags_hi, _, _, hi_v = _buffers(n_ops, cap, lanes)
    res = np.empty((7, n))
    kv_lo, kv_hi = np.full(lanes, first), np.full(lanes, last)
    steps = last - first + 1.0
    flags_1, work_1, scratch_1, out_1 = _buffers(n_ops, cap, 1)
    stack = (np.empty(_STACK, np.int64), np.empty(_STACK, np.int64), np.empty((_STACK, 7)), np.empty((_STACK, 7)),
             np.empty((_STACK, cap)), np.empty((_STACK, cap)), flags_1, work_1, scratch_1, out_1)
    for j0 in range(0, n, lanes):
        nb = min(lanes, n - j0)
        nf = _pass(kv_lo, j0, nb, ops, comm, cfg, seg, member, fetch, pf, energy, pipe, True, False, flags_lo, work,
                   scratch, lo_v)
        _pass(kv_hi, j0, nb, ops, comm, cfg, seg, member, fetch, pf, energy, pipe, True, True, flags_hi, work,
              scratch, hi_v)
        for b in range(nb):
            same = True
            for q in range(nf):
                if flags_lo[q, b] != flags_hi[q, b]:
                    same = False
                    break
            if same or last - first <= 1:
                for c in range(7):
                    total = lo_v[c, b] if last == first else steps * (lo_v[c, b] + hi_v[c, b]) / 2
                    res[c, j0 + b] = total / steps
            else:
                _bisect(j0 + b, b, lo_v, hi_v, flags_lo, flags_hi, nf, int(first), int(last), ops, comm, cfg, seg,
                        member, fetch, pf, energy, pipe, stack, res)
    return res


@njit(cache=True)
def _bisect(j, b, lo_v, hi_v, flags_lo, flags_hi, nf, first, last, ops, comm, cfg, seg, member, fetch, pf, energy,
            pipe, stack, res):
    """Exact mean of configuration ``j`` (lane ``b`` of the block's end values): halve the
    intervals whose ends disagree, one lane at a time."""
    lo_s, hi_s, lo_sv, hi_sv, lo_sf, hi_sf, flags, work, scratch, out = stack
    kv = np.empty(1)
    lo_s[0], hi_s[0] = first, last
    for c in range(7):
        lo_sv[0, c], hi_sv[0, c] = lo_v[c, b], hi_v[c, b]
    for q in range(nf):
        lo_sf[0, q], hi_sf[0, q] = flags_lo[q, b], flags_hi[q, b]
    acc = np.zeros(7)
    reuse = False  # the lane's work holds this configuration's values after the first call
    sp = 1
    while sp > 0:
        sp -= 1
        lo, hi = lo_s[sp], hi_s[sp]
        same = True
        for q in range(nf):
            if lo_sf[sp, q] != hi_sf[sp, q]:
                same = False
                break
        if same or hi - lo <= 1:
            for c in range(7):
                acc[c] += lo_sv[sp, c] if hi == lo else (hi - lo + 1.0) * (lo_sv[sp, c] + hi_sv[sp, c]) / 2
            continue
        mid = (lo + hi) // 2
        kv[0] = mid
        _pass(kv, j, 1, ops, comm, cfg, seg, member, fetch, pf, energy, pipe, True, reuse, flags, work, scratch, out)
        reuse = True
        for c in range(7):
            acc[c] -= out[c, 0]  # mid belongs to both halves
        # [lo, mid] replaces the popped entry; [mid, hi] goes on top of it
        lo_s[sp + 1], hi_s[sp + 1] = mid, hi
        hi_sv[sp + 1, :], hi_sf[sp + 1, :] = hi_sv[sp, :], hi_sf[sp, :]
        lo_sv[sp + 1, :], lo_sf[sp + 1, :] = out[:, 0], flags[:, 0]
        hi_s[sp] = mid
        hi_sv[sp, :], hi_sf[sp, :] = out[:, 0], flags[:, 0]
        sp += 2
    for c in range(7):
        res[c, j] = acc[c] / (last - first + 1.0)
