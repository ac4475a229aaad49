"""Phase times on arrays of hardware configurations: the kernel shared by ``predict`` and sweeps.

TTFT is one prefill pass. TPOT is the mean decode-step time over the generated tokens, while the
KV length grows by one token per step. A decode step's time is a piecewise-linear function of the
KV length (sums of max/min of affine terms), so the mean over every step is computed exactly by
:func:`mean_over_steps` from a few evaluations, not from the first step and not by sampling.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from roofline.graph import OpTable
from roofline.prefetch import SegmentPrefetch, segment_prefetch
from roofline.timing import (
    HardwareArrays,
    OpTimes,
    Recorder,
    async_tp_saving_s,
    comm_times,
    op_times,
)

__all__ = ["PassResult", "DecodeSteps", "evaluate_pass", "mean_over_steps", "StepFunction"]

StepFunction = Callable[[np.ndarray, np.ndarray, Recorder], np.ndarray]


@dataclass(frozen=True)
class PassResult:
    """One pass (prefill, or one decode step) on every configuration."""

    base_s: np.ndarray  # (n,) without prefetching
    time_s: np.ndarray  # (n,) with prefetching where enabled
    times: OpTimes
    prefetch: SegmentPrefetch | None

    def op_time_with_prefetch_s(self, table: OpTable) -> np.ndarray:
        """(n_ops, n) operator times, segment operators at their prefetch-adjusted times."""
        out = self.times.total_s.copy()
        if self.prefetch is not None:
            out[self.prefetch.ops] = self.prefetch.op_time_s
        return out


def _pipeline(path_s: np.ndarray, stage_s: np.ndarray, table: OpTable, rec: Recorder) -> np.ndarray:
    """Pipeline makespan: the first micro-batch crosses every stage, the others follow at the
    pace of the slowest stage (prefill); a decode step is bounded by both (steady state)."""
    m = table.microbatches
    if table.pp == 1 and m == 1:
        return path_s
    if table.phase == "prefill":
        return path_s + (m - 1) * stage_s
    return rec.max(path_s, m * stage_s)


def evaluate_pass(table: OpTable, hw: HardwareArrays, kv_len: np.ndarray | None = None,
                  rec: Recorder | None = None, comm_s: np.ndarray | None = None) -> PassResult:
    """Time of one pass of ``table`` on every configuration, without and with prefetching."""
    rec = rec or Recorder(active=False)
    t = op_times(table, hw, kv_len, rec, comm_s)
    if hw.async_tp and table.phase == "prefill":  # TP all-reduces overlap the next GEMM
        t = replace(t, total_s=t.total_s - async_tp_saving_s(table, t, hw))
    path = table.count @ t.total_s
    stage = table.stage_count @ t.total_s
    base = _pipeline(path, stage, table, rec)
    if not table.segments:
        return PassResult(base, base, t, None)
    pf = segment_prefetch(table, hw, t, rec)
    saving = pf.saving_s
    path_pf = path - np.array([s.count for s in table.segments]) @ saving
    stage_pf = stage - np.array([s.stage_count for s in table.segments]) @ saving
    return PassResult(base, _pipeline(path_pf, stage_pf, table, rec), t, pf)


class DecodeSteps:
    """Decode steps of one table on some configurations: the collective times (independent of
    the KV length) are computed once; :meth:`at` evaluates any rows at any KV lengths."""

    def __init__(self, table: OpTable, hw: HardwareArrays) -> None:
        self.table, self.hw = table, hw
        self.comm_s = comm_times(table, hw)

    def at(self, rows: np.ndarray, kv_len: np.ndarray, rec: Recorder | None = None) -> PassResult:
        """The decode pass of configurations ``rows`` at KV lengths ``kv_len`` (both shape (k,))."""
        return evaluate_pass(self.table, self.hw.take(rows), kv_len, rec, self.comm_s[:, rows])


def mean_over_steps(step: StepFunction, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Exact mean of ``step(rows, L)`` over the integers ``first <= L <= last``, per row.

    ``step(rows, L, rec)`` returns values of shape (len(rows), k) and records every max/min it
    takes in ``rec``. Where all recorded comparisons agree at both ends of an interval, every
    comparison is between affine functions that cannot cross inside it (they would have to cross
    back), so the values are affine there and their mean is the mean of the ends. Intervals
    whose ends disagree are halved until they agree or hold two steps; only those rows are
    evaluated again.
    """
    first = np.asarray(first, dtype=np.int64)
    last = np.asarray(last, dtype=np.int64)
    n = len(first)
    rows = np.arange(n)
    both_v, both_f = _eval(step, np.concatenate([rows, rows]), np.concatenate([first, last]))
    lo_v, hi_v, lo_f, hi_f = both_v[:n], both_v[n:], both_f[:n], both_f[n:]
    total = np.zeros((n, lo_v.shape[1]))
    work = (rows, first, last, lo_v, lo_f, hi_v, hi_f)
    while len(work[0]):
        rows, lo, hi, lo_v, lo_f, hi_v, hi_f = work
        settled = np.all(lo_f == hi_f, axis=1) | (hi - lo <= 1)
        steps = (hi - lo + 1)[:, None]
        done_sum = np.where(hi[:, None] == lo[:, None], lo_v, steps * (lo_v + hi_v) / 2)
        np.add.at(total, rows[settled], done_sum[settled])
        split = ~settled
        if not split.any():
            break
        rows, lo, hi = rows[split], lo[split], hi[split]
        lo_v, lo_f, hi_v, hi_f = lo_v[split], lo_f[split], hi_v[split], hi_f[split]
        mid = (lo + hi) // 2
        mid_v, mid_f = _eval(step, rows, mid)
        np.subtract.at(total, rows, mid_v)  # mid belongs to both halves
        work = tuple(np.concatenate(pair) for pair in (
            (rows, rows), (lo, mid), (mid, hi), (lo_v, mid_v), (lo_f, mid_f), (mid_v, hi_v), (mid_f, hi_f)))
    return total / (last - first + 1)[:, None]


def _eval(step: StepFunction, rows: np.ndarray, kv_len: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rec = Recorder()
    values = step(rows, kv_len, rec)
    n = len(rows)
    flags = [np.broadcast_to(f, (f.shape[0], n)) for f in rec.flags]
    # one row of flags per configuration: pack the (k, n) blocks and turn them around once
    packed = np.concatenate(flags, axis=0).T if flags else np.zeros((n, 0), dtype=bool)
    return values, packed
