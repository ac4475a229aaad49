"""PRESERVE: prefetching weights and KV cache into L2 while a collective runs.

The prefetch is a second stream over the timeline of a segment (a collective and the operators
up to the next one). It may use HBM bandwidth whenever the compute stream leaves HBM idle, with
one rule for every part of the timeline:

- the collective: its wire time (HBM idle except the collective's own traffic ``H_c``);
- compute-bound operators: the time their HBM is idle beside the compute;
- kernel-launch gaps (of the collective and of every operator): a fraction ``g`` of them,
  ``prefetch_launch_gap_fraction`` (0 by default). Whether a runtime keeps HBM streaming through
  launch gaps was never measured, and on the 910B the gaps are an estimate too, so the switch
  has both answers documented (docs/preserve_reproduction.md): ``g = 0`` no gap is usable, ``g =
  1`` every gap is.

For a collective of duration ``T_c`` (launch ``L`` included) followed by operators that read
``D`` bytes of weights and KV cache, a prefetch of ``target = min(threshold, D)`` bytes is issued
in operator order when the collective starts:

- ``B_c = max((T_c - (1 - g) L) * bw - H_c, 0)`` bytes finish during the collective. The rest
  spills past it and competes with the segment's operators for HBM bandwidth.
- L2 holds ``cap = max(L2 - working set, 0)`` prefetched bytes. Beyond that, LRU evicts the
  earliest prefetched lines: only the last ``U = min(target, cap)`` bytes are still there when
  used; the evicted ``target - U`` bytes were read for nothing and are read again.
- An operator reads its prefetched bytes at L2 bandwidth and the rest from HBM.
- The segment takes ``max(sum of operator times, HBM busy time)``, the HBM busy time being the
  operators' HBM bytes plus the spilled prefetch traffic over the bandwidth, plus the ``(1 - g)``
  share of their launch gaps HBM cannot use: the spill fills compute-bound slack and the usable
  gaps. Without prefetching the same expression is the baseline (the busy time never exceeds the
  operator times), so the two cases follow one rule.
- The runtime prefetches only where it pays: a segment never takes longer than without it.

What limited the prefetch, ``P = min(capacity, B_c, D)``, is reported per segment as the smallest
of the three: ``capacity`` (the threshold or the free L2), ``collective_time`` (the HBM bytes
the collective leaves time for), or ``nothing_left`` (the segment's D).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from roofline.graph import OpTable
from roofline.timing import HardwareArrays, OpTimes, Recorder, collective_hbm

__all__ = ["SegmentPrefetch", "segment_prefetch", "segment_layout", "LIMITS"]

LIMITS = ("capacity", "collective_time", "nothing_left")


@dataclass(frozen=True)
class SegmentPrefetch:
    """Prefetch of every segment of a table on every configuration.

    Per-segment arrays have shape (n_segments, n). ``ops`` lists the table index of every
    segment operator (segments in order); ``op_time_s`` gives their times, shape (len(ops), n).
    """

    ops: np.ndarray
    collective_s: np.ndarray
    needed_bytes: np.ndarray  # D: weights and KV the segment reads (what may be prefetched)
    prefetched_bytes: np.ndarray  # bytes finished during the collective
    useful_bytes: np.ndarray  # prefetched bytes still in L2 when used
    base_s: np.ndarray  # segment time without prefetching
    time_s: np.ndarray  # segment time with prefetching (never above base_s)
    limit: np.ndarray  # index into LIMITS
    prefetch_time_s: np.ndarray  # time to read D from HBM at the effective bandwidth
    helps: np.ndarray  # (n_segments, n) the runtime prefetches (it pays)
    base_op_time_s: np.ndarray  # (len(ops), n) operator times without prefetching
    fetch_rows: np.ndarray  # rows of ``ops`` whose operators read prefetchable bytes
    fetch_seg: np.ndarray  # their segment numbers
    fetch_op_time_s: np.ndarray  # their times when the segment prefetches
    stall_s: np.ndarray  # (n_segments, n) time the segment waits on spilled prefetch traffic

    @property
    def saving_s(self) -> np.ndarray:
        return self.base_s - self.time_s

    @property
    def op_time_s(self) -> np.ndarray:
        """Operator times: with prefetching where the segment prefetches, else the baseline."""
        out = self.base_op_time_s.copy()
        out[self.fetch_rows] = np.where(self.helps[self.fetch_seg], self.fetch_op_time_s,
                                        self.base_op_time_s[self.fetch_rows])
        return out


@dataclass(frozen=True)
class _Layout:
    """Segment membership as matrices, and the operators that read prefetchable bytes."""

    ops: np.ndarray  # table index of every segment operator, segments in order
    member: np.ndarray  # (n_segments, n_ops) 1 where the operator is in the segment
    fetch: np.ndarray  # table index of the operators with prefetchable bytes, segments in order
    fetch_rows: np.ndarray  # their position in ``ops``
    fetch_seg: np.ndarray  # their segment number
    fetch_member: np.ndarray  # (n_segments, len(fetch)) membership of those operators
    fetch_starts: np.ndarray  # first position of each segment within ``fetch`` (or -1)
    collective: np.ndarray  # table index of each segment's preceding collective
    working_set: np.ndarray  # bytes of L2 the collective and the segment's activations hold
    collective_hbm: np.ndarray  # HBM bytes each preceding collective moves


def segment_layout(table: OpTable, weights: bool, kv: bool) -> _Layout:
    """Segment membership of ``table`` and its operators that read prefetchable bytes (weights,
    KV cache or both, as the switches say)."""
    # Tables are immutable and cached by build_phase: keep the layouts beside the table.
    cache = table.__dict__.setdefault("_prefetch_layouts", {})
    if (weights, kv) not in cache:
        cache[(weights, kv)] = _make_layout(table, weights, kv)
    return cache[(weights, kv)]


def _make_layout(table: OpTable, weights: bool, kv: bool) -> _Layout:
    ops, seg_of, ws, hbm = [], [], [], []
    member = np.zeros((len(table.segments), table.n_ops))
    for j, seg in enumerate(table.segments):
        ops.extend(seg.ops)
        seg_of.extend([j] * len(seg.ops))
        member[j, list(seg.ops)] = 1.0
        ws.append(table.comm_bytes[seg.collective_op] + table.act_bytes[list(seg.ops)].max())
        hbm.append(collective_hbm(table, seg.collective_op))
    ops_arr, seg_arr = np.array(ops, dtype=int), np.array(seg_of, dtype=int)
    reads = np.zeros(table.n_ops, dtype=bool)
    if weights:
        reads |= table.prefetch_weight_bytes > 0
    if kv:
        reads |= (table.kv_read_bytes > 0) | (table.kv_read_per_kv > 0)
    rows = np.flatnonzero(reads[ops_arr])
    fetch_seg = seg_arr[rows]
    fetch_member = (fetch_seg[None, :] == np.arange(len(table.segments))[:, None]).astype(float)
    starts = np.array([np.argmax(fetch_seg == j) if (fetch_seg == j).any() else -1
                       for j in range(len(table.segments))], dtype=int)
    collective = np.array([seg.collective_op for seg in table.segments], dtype=int)
    return _Layout(ops_arr, member, ops_arr[rows], rows, fetch_seg, fetch_member, starts, collective,
                   np.array(ws), np.array(hbm))


def _cumsum_within(a: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Running sum of the rows of ``a`` that restarts at every new segment number in ``seg``.

    Row by row: numpy's strided accumulate along axis 0 is several times slower here, and there
    are only a few operators.
    """
    out = np.empty_like(a)
    for i in range(len(a)):
        if i and seg[i] == seg[i - 1]:
            np.add(out[i - 1], a[i], out=out[i])
        else:
            out[i] = a[i]
    return out


