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
  allow, by the framework's ``kv_admission``, and runs decode-only steps: ``decode_scale x (body
  + head + attention) + overheads``, one token per sequence (``tokens_per_step`` with speculative
  decoding). A request waiting for a decode slot delays its second token (TPOT), not its first.
  ``reserve`` (TensorRT-LLM): prompt + output reserved at admission, no preemption.
  ``on_demand`` (vLLM with the NIXL connector): the head is admitted when the blocks of its landed
  prompt fit beside those the running requests take this step, blocks are allocated as tokens
  come, and when a step's do not fit the newest request is preempted (vLLM V1
  ``Scheduler.schedule``): its KV is gone from the decode worker and, readmitted at the front of
  the queue, it prefills its prompt + generated tokens there (``NixlConnectorScheduler.
  update_state_after_alloc`` clears ``do_remote_prefill`` after the one pull, so
  ``get_num_new_matched_tokens`` loads nothing the second time; vllm-project/vllm 002a1057), in
  chunked-prefill steps beside the others' decode tokens, whose last chunk samples its next token.
  ``sglang_ratio`` (SGLang's decode server, sgl-project/sglang 0035ca42
  ``disaggregation/decode.py``): a new request is pre-allocated its prompt when prompt + 512
  (``num_reserved_decode_tokens``) fits the free KV less 512 per running request
  (``DecodePreallocQueue.pop_preallocated``); a decode step that does not fit retracts the least
  advanced request (``ScheduleBatch.retract_decode``) with its KV offloaded to host memory
  (``release_req``), resumed ahead of any new request without recomputing
  (``resume_retracted_reqs``; the copies to and from host memory take no time here).

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
from roofline.serving.disagg_analytic import decode_admission_message, decode_admits_alone
from roofline.serving.overheads import Overheads
from roofline.serving.settings import SGLANG_RATIO, SGLANG_RESERVED_DECODE_TOKENS, EngineSettings
from roofline.serving.simulator import (
    SimulationTrace,
    _blocks,
    _prompt_blocks,
    _retract_victim,
    _run_fits,
    _step_blocks,
)
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


