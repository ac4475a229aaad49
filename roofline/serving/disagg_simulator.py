"""Event simulator of disaggregated serving: a prefill pool, KV transfers, a decode pool.

``x`` prefill instances and ``y`` decode instances step on one clock (a heap of events):

- a request becomes schedulable its per-request overhead after it arrives and joins the prefill
  instance with the fewest prompt tokens left to prefill (ties: the lowest index);
- a prefill instance runs chunked-prefill steps of prompts only (first come, first served, the
  ``max_num_batched_tokens`` budget, at most ``max_num_seqs`` prompts): the step time of the
  aggregated simulator with no decode part, ``prefill_scale x step + overheads``; the step that
  finishes a prompt samples its first token;
- the KV cache of a finished prompt then crosses the link (:mod:`roofline.serving.kv_transfer`);
  when it lands, the first token reaches the client (**TTFT includes the transfer**) and the
  request joins the decode instance with the fewest requests;
- a decode instance admits first come, first served while ``max_num_seqs`` and its KV blocks
  allow (prompt + output reserved, no preemption, as the aggregated simulator) and runs
  decode-only steps: ``decode_scale x (body + head + attention) + overheads``, one token per
  sequence (``tokens_per_step`` with speculative decoding). A request waiting for a decode slot
  delays its second token (TPOT), not its first.

Closed loop: the first ``concurrency`` requests arrive at 0, each later one when one finishes.
Runs of decode steps are evaluated in one go up to the next event anywhere, so the cost is per
event, not per step. The result is a :class:`~roofline.serving.simulator.SimulationTrace`, so
:func:`~roofline.serving.metrics.trace_metrics` gives the same statistics as the aggregated mode.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass

import numpy as np

from roofline.exceptions import InfeasibleConfigError
from roofline.serving.overheads import Overheads
from roofline.serving.settings import EngineSettings
from roofline.serving.simulator import SimulationTrace
from roofline.serving.step_cost import ScalarStepCost
from roofline.serving.workload import Requests

__all__ = ["PoolEngine", "simulate_disagg"]

_ARRIVE, _PREFILL_END, _KV_LANDS, _DECODE_END = 0, 1, 2, 3


@dataclass(frozen=True)
class PoolEngine:
    """One pool: ``count`` identical instances with their step cost, settings and overheads;
    ``kv_capacity_tokens`` per instance."""

    cost: ScalarStepCost
    settings: EngineSettings
    overheads: Overheads
    count: int
    kv_capacity_tokens: float


def _check_fits(prompt: np.ndarray, output: np.ndarray, pool: PoolEngine, what: str) -> float:
    block = pool.settings.block_tokens
    total_blocks = float(pool.kv_capacity_tokens // block)
    need = np.ceil((prompt + output) / block)
    if need.max() > total_blocks:
        r = int(np.argmax(need))
        raise InfeasibleConfigError(
            f"{what} instance: a request of {int(prompt[r])} + {int(output[r])} tokens needs {int(need[r] * block)} "
            f"tokens of KV cache; an instance holds {int(total_blocks * block)}: raise its tp")
    return total_blocks


def simulate_disagg(requests: Requests, prefill: PoolEngine, decode: PoolEngine, transfer_s: np.ndarray, *,
                    concurrency: int | None = None) -> SimulationTrace:
    """Run every request through the prefill pool, its KV transfer (``transfer_s`` per request)
    and the decode pool. Closed loop when ``concurrency`` is given, else open loop at
    ``requests.arrival_s``."""
    n = len(requests)
    prompt, output = requests.prompt.astype(float), requests.output.astype(float)
    pre_left = requests.prefill.astype(float)
    _check_fits(prompt, np.ones(n), prefill, "prefill")
    dec_blocks_total = _check_fits(prompt, output, decode, "decode")
    block = decode.settings.block_tokens
    need_blocks = np.ceil((prompt + output) / block)
    po, do = prefill.overheads, decode.overheads
    ps, ds = prefill.settings, decode.settings
    verify, tps = ds.speculative.verify_tokens, ds.speculative.tokens_per_step

    arrival = np.full(n, np.nan)
    first, finish = np.full(n, np.nan), np.full(n, np.nan)
    kv = np.zeros(n)  # tokens in the decode instance's KV cache
    out_left = np.zeros(n)
    events: list[tuple[float, int, int, int]] = []
    # events that can bring a request to a decode instance (arrivals, prefill ends, KV landings,
    # decode runs that end with a finish while closed-loop clients still send): a decode run
    # stops at the first step ending after the earliest of them (lazy deletion by sequence number)
    wake: list[tuple[float, int]] = []
    woken: set[int] = set()
    seq = 0

    def push(t: float, kind: int, who: int, relevant: bool = True) -> None:
        nonlocal seq
        heapq.heappush(events, (t, seq, kind, who))
        if relevant:
            heapq.heappush(wake, (t, seq))
        seq += 1

    def next_wake() -> float | None:
        while wake and wake[0][1] in woken:
            woken.discard(heapq.heappop(wake)[1])
        return wake[0][0] if wake else None

    if concurrency is None:
        arrival[:] = requests.arrival_s.astype(float)
        released = n
    else:
        released = min(concurrency, n)
        arrival[:released] = 0.0
    for r in range(released):
        push(arrival[r] + po.request_overhead_s, _ARRIVE, r)

    p_queue: list[deque[int]] = [deque() for _ in range(prefill.count)]
    p_busy = [False] * prefill.count
    p_chunks: list[list[tuple[int, float]]] = [[] for _ in range(prefill.count)]
    d_wait: list[deque[int]] = [deque() for _ in range(decode.count)]
    d_run: list[list[int]] = [[] for _ in range(decode.count)]
    d_free = [dec_blocks_total] * decode.count
    d_busy = [False] * decode.count
    d_pending = [0.0] * decode.count  # tokens per sequence of the run in flight
    itl_s: list[np.ndarray] = []
    itl_w: list[np.ndarray] = []
    area_running = area_waiting = area_kv = 0.0
    steps = 0
    done = 0
    t = 0.0

    def start_prefill(i: int, now: float) -> None:
        nonlocal steps, area_running
        budget, chunks = float(ps.max_num_batched_tokens), []
        for r in list(p_queue[i])[: ps.max_num_seqs]:
            if budget <= 0:
                break
            c = min(pre_left[r], budget)
            chunks.append((r, c))
            budget -= c
        if not chunks:
            p_busy[i] = False
            return
        pairs = ctx = tokens = 0.0
        sampled = 0
        for r, c in chunks:
            done_tokens = prompt[r] - pre_left[r]
            pairs += c * done_tokens + c * (c + 1) / 2
            ctx += done_tokens
            tokens += c
            sampled += c >= pre_left[r]
        running = min(len(p_queue[i]), ps.max_num_seqs)
        dt = po.prefill_scale * prefill.cost.step_s(tokens, sampled, 0.0, 0.0, pairs, ctx, tokens) \
            + po.step_overhead_s + po.seq_overhead_s * running
        p_chunks[i], p_busy[i] = chunks, True
        area_running += running * dt
        steps += 1
        push(now + dt, _PREFILL_END, i)

    def start_decode(j: int, now: float) -> None:
        nonlocal steps, area_running, area_waiting, area_kv
        wait, run = d_wait[j], d_run[j]
        while wait and len(run) < ds.max_num_seqs and need_blocks[wait[0]] <= d_free[j]:
            r = wait.popleft()
            d_free[j] -= need_blocks[r]
            run.append(r)
        if not run:
            d_busy[j] = False
            return
        idx = np.array(run)
        b = len(run)
        k = max(int(np.ceil(np.min(out_left[idx]) / tps - 1e-9)), 1)
        kv0 = float(kv[idx].sum()) + b
        kv_j = kv0 + np.arange(k, dtype=float) * b * tps
        c = decode.cost
        unit = c.fixed_s(b * verify, b) + np.maximum(c.c_kv * kv_j + c.c_seq * b, c.m_kv * kv_j + c.m_seq * b)
        times = do.decode_scale * unit + do.step_overhead_s + do.seq_overhead_s * b
        stop = next_wake()
        cut = k if stop is None else int(np.searchsorted(now + np.cumsum(times), stop, side="left")) + 1
        finishes = cut >= k  # the run ends with a finish (else it stops for an event)
        if cut < k:
            k, times, kv_j = cut, times[:cut], kv_j[:cut]
        span = float(times.sum())
        area_running += b * span
        area_waiting += len(wait) * span
        area_kv += float(times @ kv_j)  # with the token each step writes, as the aggregated simulator
        steps += k
        itl_s.append(times)
        itl_w.append(np.full(k, float(b)))
        d_pending[j] = k * tps
        d_busy[j] = True
        push(now + span, _DECODE_END, j, relevant=finishes and concurrency is not None and released < n)

    while events:
        t, event, kind, who = heapq.heappop(events)
        woken.add(event)
        if kind == _ARRIVE:
            left = [float(sum(pre_left[r] for r in q)) for q in p_queue]
            i = int(np.argmin(left))
            p_queue[i].append(who)
            if not p_busy[i]:
                start_prefill(i, t)
        elif kind == _PREFILL_END:
            for r, c in p_chunks[who]:
                pre_left[r] -= c
                if pre_left[r] <= 0:
                    p_queue[who].remove(r)
                    push(t + float(transfer_s[r]), _KV_LANDS, r)
            start_prefill(who, t)
        elif kind == _KV_LANDS:
            first[who] = t
            kv[who] = prompt[who]
            out_left[who] = output[who] - 1
            if out_left[who] <= 0:
                finish[who] = t
                done += 1
                if concurrency is not None and released < n:
                    arrival[released] = t
                    push(t + po.request_overhead_s, _ARRIVE, released)
                    released += 1
                continue
            load = [len(d_run[j]) + len(d_wait[j]) for j in range(decode.count)]
            j = int(np.argmin(load))
            d_wait[j].append(who)
            if not d_busy[j]:
                start_decode(j, t)
        else:
            tokens = d_pending[who]
            run = d_run[who]
            gone = []
            for r in run:
                out_left[r] -= tokens
                kv[r] += tokens
                if out_left[r] <= 1e-9:
                    gone.append(r)
            for r in gone:
                finish[r] = t
                d_free[who] += need_blocks[r]
                done += 1
                if concurrency is not None and released < n:
                    arrival[released] = t
                    push(t + po.request_overhead_s, _ARRIVE, released)
                    released += 1
            if gone:
                gone_set = set(gone)
                d_run[who] = [r for r in run if r not in gone_set]
            start_decode(who, t)
    if done < n:
        raise RuntimeError("disaggregated simulator: requests left unfinished")  # cannot happen
    busy = max(t, 1e-30)
    zeros = np.zeros((n, 4))
    return SimulationTrace(
        arrival_s=arrival, first_token_s=first, finish_s=finish, output=requests.output.copy(),
        itl_s=np.concatenate(itl_s) if itl_s else np.zeros(0),
        itl_weight=np.concatenate(itl_w) if itl_w else np.zeros(0),
        clock_arrival=zeros, clock_first=zeros, clock_finish=zeros,
        busy_s=t, mean_running=area_running / busy, mean_waiting=area_waiting / busy,
        mean_kv_tokens=area_kv / busy, kv_capacity_tokens=float(dec_blocks_total * block * decode.count),
        steps=steps)