def segment_prefetch(table: OpTable, hw: HardwareArrays, t: OpTimes,
                     rec: Recorder | None = None) -> SegmentPrefetch:
    """Prefetch model of every segment of ``table`` (see the module docstring).

    Only operators that read prefetchable bytes change; the others enter through segment sums.
    Arrays have configurations on the last axis.
    """
    rec = rec or Recorder(active=False)
    lay = segment_layout(table, hw.prefetch_weights, hw.prefetch_kv)
    fetch, fseg = lay.fetch, lay.fetch_seg
    bw = t.hbm_Bps_eff  # (n,)
    coll_s = t.total_s[lay.collective]
    base = lay.member @ t.total_s

    wanted = np.zeros((len(fetch), hw.n))
    # only what lives in HBM is prefetched (bytes placed in a slower tier are read from it in place)
    w_hbm, kv_hbm = (1.0 - hw.weight_tier_fraction.sum(axis=1), 1.0 - hw.kv_tier_fraction.sum(axis=1)) \
        if hw.spills else (None, None)
    if hw.prefetch_weights:
        weights = table.prefetch_weight_bytes[fetch][:, None]
        wanted += weights if w_hbm is None else weights * w_hbm
    if hw.prefetch_kv:
        wanted += t.kv_read_bytes[fetch] if kv_hbm is None else t.kv_read_bytes[fetch] * kv_hbm
    end = _cumsum_within(wanted, fseg)  # bytes up to the end of each operator, per segment
    needed = lay.fetch_member @ wanted
    l2 = hw.l2_bytes
    free_l2 = np.maximum(l2 - lay.working_set[:, None], 0.0)
    threshold = hw.prefetch_threshold_fraction * l2
    target = rec.min(threshold, needed)
    useful = rec.min(target, free_l2)
    # launch gaps HBM cannot use (see the module docstring): the collective's and each operator's
    lost_gap_s = (1.0 - hw.prefetch_launch_gap_fraction) * hw.launch_s
    budget = np.maximum((coll_s - lost_gap_s) * bw - lay.collective_hbm[:, None], 0.0)
    during = rec.min(target, budget)

    # LRU keeps the last `useful` bytes of each segment's prefetch order [0, target)
    lo = rec.max(end - wanted, (target - useful)[fseg])
    hi = rec.min(end, target[fseg])
    in_l2 = rec.max(hi - lo, 0.0)

    memory = (t.hbm_bytes[fetch] - in_l2) / bw + (t.l2_bytes[fetch] + in_l2) / hw.l2_Bps
    if t.tier_s is not None:
        memory = memory + t.tier_s[fetch]
    op_time = rec.max(t.compute_s[fetch], memory) + hw.launch_s
    in_l2_seg = lay.fetch_member @ in_l2
    launches = lay.member.sum(axis=1)[:, None] * lost_gap_s
    hbm_busy = (lay.member @ t.hbm_bytes - in_l2_seg + (target - during)) / bw + launches
    ops_time = base + lay.fetch_member @ (op_time - t.total_s[fetch])
    with_prefetch = rec.max(ops_time, hbm_busy)
    time = np.where(hw.prefetch, rec.min(with_prefetch, base), base)
    helps = hw.prefetch & (with_prefetch < base)
    stall = np.where(helps, with_prefetch - ops_time, 0.0)

    limit = np.argmin(np.stack([np.minimum(threshold, free_l2), budget, needed]), axis=0)
    # where the runtime does not prefetch (it would not pay), nothing is prefetched
    during, useful = np.where(helps, during, 0.0), np.where(helps, useful, 0.0)
    return SegmentPrefetch(lay.ops, coll_s, needed, during, useful, base, time, limit, needed / bw,
                           helps, t.total_s[lay.ops], lay.fetch_rows, fseg, op_time, stall)