def _check_admits(prompt: np.ndarray, pool: PoolEngine) -> None:
    """Refuse a prompt the decode pool's admission never takes, though its request fits
    (:func:`~roofline.serving.disagg_analytic.decode_admits_alone`: SGLang's 512 reserved tokens);
    the event loop would wait for it forever."""
    s = pool.settings
    ok = decode_admits_alone(s.kv_admission, prompt, pool.kv_capacity_tokens, s.block_tokens)
    if not ok.all():
        raise InfeasibleConfigError(decode_admission_message(float(prompt[int(np.argmin(ok))]), pool.kv_capacity_tokens,
                                                             s.block_tokens, "decode instance"))


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
    _check_admits(prompt, decode)
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
    # on-demand admission (vLLM, SGLang): blocks held, the requests (and tokens each) of the step or run in flight
    # and its recompute chunks; vLLM's preempted requests prefill prompt + generated tokens again (rec_left),
    # SGLang's retracted ones wait with their KV offloaded to host memory (d_back)
    on_demand = ds.kv_admission != "reserve"
    owned = np.zeros(n)
    rec_left = np.zeros(n)
    total_tokens = prompt + output
    d_plan: list[tuple[list[int], float, list[tuple[int, float]]]] = [([], 0.0, [])] * decode.count
    d_back: list[deque[int]] = [deque() for _ in range(decode.count)]
    preemptions = 0
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
        if on_demand:
            start_decode_on_demand(j, now)
            return
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

    def admit_vllm(j: int) -> None:
        """vLLM V1 ``Scheduler.schedule`` on a decode worker: the head of the queue is admitted while
        its KV (the prompt that landed, or a preempted request's prompt + generated tokens to prefill
        again) fits beside the blocks the running requests take in this step."""
        wait, run = d_wait[j], d_run[j]
        spare = d_free[j] - _step_blocks(np.array(run, dtype=np.int64), kv, rec_left, owned, verify, block)
        while wait and len(run) < ds.max_num_seqs:
            need = _prompt_blocks(wait[0], kv, rec_left, block)
            if need > spare:
                break
            spare -= need
            run.append(wait.popleft())

    def admit_sglang(j: int) -> None:
        """SGLang's disaggregated decode server (``disaggregation/decode.py``): retracted requests are
        resumed first (``resume_retracted_reqs``: their prompt + generated tokens + the reserve fit
        the free tokens less the reserve of every running request), and no new request is admitted
        while any stays retracted (``process_decode_queue``); a new one is pre-allocated its prompt
        when prompt + reserve, and prompt + min(output, 4096) less the running requests' tokens, fit
        the same room (``pop_preallocated``, ``_allocatable_token_budgets``)."""
        wait, run, back = d_wait[j], d_run[j], d_back[j]
        reserve, clip = float(SGLANG_RESERVED_DECODE_TOKENS), SGLANG_RATIO.clip_tokens
        held = float(kv[run].sum()) if run else 0.0  # retractable_tokens: the running requests' tokens

        def room() -> float:
            single = max(float(prompt[r]) + min(float(output[r]), clip) for r in run) - held if run else 0.0
            # in tokens, as SGLang counts them: the free blocks hold block tokens each (blocks of 1 with
            # SGLang's page size; the policy under another framework's blocks took the block count for tokens)
            return d_free[j] * block - max(reserve * len(run), single)

        left = room()
        while back and len(run) < ds.max_num_seqs and kv[back[0]] + reserve <= left:
            r = back.popleft()
            left -= kv[r] + reserve
            run.append(r)
            owned[r] = _blocks(kv[r], block)
            d_free[j] -= owned[r]
        if back:
            return
        while wait and len(run) < ds.max_num_seqs:
            r = wait[0]
            if max(prompt[r] + reserve, prompt[r] + min(float(output[r]), clip) - held) > room():
                break
            run.append(wait.popleft())
            owned[r] = _blocks(kv[r], block)
            d_free[j] -= owned[r]

    def plan_step(j: int) -> tuple[list[int], list[tuple[int, float]], np.ndarray, np.ndarray] | None:
        """The decoding requests and recompute chunks of instance ``j``'s next step, and the blocks
        they want and hold: short of blocks, vLLM preempts the newest request (``self.running.pop()``:
        blocks freed, to the front of the queue, prompt + generated tokens to prefill again), SGLang
        retracts the least advanced one (``retract_decode``, its KV offloaded to host memory:
        ``release_req`` -> ``offload_kv_cache``, resumed without recomputing)."""
        nonlocal preemptions
        run = d_run[j]
        while run:
            dec = [r for r in run if rec_left[r] <= 0]
            budget, chunks = float(ds.max_num_batched_tokens) - len(dec) * verify, []
            for r in run:
                if rec_left[r] > 0 and budget > 0:
                    c = min(float(rec_left[r]), budget)
                    chunks.append((r, c))
                    budget -= c
            take = np.array(dec + [r for r, _ in chunks], dtype=np.int64)
            grow_to = np.concatenate([kv[dec] + verify, [kv[r] + c for r, c in chunks]]) if len(take) else np.zeros(0)
            want = _blocks(np.minimum(grow_to, total_tokens[take]), block)
            if float(np.maximum(want - owned[take], 0.0).sum()) <= d_free[j]:
                return dec, chunks, take, want
            if ds.kv_admission == "sglang_ratio" and len(dec) > 1:
                victim = _retract_victim(np.array(dec), output - out_left, prompt)
                d_back[j].append(victim)
            else:
                victim = run[-1]
                rec_left[victim] = prompt[victim] + output[victim] - out_left[victim]
                kv[victim] = 0.0
                d_wait[j].appendleft(victim)
            run.remove(victim)
            d_free[j] += owned[victim]
            owned[victim] = 0.0
            preemptions += 1
        return None

    def start_decode_on_demand(j: int, now: float) -> None:
        nonlocal steps, area_running, area_waiting, area_kv
        (admit_sglang if ds.kv_admission == "sglang_ratio" else admit_vllm)(j)
        plan = plan_step(j)
        if plan is None:
            d_busy[j] = False
            return
        dec, chunks, take, want = plan
        run, b = d_run[j], len(d_run[j])
        waiting = len(d_wait[j]) + len(d_back[j])
        closing = concurrency is not None and released < n
        c = decode.cost
        if chunks:  # a step of recompute chunks beside the decode tokens (vLLM's chunked prefill)
            pairs = ctx = chunk_tokens = 0.0
            sampled = len(dec)
            for r, ch in chunks:
                pairs += ch * kv[r] + ch * (ch + 1) / 2
                ctx += kv[r]
                chunk_tokens += ch
                sampled += ch >= rec_left[r]
            kv_dec = float(kv[dec].sum()) + len(dec)
            full = c.step_s(len(dec) * verify + chunk_tokens, sampled, kv_dec, len(dec), pairs, ctx, chunk_tokens)
            dec_only = c.step_s(len(dec) * verify, len(dec), kv_dec, len(dec)) if dec else 0.0
            dt = do.decode_scale * dec_only + do.prefill_scale * (full - dec_only) + do.step_overhead_s \
                + do.seq_overhead_s * b
            d_free[j] -= float(np.maximum(want - owned[take], 0.0).sum())
            owned[take] = np.maximum(want, owned[take])
            area_running += b * dt
            area_waiting += waiting * dt
            area_kv += dt * (float(kv[run].sum()) + chunk_tokens + len(dec))
            steps += 1
            if dec:
                itl_s.append(np.array([dt]))
                itl_w.append(np.array([float(len(dec))]))
            d_plan[j] = (dec, float(tps), chunks)
            d_busy[j] = True
            push(now + dt, _DECODE_END, j, relevant=closing and bool(np.any(out_left[dec] <= tps + 1e-9)))
            return
        idx = np.array(dec)
        k = max(int(np.ceil(np.min(out_left[idx]) / tps - 1e-9)), 1)
        # the run ends at the step whose blocks are not free (the first step's were checked)
        k = _run_fits(kv[idx] + verify, tps, total_tokens[idx], block, d_free[j] + float(owned[idx].sum()), k)
        kv_j = float(kv[idx].sum()) + b + np.arange(k, dtype=float) * b * tps
        unit = c.fixed_s(b * verify, b) + np.maximum(c.c_kv * kv_j + c.c_seq * b, c.m_kv * kv_j + c.m_seq * b)
        times = do.decode_scale * unit + do.step_overhead_s + do.seq_overhead_s * b
        stop = next_wake()
        cut = k if stop is None else int(np.searchsorted(now + np.cumsum(times), stop, side="left")) + 1
        finishes = cut >= k and bool(np.any(out_left[idx] <= k * tps + 1e-9))
        if cut < k:
            k, times, kv_j = cut, times[:cut], kv_j[:cut]
        last = np.maximum(_blocks(np.minimum(kv[idx] + verify + (k - 1) * tps, total_tokens[idx]), block), owned[idx])
        d_free[j] -= float((last - owned[idx]).sum())
        owned[idx] = last
        span = float(times.sum())
        area_running += b * span
        area_waiting += waiting * span
        area_kv += float(times @ kv_j)
        steps += k
        itl_s.append(times)
        itl_w.append(np.full(k, float(b)))
        d_plan[j] = (dec, k * tps, [])
        d_busy[j] = True
        push(now + span, _DECODE_END, j, relevant=finishes and closing)

    def end_on_demand(j: int, t: float) -> None:
        dec, tokens, chunks = d_plan[j]
        for r in dec:
            out_left[r] -= tokens
            kv[r] += tokens
        for r, ch in chunks:
            rec_left[r] -= ch
            kv[r] += ch
            if rec_left[r] <= 0:
                out_left[r] -= 1  # the recompute's last chunk samples the next token
        gone = [r for r in d_run[j] if rec_left[r] <= 0 and out_left[r] <= 1e-9]
        leave(j, gone, [float(owned[r]) for r in gone], t)
        owned[gone] = 0.0
        start_decode(j, t)

    def leave(j: int, gone: list[int], blocks: list[float], t: float) -> None:
        """Requests ``gone`` finish on decode instance ``j`` at ``t``, freeing ``blocks``; closed-loop
        clients send the next request."""
        nonlocal done, released
        for r, freed in zip(gone, blocks):
            finish[r] = t
            d_free[j] += freed
            done += 1
            if concurrency is not None and released < n:
                arrival[released] = t
                push(t + po.request_overhead_s, _ARRIVE, released)
                released += 1
        if gone:
            gone_set = set(gone)
            d_run[j] = [r for r in d_run[j] if r not in gone_set]

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
            load = [len(d_run[j]) + len(d_wait[j]) + len(d_back[j]) for j in range(decode.count)]
            j = int(np.argmin(load))
            d_wait[j].append(who)
            if not d_busy[j]:
                start_decode(j, t)
        elif on_demand:
            end_on_demand(who, t)
        else:
            tokens = d_pending[who]
            run = d_run[who]
            gone = []
            for r in run:
                out_left[r] -= tokens
                kv[r] += tokens
                if out_left[r] <= 1e-9:
                    gone.append(r)
            leave(who, gone, [need_blocks[r] for r in gone], t)
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
        steps=steps, preemptions=preemptions)
