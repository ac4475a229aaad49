"""PRESERVE: prefetching weights and KV cache into L2 while a collective runs.

For a collective of duration ``T_c`` followed by a segment of operators that read ``D`` bytes of
weights and KV cache, a prefetch of ``target = min(threshold, D)`` bytes is issued in operator
order when the collective starts:

- It streams at the HBM bandwidth the collective leaves free: ``B_c = max(T_c * bw - H_c, 0)``
  bytes finish during the collective (``H_c`` is the collective's own HBM traffic). The rest
  spills past the collective and competes with the segment's operators for HBM bandwidth.
- L2 holds ``cap = max(L2 - working set, 0)`` prefetched bytes. Beyond that, LRU evicts the
  earliest prefetched lines: only the last ``U = min(target, cap)`` bytes are still there when
  used; the evicted ``target - U`` bytes were read for nothing and are read again.
- An operator reads its prefetched bytes at L2 bandwidth and the rest from HBM.
- The segment takes ``max(sum of operator times, HBM busy time)`` where the HBM busy time counts
  the operators' HBM bytes plus the spilled prefetch traffic.
- The runtime prefetches only where it pays: a segment never takes longer than without it.

What limited the bytes that finished during the collective is reported per segment:
``capacity`` (threshold or free L2), ``collective_time``, or ``nothing_left`` (all of D fit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from roofline.graph import OpTable
from roofline.timing import HardwareArrays, OpTimes, Recorder, collective_hbm

__all__ = ["SegmentPrefetch", "segment_prefetch", "LIMITS"]

LIMITS = ("capacity", "collective_time", "nothing_left")


@dataclass(frozen=True)
class SegmentPrefetch:
    """Prefetch of every segment of a table on every configuration.

    Per-segment arrays have shape (n, n_segments); ``op_time_s`` has shape (n, len(ops)) for
    the operators of all segments in order (``ops`` indexes the table).
    """

    ops: np.ndarray
    collective_s: np.ndarray
    needed_bytes: np.ndarray  # D: weights and KV the segment reads (what may be prefetched)
    prefetched_bytes: np.ndarray  # bytes finished during the collective
    useful_bytes: np.ndarray  # prefetched bytes still in L2 when used
    base_s: np.ndarray  # segment time without prefetching
    time_s: np.ndarray  # segment time with prefetching (never above base_s)
    op_time_s: np.ndarray  # operator times with prefetching
    limit: np.ndarray  # index into LIMITS
    prefetch_time_s: np.ndarray  # time to read D from HBM at the effective bandwidth

    @property
    def saving_s(self) -> np.ndarray:
        return self.base_s - self.time_s


@dataclass(frozen=True)
class _Layout:
    """Where each segment's operators sit in the concatenated operator axis."""

    ops: np.ndarray  # table index of every segment operator, segments in order
    starts: np.ndarray  # first position of each segment
    lasts: np.ndarray  # last position of each segment
    seg_of: np.ndarray  # segment number of every position
    collective: np.ndarray  # table index of each segment's preceding collective
    working_set: np.ndarray  # bytes of L2 the collective and the segment's activations hold
    collective_hbm: np.ndarray  # HBM bytes each preceding collective moves


def _layout(table: OpTable) -> _Layout:
    # Tables are immutable and cached by build_phase: keep the layout beside the table.
    cached = table.__dict__.get("_prefetch_layout")
    if cached is None:
        cached = table.__dict__["_prefetch_layout"] = _make_layout(table)
    return cached


def _make_layout(table: OpTable) -> _Layout:
    ops, starts, seg_of, ws, hbm = [], [], [], [], []
    for j, seg in enumerate(table.segments):
        starts.append(len(ops))
        ops.extend(seg.ops)
        seg_of.extend([j] * len(seg.ops))
        ws.append(table.comm_bytes[seg.collective_op] + table.act_bytes[list(seg.ops)].max())
        hbm.append(collective_hbm(table, seg.collective_op))
    collective = np.array([seg.collective_op for seg in table.segments], dtype=int)
    starts_arr = np.array(starts, dtype=int)
    lasts = np.append(starts_arr[1:], len(ops)) - 1
    return _Layout(np.array(ops, dtype=int), starts_arr, lasts, np.array(seg_of, dtype=int),
                   collective, np.array(ws), np.array(hbm))


def segment_prefetch(table: OpTable, hw: HardwareArrays, t: OpTimes,
                     rec: Recorder | None = None) -> SegmentPrefetch:
    """Prefetch model of every segment of ``table`` (see the module docstring)."""
    rec = rec or Recorder(active=False)
    lay = _layout(table)
    ops, starts, seg_of = lay.ops, lay.starts, lay.seg_of
    bw = t.hbm_Bps_eff  # (n, 1)
    coll_s = t.total_s[:, lay.collective]
    base_ops = t.total_s[:, ops]
    base = np.add.reduceat(base_ops, starts, axis=1)

    wanted = table.weight_bytes[ops] * hw.prefetch_weights + t.kv_read_bytes[:, ops] * hw.prefetch_kv
    end_global = np.cumsum(wanted, axis=1)
    seg_end = end_global[:, lay.lasts]
    seg_offset = np.concatenate([np.zeros((len(wanted), 1)), seg_end[:, :-1]], axis=1)
    needed = seg_end - seg_offset
    l2 = hw.l2_bytes[:, None]
    free_l2 = np.maximum(l2 - lay.working_set, 0.0)
    threshold = hw.prefetch_threshold_fraction[:, None] * l2
    target = rec.min(threshold, needed)
    useful = rec.min(target, free_l2)
    during = rec.min(target, np.maximum(coll_s * bw - lay.collective_hbm, 0.0))

    # LRU keeps the last `useful` bytes of each segment's prefetch order [0, target)
    end = end_global - seg_offset[:, seg_of]
    start = end - wanted
    lo = rec.max(start, (target - useful)[:, seg_of])
    hi = rec.min(end, target[:, seg_of])
    in_l2 = rec.max(hi - lo, 0.0)

    from_hbm = t.mem_bytes[:, ops] - in_l2
    memory = from_hbm / bw + in_l2 / hw.l2_Bps[:, None]
    op_time = rec.max(t.compute_s[:, ops], memory) + hw.launch_s[:, None]
    hbm_busy = (np.add.reduceat(from_hbm, starts, axis=1) + (target - during)) / bw
    with_prefetch = rec.max(np.add.reduceat(op_time, starts, axis=1), hbm_busy)
    on = hw.prefetch[:, None]
    time = np.where(on, rec.min(with_prefetch, base), base)
    helps = on & (with_prefetch < base)
    op_time = np.where(helps[:, seg_of], op_time, base_ops)

    fits = needed <= np.minimum(threshold, free_l2)
    limit = np.where(during < target, 1, np.where(fits, 2, 0))
    # where the runtime does not prefetch (it would not pay), nothing is prefetched
    during, useful = np.where(helps, during, 0.0), np.where(helps, useful, 0.0)
    return SegmentPrefetch(ops, coll_s, needed, during, useful, base, time, op_time, limit, needed / bw)
