"""Step-level discrete-event simulation of one engine replica serving a stream of requests.

Each step the scheduler (vLLM / SGLang / TensorRT-LLM style continuous batching):

1. admits waiting requests first come, first served while fewer than ``max_num_seqs`` run and
   the KV cache has room, by ``kv_admission`` (:data:`~roofline.serving.settings.KV_ADMISSION`):
   ``reserve`` (TensorRT-LLM's guaranteed-no-evict policy) admits a request when blocks for its
   prompt and output are free and reserves them, no preemption; ``on_demand`` (vLLM, SGLang) admits
   it when blocks for its prompt are free beside the blocks the running sequences take this step,
   and allocates blocks as tokens are scheduled (a prompt chunk's, a block each ``block_tokens``
   decoded tokens). When the running sequences' tokens of a step need more blocks than are free, the
   most recently admitted sequence is preempted (vLLM V1 ``Scheduler.schedule``, ``self.running.pop()``),
   until they fit, and nothing is admitted in that step: its blocks are freed, it goes to the front of
   the queue, and once readmitted it prefills its prompt plus the tokens it had generated again,
   then decodes the rest (its first token and the tokens it delivered stay delivered);
   ``sglang_ratio`` (SGLang) allocates on demand too but admits the head of the queue only when its
   prompt plus ``min(output left, 4096)`` is below the free blocks less every running request's
   ``min(output left, 4096) x new_token_ratio`` (a prefilling one: its prompt left plus its output),
   within the step's token budget; a refused admission waits until a running request finishes or
   is retracted; the ratio falls by a constant per decode step to a floor (in closed form over a
   run of decode steps) and is reset when the engine idles; when a decode step's tokens do not fit,
   the decoding request with the fewest generated tokens (ties: the longest prompt, then the newest)
   is retracted until they do: its blocks are freed, it joins the back of the queue to prefill its
   prompt and generated tokens again, and the ratio becomes (tokens generated + 20 x requests) /
   (their outputs + 1) of the requests left (:class:`~roofline.serving.settings.SglangRatio`);
2. gives every decoding sequence its verify tokens (1, or ``k + 1`` with speculative decoding),
   then fills the rest of the ``max_num_batched_tokens`` budget with prefill chunks, in admission
   order (chunked prefill); a ``prefill_first`` engine (SGLang) instead runs a step of prefill
   chunks alone, the decoding sequences waiting, as long as any admitted prompt is unfinished;
3. takes the step time from the scenario's :class:`~roofline.serving.step_cost.ScalarStepCost`
   plus the per-step software overhead.

With TensorRT-LLM's batch waiting on (``batch_wait_timeout_iters`` and
``batch_wait_max_tokens_ratio``, :func:`~roofline.serving.settings.batch_wait_holds`), a step that
would carry prefill chunks beside decoding sequences runs the decode tokens alone instead, while
the scheduled prompts (whole prompt tokens) plus decode tokens stay below the ratio x the token
budget and fewer steps than the timeout have been held so far.

A request's first token comes at the end of the step that finishes its prompt; each decode step
then emits ``tokens_per_step`` tokens (1 without speculation). Requests become schedulable a
fixed per-request overhead after they arrive (API server, tokenisation); closed-loop clients send
the next request when one finishes. Stretches of decode-only steps with nothing to admit are
evaluated in one go (their times are affine in the growing KV length up to one kink), so the
cost is per event (admission, finish, arrival, the step at which on-demand blocks run out: found by
bisection over the run's steps), not per step.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from roofline.exceptions import InfeasibleConfigError
from roofline.serving.settings import (
    SGLANG_RATIO,
    EngineSettings,
    SglangRatio,
    batch_wait_holds,
    batch_wait_holds_any,
)
from roofline.serving.step_cost import ScalarStepCost
from roofline.serving.workload import Requests

__all__ = ["SimulationTrace", "simulate"]


@dataclass(frozen=True)
class SimulationTrace:
    """What happened to every request (seconds from the start), and the step intervals.

    ``itl_s``/``itl_weight``: every distinct step interval and how many token deliveries it
    separates (decode sequences in that step), for inter-token-latency statistics.
    """

    arrival_s: np.ndarray
    first_token_s: np.ndarray
    finish_s: np.ndarray
    output: np.ndarray
    itl_s: np.ndarray
    itl_weight: np.ndarray
    #: (n, 4) cumulative (decode-part seconds, prefill-part seconds, steps, running sequences summed
    #: over steps) of the engine clock when each request arrived, got its first token and finished:
    #: with unit scales and no overheads, any (decode_scale, prefill_scale, step_overhead,
    #: seq_overhead) of the same closed-loop schedule gives times ``clock @ (k_d, k_p, s, s_seq)``
    clock_arrival: np.ndarray
    clock_first: np.ndarray
    clock_finish: np.ndarray
    busy_s: float
    mean_running: float
    mean_waiting: float
    mean_kv_tokens: float
    kv_capacity_tokens: float
    steps: int
    #: time spent in steps (the busy time without idle gaps waiting for arrivals), seconds
    stepping_s: float = 0.0
    #: sequences preempted (retracted, ``sglang_ratio``) for KV-cache blocks (0 with ``reserve``)
    preemptions: int = 0
    #: SGLang's ``new_token_ratio`` at the end (``sglang_ratio`` admission; NaN otherwise)
    new_token_ratio: float = float("nan")
    #: (4,) the engine clock summed over the steps that carry prefill chunks (the rest: decode-only)
    clock_prefill_steps: np.ndarray | None = None


def _repeat(weights: list[tuple[float, int]]) -> np.ndarray:
    """Each ``(value, count)`` of ``weights`` as ``count`` copies of ``value``, in order."""
    if not weights:
        return np.zeros(0)
    values, counts = zip(*weights)
    return np.repeat(np.array(values, dtype=float), np.array(counts, dtype=np.int64))


def _blocks(tokens: np.ndarray | float, block: int) -> np.ndarray:
    """KV-cache blocks of ``block`` tokens that hold ``tokens`` tokens (broadcasts)."""
    return np.ceil(np.asarray(tokens, dtype=float) / block)


def _run_fits(base_tokens: np.ndarray, step_tokens: float, limit_tokens: np.ndarray, block: int, blocks: float,
              steps: int) -> int:
    """How many of ``steps`` decode steps can allocate their blocks: the largest k <= ``steps`` with
    ``sum(ceil(min(base + (k - 1) step_tokens, limit) / block)) <= blocks`` (the total only grows
    with k), by bisection; ``base_tokens``: each sequence's tokens after the first step,
    ``limit_tokens``: its prompt + output (no sequence holds more), ``blocks``: what the sequences
    may hold together. At least 1 (the first step was checked)."""
    def fits(k: int) -> bool:
        return float(_blocks(np.minimum(base_tokens + (k - 1) * step_tokens, limit_tokens), block).sum()) <= blocks

    if fits(steps):
        return steps
    lo, hi = 1, steps  # fits(lo), not fits(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def _prompt_blocks(r: int, kv: np.ndarray, pre_left: np.ndarray, block: int) -> float:
    """Blocks waiting request ``r`` needs for its prompt (or recompute) to be admitted on demand."""
    return float(np.ceil((kv[r] + pre_left[r]) / block))


def _step_blocks(idx: np.ndarray, kv: np.ndarray, pre_left: np.ndarray, owned: np.ndarray, verify: int,
                 block: int) -> float:
    """Blocks the running requests ``idx`` take beyond those they hold in their next step: a
    decoding one's verify tokens, a prefilling one's whole remaining prompt (admission keeps room
    for it, where vLLM keeps room for the chunk it schedules)."""
    if not len(idx):
        return 0.0
    left = pre_left[idx]
    want = _blocks(kv[idx] + np.where(left > 0, left, verify), block)
    return float(np.maximum(want - owned[idx], 0.0).sum())


def _ratio_admit(waiting: deque[int], idx: np.ndarray, free_tokens: float, ratio: float, budget_tokens: float,
                 room_seqs: int, pre_left: np.ndarray, out_left: np.ndarray, resume_left: np.ndarray, block: int,
                 clip_tokens: float) -> tuple[list[int], bool]:
    """SGLang's ``PrefillAdder`` over the head of ``waiting``: the requests it admits (popped from
    ``waiting``) and whether it stopped for want of KV tokens (``NO_TOKEN``: the batch is full).

    The room is ``free_tokens`` less each running request's charge: a decoding one's
    ``min(output left, clip) x ratio``, a prefilling one's prompt left + ``min(output left, clip)``
    (``add_chunked_req``). A request is admitted while its prompt (block-rounded) + ``min(output
    left, clip)`` is below the room, which it then takes, and the step's ``budget_tokens`` (less the
    prompts left of the prefilling ones) is not spent; an empty engine admits its head whatever its
    size (the simulator's lone request always fits)."""
    prefilling = pre_left[idx] > 0
    left = np.where(prefilling, resume_left[idx] + 1.0, out_left[idx])
    charge = np.minimum(left, clip_tokens) * np.where(prefilling, 1.0, ratio) + np.where(prefilling, pre_left[idx], 0.0)
    room = free_tokens - float(charge.sum())
    budget = budget_tokens - float(pre_left[idx][prefilling].sum())
    admitted: list[int] = []
    while waiting and len(admitted) < room_seqs and budget > 0:
        r = waiting[0]
        prompt_tokens = float(np.ceil(pre_left[r] / block) * block)
        total = prompt_tokens + min(float(resume_left[r]) + 1.0, clip_tokens)
        if total >= room and (len(idx) or admitted):
            return admitted, True
        room -= total
        budget -= float(pre_left[r])
        admitted.append(waiting.popleft())
    return admitted, False


def _retract_victim(dec: np.ndarray, generated: np.ndarray, prompt: np.ndarray) -> int:
    """The decoding request SGLang's ``retract_decode`` frees first: the fewest generated tokens,
    then the longest prompt, then the newest (its stable sort, reversed, pops the last)."""
    order = np.lexsort((-np.arange(len(dec)), -prompt[dec], generated[dec]))
    return int(dec[order[0]])


def _ratio_after_retract(left: np.ndarray, generated: np.ndarray, output: np.ndarray, steps: int) -> float:
    """``new_token_ratio`` after a retraction: ``min(1, (generated + steps x requests) / (outputs + 1))``
    over the decoding requests ``left`` (``retract_decode``, ``SGLANG_RETRACT_DECODE_STEPS``)."""
    return min(1.0, (float(generated[left].sum()) + steps * len(left)) / (float(output[left].sum()) + 1.0))


def simulate(requests: Requests, cost: ScalarStepCost, settings: EngineSettings, kv_capacity_tokens: float, *,
             concurrency: int | None = None, step_overhead_s: float = 0.0,
             request_overhead_s: float = 0.0, decode_scale: float = 1.0,
             prefill_scale: float = 1.0, seq_overhead_s: float = 0.0,
             sglang_ratio: SglangRatio = SGLANG_RATIO) -> SimulationTrace:
    """Run every request of ``requests`` through one replica.

    Closed loop when ``concurrency`` is given (the first ``concurrency`` requests arrive at 0, each
    later one when an earlier one finishes); otherwise open loop at ``requests.arrival_s``.
    A step takes ``decode_scale x`` (its cost without the prefill chunks) ``+ prefill_scale x``
    (what the chunks add) ``+ step_overhead_s + seq_overhead_s x`` (running sequences) (fitted,
    see :mod:`roofline.serving.overheads`). ``sglang_ratio``: the ``new_token_ratio`` constants of the
    ``sglang_ratio`` admission.
    """
    n = len(requests)
    prompt = requests.prompt.astype(float)
    output = requests.output.astype(float)
    prefill = requests.prefill.astype(float)
    block = settings.block_tokens
    need_blocks = np.ceil((prompt + output) / block)
    total_blocks = float(kv_capacity_tokens // block)
    if need_blocks.max() > total_blocks:
        r = int(np.argmax(need_blocks))
        raise InfeasibleConfigError(
            f"a request of {int(prompt[r])} + {int(output[r])} tokens needs {int(need_blocks[r] * block)} tokens of KV "
            f"cache; the replica holds {int(total_blocks * block)}: raise tp or gpu_memory_utilization")
    if concurrency is None:
        arrival = requests.arrival_s.astype(float).copy()
        released = n
    else:
        arrival = np.full(n, np.nan)
        released = min(concurrency, n)
        arrival[:released] = 0.0
    ready = arrival + request_overhead_s  # schedulable from
    first = np.full(n, np.nan)
    finish = np.full(n, np.nan)
    kv = prompt - prefill  # tokens in the KV cache (prefix-cache hits are there at admission)
    pre_left = prefill.copy()
    # decode tokens left; infinite while prompt tokens are left, so that "finished" is out_left <= 0 alone
    out_left = np.where(prefill > 0, np.inf, 0.0)
    # per-request scalars read one at a time, as Python floats: no numpy call per read
    need, prefill_tokens = need_blocks.tolist(), prefill.tolist()
    spec = settings.speculative
    verify, tps = spec.verify_tokens, spec.tokens_per_step
    budget0 = settings.max_num_batched_tokens
    prefill_first = settings.prefill_first
    max_seqs = settings.max_num_seqs
    free_blocks = total_blocks
    # on-demand allocation (vLLM, SGLang): the blocks each request holds, what it prefills when
    # (re)admitted (its prompt less cache hits, plus the tokens it generated before a preemption) and
    # the decode tokens left when that prefill ends
    on_demand = settings.kv_admission != "reserve"  # blocks allocated as tokens are scheduled
    ratio_mode = settings.kv_admission == "sglang_ratio"  # SGLang's new_token_ratio admission and retraction
    ratio = sglang_ratio.start
    batch_full = False  # SGLang's batch_is_full: a refused admission waits for the running batch to shrink
    owned = np.zeros(n)
    total_tokens = prompt + output
    restart = prefill.copy()
    resume_left = output - 1.0
    preempted_step = False  # a preemption in this step: vLLM admits nothing until the next one
    preemptions = 0
    head_fits = False
    wait_iters, wait_ratio = settings.batch_wait_timeout_iters, settings.batch_wait_max_tokens_ratio
    batch_waiting = batch_wait_holds_any(settings.batch_wait_iters_applied, wait_ratio)
    held = 0  # TensorRT-LLM's batch_wait_iters_count
    # a decode step's time is its cost as is (the validation's unit scales): no array arithmetic for it
    plain = decode_scale == 1.0 and step_overhead_s == 0.0 and seq_overhead_s == 0.0
    fixed_memo: dict[tuple[float, float], float] = {}  # body + head of a decode-only step, by (tokens, sequences)

    waiting: deque[int] = deque()
    idx = np.zeros(0, dtype=np.int64)  # the running requests, in admission order
    n_prefilling = 0  # of which with prompt tokens left
    nxt = 0  # next request not yet in the waiting queue (requests arrive in index order)
    done = 0
    t = 0.0
    stepping = 0.0
    steps = 0
    # every step interval, in order; their weights as (decode sequences, steps) runs
    itl_s: list[float] = []
    itl_w: list[tuple[float, int]] = []
    area_running = area_waiting = area_kv = 0.0
    # the engine clock: decode-part s, prefill-part s, steps, running sequences x steps
    clock_dec = clock_pre = clock_steps = clock_seqs = 0.0
    clock_chunked = np.zeros(4)  # the same over the steps with prefill chunks
    stall = 0.0  # prefill-only steps the decoding sequences of a prefill-first engine waited through
    clock_arrival, clock_first, clock_finish = np.zeros((n, 4)), np.zeros((n, 4)), np.zeros((n, 4))

    while done < n:
        while nxt < n and ready[nxt] <= t:
            waiting.append(nxt)
            nxt += 1
        n_run = len(idx)
        if ratio_mode:
            head_fits = False
            if waiting and not batch_full and not preempted_step and n_run < max_seqs:
                admitted, batch_full = _ratio_admit(waiting, idx, free_blocks * block, ratio, budget0,
                                                    max_seqs - n_run, pre_left, out_left, resume_left, block,
                                                    sglang_ratio.clip_tokens)
                if admitted:
                    idx = np.concatenate([idx, np.array(admitted, dtype=np.int64)])
                    n_prefilling += len(admitted)
                    n_run = len(idx)
        elif on_demand:
            spare = 0.0
            head_fits = bool(waiting) and n_run < max_seqs
            if head_fits:
                spare = free_blocks - _step_blocks(idx, kv, pre_left, owned, verify, block)
                head_fits = _prompt_blocks(waiting[0], kv, pre_left, block) <= spare
            if head_fits and not preempted_step:
                admitted = []
                while waiting and n_run + len(admitted) < max_seqs:
                    b = _prompt_blocks(waiting[0], kv, pre_left, block)
                    if b > spare:
                        break
                    spare -= b
                    admitted.append(waiting.popleft())
                idx = np.concatenate([idx, np.array(admitted, dtype=np.int64)])
                n_prefilling += len(admitted)  # each has a prompt (or a recompute) to prefill
                n_run = len(idx)
                head_fits = bool(waiting) and n_run < max_seqs and _prompt_blocks(waiting[0], kv, pre_left,
                                                                                   block) <= spare
        elif waiting and n_run < max_seqs and need[waiting[0]] <= free_blocks:
            admitted = []
            while waiting and n_run + len(admitted) < max_seqs and need[waiting[0]] <= free_blocks:
                r = waiting.popleft()
                free_blocks -= need[r]
                admitted.append(r)
            idx = np.concatenate([idx, np.array(admitted, dtype=np.int64)])
            n_prefilling += sum(prefill_tokens[r] > 0 for r in admitted)  # none of them started
            n_run = len(idx)
        if not n_run:
            if nxt < n and not np.isnan(ready[nxt]):
                t = max(t, float(ready[nxt]))
                ratio = sglang_ratio.start  # an idle SGLang scheduler resets it (self_check_during_idle)
                continue
            raise RuntimeError("simulator: nothing runs and nothing arrives")  # cannot happen
        all_decoding = not n_prefilling
        # prefill-first engines (SGLang) run a step of prefill chunks alone while prompts remain
        if all_decoding:
            dec = idx
        else:
            decoding = pre_left[idx] <= 0
            dec = idx[decoding] if not prefill_first else idx[:0]
        n_dec = len(dec)
        budget = budget0 - n_dec * verify
        chunks: list[tuple[int, float, float]] = []  # (request, chunk tokens, prompt tokens left before)
        if not all_decoding:
            for r in idx[~decoding].tolist():
                if budget <= 0:
                    break
                left = float(pre_left[r])
                c = min(left, budget)
                chunks.append((r, c, left))
                budget -= c
        kv_dec = float(kv[dec].sum()) + n_dec
        hold_steps = 0  # decode-only steps TensorRT-LLM's batch waiting holds the prompts back, at most
        if batch_waiting and chunks and n_dec:
            scheduled = float(prompt[[r for r, _, _ in chunks]].sum()) + n_dec * verify
            if batch_wait_holds(held, scheduled, timeout_iters=wait_iters, max_tokens_ratio=wait_ratio,
                                max_num_tokens=budget0):
                hold_steps, chunks = wait_iters - held, []
            else:
                held = 0
        if on_demand:
            # the blocks this step's tokens need; short of them, the newest sequence is preempted
            chunk_r = np.array([r for r, _, _ in chunks], dtype=np.int64)
            take = np.concatenate([dec, chunk_r])
            # (a speculative step's verify tokens beyond the request's end take no block: at most
            # its prompt + output, which alone always fit)
            want = _blocks(np.minimum(np.concatenate([kv[dec] + verify, kv[chunk_r] + np.array([c for _, c, _ in chunks])]),
                                      total_tokens[take]), block)
            grow = np.maximum(want - owned[take], 0.0)
            if float(grow.sum()) > free_blocks:
                if ratio_mode and n_dec > 1:  # SGLang retracts the least advanced decoding request
                    generated = output - out_left
                    r = _retract_victim(dec, generated, prompt)
                    ratio = _ratio_after_retract(dec[dec != r], generated, output, sglang_ratio.retract_decode_steps)
                    batch_full = False
                else:
                    r = int(idx[-1])
                idx = idx[idx != r]
                free_blocks += float(owned[r])
                owned[r] = 0.0
                if pre_left[r] > 0:
                    n_prefilling -= 1
                else:  # decoding: its prompt and the tokens it delivered are prefilled again
                    restart[r] = prefill[r] + output[r] - out_left[r]
                    resume_left[r] = out_left[r] - 1.0
                    out_left[r] = np.inf
                pre_left[r] = restart[r]
                kv[r] = prompt[r] - prefill[r]
                if ratio_mode:
                    waiting.append(r)  # _add_request_to_queue: the back of the queue
                else:
                    waiting.appendleft(r)
                preemptions += 1
                preempted_step = True
                continue
            preempted_step = False
            blocked = (not waiting or batch_full or n_run >= max_seqs) if ratio_mode else not head_fits
        else:
            blocked = not waiting or n_run >= max_seqs or need[waiting[0]] > free_blocks
        if not chunks and blocked:
            # a run of decode-only steps up to the next finish (or arrival; or the end of a batch wait:
            # the scheduled tokens change only when a request arrives or finishes, which ends the run)
            k = int(np.ceil(float(out_left[dec].min()) / tps - 1e-9)) if n_dec else 1
            k = max(min(k, hold_steps) if hold_steps else k, 1)
            if on_demand and n_dec:  # the run ends at the step whose blocks are not free
                k = _run_fits(kv[dec] + verify, tps, total_tokens[dec], block, free_blocks + float(owned[dec].sum()), k)
            j = np.arange(k, dtype=float)
            kv_j = kv_dec + j * n_dec * tps
            key = (n_dec * verify, n_dec)
            fixed = fixed_memo.get(key)
            if fixed is None:
                fixed = fixed_memo[key] = cost.fixed_s(*key)
            unit = fixed + np.maximum(cost.c_kv * kv_j + cost.c_seq * n_dec, cost.m_kv * kv_j + cost.m_seq * n_dec)
            times = unit if plain else decode_scale * unit + step_overhead_s + seq_overhead_s * n_run
            if nxt < n and not np.isnan(ready[nxt]):
                ends = t + np.cumsum(times)
                cut = int(np.searchsorted(ends, ready[nxt], side="left")) + 1
                if cut < k:
                    k, times, kv_j, unit = cut, times[:cut], kv_j[:cut], unit[:cut]
            held += k if hold_steps else 0
            clock_dec += float(unit.sum())
            clock_steps += k
            clock_seqs += k * n_run
            span = float(times.sum())
            area_running += n_run * span
            area_waiting += len(waiting) * span
            area_kv += float(times @ kv_j)  # with the token each step writes (its slot is allocated)
            t += span
            stepping += span
            steps += k
            if stall:  # the interval since the last token spans the prefill steps in between
                times = times.copy()
                times[0] += stall
                stall = 0.0
            itl_s.extend(times.tolist())
            itl_w.append((float(n_dec), k))
            if on_demand and n_dec:
                last = np.maximum(_blocks(np.minimum(kv[dec] + verify + (k - 1) * tps, total_tokens[dec]), block),
                                  owned[dec])
                free_blocks -= float((last - owned[dec]).sum())
                owned[dec] = last
            if n_dec:
                out_left[dec] -= k * tps
                kv[dec] += k * tps
                ratio = sglang_ratio.after(ratio, k)  # update_running_batch, each decode step
        else:
            if on_demand:
                free_blocks -= float(grow.sum())
                owned[take] = np.maximum(want, owned[take])
            pairs = ctx = chunk_tokens = 0.0
            sampled = n_dec
            for r, c, left in chunks:
                kv_r = float(kv[r])
                pairs += c * kv_r + c * (c + 1) / 2
                ctx += kv_r
                chunk_tokens += c
                sampled += c >= left
            full = cost.step_s(n_dec * verify + chunk_tokens, sampled, kv_dec, n_dec, pairs, ctx, chunk_tokens)
            dec_only = cost.step_s(n_dec * verify, n_dec, kv_dec, n_dec) if n_dec else 0.0
            dt = decode_scale * dec_only + prefill_scale * (full - dec_only) + step_overhead_s \
                + seq_overhead_s * n_run
            clock_dec += dec_only
            clock_pre += full - dec_only
            clock_steps += 1.0
            clock_seqs += n_run
            if chunk_tokens > 0:
                clock_chunked += (dec_only, full - dec_only, 1.0, n_run)
            area_running += n_run * dt
            area_waiting += len(waiting) * dt
            # the KV cache held during the step: with the chunks and tokens it writes (allocated when scheduled)
            area_kv += dt * (float(kv[idx].sum()) + chunk_tokens + n_dec)
            t += dt
            stepping += dt
            steps += 1
            held += 1 if hold_steps else 0
            if prefill_first and n_prefilling < n_run:  # some sequences are decoding
                stall += dt
            if n_dec:
                itl_s.append(float(dt))
                itl_w.append((float(n_dec), 1))
                out_left[dec] -= tps
                kv[dec] += tps
                ratio = sglang_ratio.after(ratio, 1)
            for r, c, _ in chunks:
                pre_left[r] -= c
                kv[r] += c
                if pre_left[r] <= 0:
                    n_prefilling -= 1
                    if first[r] != first[r]:  # NaN: its first token (a recompute's was delivered before)
                        first[r] = t
                        clock_first[r] = (clock_dec, clock_pre, clock_steps, clock_seqs)
                    out_left[r] = resume_left[r]
        # finished requests leave and free their blocks; closed-loop clients send the next one
        finished = out_left[idx] <= 1e-9  # a mask: a list scan cost 37% of a run
        leaving = idx[finished.nonzero()[0]].tolist()
        if leaving:
            for r in leaving:
                finish[r] = t
                clock_finish[r] = (clock_dec, clock_pre, clock_steps, clock_seqs)
                if on_demand:
                    free_blocks += float(owned[r])
                    owned[r] = 0.0
                    batch_full = False
                else:
                    free_blocks += need[r]
                done += 1
                if concurrency is not None and released < n:
                    arrival[released] = t
                    ready[released] = t + request_overhead_s
                    clock_arrival[released] = (clock_dec, clock_pre, clock_steps, clock_seqs)
                    released += 1
            idx = idx[~finished]
    busy = max(t, 1e-30)
    return SimulationTrace(
        arrival_s=arrival, first_token_s=first, finish_s=finish, output=requests.output.copy(),
        itl_s=np.array(itl_s, dtype=float),
        itl_weight=_repeat(itl_w),
        clock_arrival=clock_arrival, clock_first=clock_first, clock_finish=clock_finish,
        busy_s=t, mean_running=area_running / busy, mean_waiting=area_waiting / busy,
        mean_kv_tokens=area_kv / busy, kv_capacity_tokens=float(total_blocks * block), steps=steps,
        stepping_s=stepping, preemptions=preemptions, new_token_ratio=ratio if ratio_mode else float("nan"),
        clock_prefill_steps=clock_chunked)
