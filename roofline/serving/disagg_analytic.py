"""Steady-state model of disaggregated serving, vectorized over configurations: means only.

Configuration i has ``x`` prefill and ``y`` decode instances (rows ``prefill_row`` and
``decode_row`` of two :class:`~roofline.serving.step_cost.StepCost` objects, so candidates of
different devices and parallelism evaluate together), a prompt of ``p`` tokens (``q`` of them to
prefill), ``O`` output tokens and a KV transfer of ``t_x`` seconds.

- **Prefill pool**: each instance is a single server of deterministic service ``S``, the
  prefill of one prompt alone (:func:`prefill_alone_s`, chunk by chunk as the simulator, with
  the per-step overheads), fed ``X / x`` requests per second: the M/D/1 queue,
  ``rho = X S / x`` and mean wait ``W_p = rho S / (2 (1 - rho))``; saturated when ``rho >= 1``.
- **Decode pool**: ``b`` running sequences per instance take ``d = ceil((O - 1) / tps)`` steps of
  ``step(b) = decode_scale (body(b v) + head(b) + attention(K)) + overheads``, with the summed KV
  ``K = b (p + 1 + (d - 1) tps / 2)`` (the mean over a request's life), so an instance finishes
  ``b / (d step(b))`` requests per second. ``b`` is at most what the framework's KV admission
  runs (:func:`decode_running_limit`): ``max_num_seqs`` and the sequences whose prompt + output
  fit (``reserve``), ``p + o / 2`` each with vLLM's preemption law where the clients' whole
  requests do not fit (``on_demand``, its recomputes on the decode instance lengthening a
  request's decode span by ``b`` times its own recompute time), or SGLang's pre-allocation with
  512 tokens reserved per running request (``sglang_ratio``).
- **TTFT** = request overhead + ``W_p`` + ``S`` + ``t_x``; **TPOT** = (decode admission wait +
  ``d step(b)``) / (O - 1).
- **Closed loop** at concurrency ``C``: throughput ``X(b) = y b / (d step(b'))`` and Little's law
  ``C(b) = X(b) (TTFT + d step(b'))`` rise with ``b``; ``b`` solves ``C(b) = C`` (bisection). When
  even a full decode pool holds fewer, the rest wait for a decode slot: ``(C - C(b_max)) / X``.
  A request finds the others as a loop of ``C - 1`` has them (the arrival theorem, with
  Schweitzer's approximation ``(C - 1) / C`` of each mean, as the aggregated model's closed loop):
  the M/D/1 wait times ``(C - 1) / C``, and a decoding request steps with itself and the others
  decoding then, ``b' = min(1 + b (n - 1) / n, b_max)`` with ``n = C / y`` per instance (``b``,
  the time average, counts the idle time: at ``C = 1`` a fraction of one sequence, whose MoE
  step reads a fraction of the experts). So ``C = 1`` is exact: no wait, steps of one sequence.
- **Open loop** at rate ``R``: ``b`` solves ``b = (R / y) d step(b)``; saturated (TTFT null) when
  either pool cannot sustain ``R``.
"""

from __future__ import annotations

import numpy as np

from roofline.serving.analytic import (
    _FAR_ABOVE_KNEE,
    _OPEN_KNEE_SEQS,
    _in_blocks,
    _kv_preemption,
    _md1_wait_s,
)
from roofline.serving.settings import SGLANG_RESERVED_DECODE_TOKENS
from roofline.serving.step_cost import StepCost
from roofline.serving.workload import decode_steps

__all__ = ["disagg_steady_state", "prefill_alone_s", "decode_step_s", "decode_running_limit", "recompute_s",
           "on_demand_open_loop_rate", "decode_admits_alone", "decode_admission_message",
           "DISAGG_ANALYTIC_NOTE"]

DISAGG_ANALYTIC_NOTE = ("analytic steady-state model of disaggregated serving (M/D/1 prefill pools, decode pools "
                        "at their steady batch): means only; percentiles need the event simulator (--simulate)")
_BISECTIONS = 60


def prefill_alone_s(cost: StepCost, rows: np.ndarray, prompt: np.ndarray, prefill: np.ndarray,
                    budget: np.ndarray) -> np.ndarray:
    """Seconds of the chunked-prefill steps of one prompt alone on an instance (model time, no
    scales or overheads): chunk k has ``c_k = min(M, left)`` tokens after ``done_k`` cached ones,
    ``body(c_k) + attention(c_k done_k + c_k (c_k + 1) / 2 pairs)``, and the last one samples.
    Loops over the chunks of the longest prompt (a handful), not over configurations."""
    rows = np.asarray(rows, dtype=int)
    prompt, prefill, budget = (np.asarray(a, dtype=float) for a in np.broadcast_arrays(prompt, prefill, budget))
    total = np.zeros(np.broadcast(rows, prompt).shape)
    done = prompt - prefill
    left = prefill.copy()
    for _ in range(int(np.max(np.ceil(prefill / budget)))):
        c = np.minimum(left, budget)
        active = c > 0
        pairs = c * done + c * (c + 1) / 2
        last = (left <= budget).astype(float)
        step = cost.step_s(rows, c, last, 0.0, 0.0, pairs, done, c)  # the chunk attends the done tokens
        total = total + np.where(active, step, 0.0)
        done, left = done + c, left - c
    return total


def decode_step_s(cost: StepCost, rows: np.ndarray, b: np.ndarray, kv_per_seq: np.ndarray, verify: np.ndarray,
                  scale: np.ndarray | float, step_overhead_s: np.ndarray | float,
                  seq_overhead_s: np.ndarray | float) -> np.ndarray:
    """Seconds of a decode-only step of ``b`` sequences of ``kv_per_seq`` KV tokens each (with
    the one they add), ``verify`` tokens each: ``scale x (body + head + attention) + overheads``."""
    unit = cost.step_s(rows, b * verify, b, b * kv_per_seq, b)
    return scale * unit + step_overhead_s + seq_overhead_s * b


#: The length of a recompute on a vLLM decode worker, in prompt + this share of the output: the
#: aggregated preemption law's (:func:`roofline.serving.analytic._preempting`)
_RECOMPUTE_OUTPUT_SHARE = 0.25
#: A vLLM decode pool's open loop sustains at least this share of the way from the preempting
#: instance's drain rate to its knee's (:func:`on_demand_open_loop_rate`), read off the disagg
#: simulator where the aggregated law's weight is 0 (knees below 160): the rate at which its queue
#: starts to grow over 2,000-4,000 Poisson requests, as the share w of (X_far, R_full): Llama-3.1-8B
#: bf16 H100 2k/4k (knee 115) 0.87-0.90 rps, w 0.38-0.79; DeepSeek-V3 fp8 H200 TP-8 8k/1k (knee 166)
#: 3.09-3.53 rps, w 0.35-1; Llama-3.1-70B fp8 MI300X 1k/8k (knee 134) 0.273-0.295 rps, w 0.50-0.80
_DECODE_POOL_MIN_WEIGHT = 0.6


def decode_admits_alone(kv_admission: str, prompt: np.ndarray | float, cap: np.ndarray | float,
                        block: np.ndarray | float) -> np.ndarray:
    """Where an idle decode instance of ``cap`` tokens (in blocks of ``block``) can admit a request of
    ``prompt`` tokens at all beyond its prompt + output fitting (which the callers check): SGLang's
    decode server pre-allocates a prompt only when it and ``num_reserved_decode_tokens`` (512) fit the
    free tokens (``DecodePreallocQueue.pop_preallocated``: ``required_tokens_for_request >
    full_allocatable_tokens`` breaks; ``_check_if_req_exceed_kv_capacity`` aborts only a prompt
    longer than the whole pool), so a prompt within 512 tokens of the pool waits forever. Broadcasts."""
    prompt, cap, block = (np.asarray(v, dtype=float) for v in (prompt, cap, block))
    if kv_admission != "sglang_ratio":
        return np.ones(np.broadcast(prompt, cap, block).shape, dtype=bool)
    return prompt + SGLANG_RESERVED_DECODE_TOKENS <= np.floor(cap / block) * block


def decode_admission_message(prompt: float, cap: float, block: float, where: str) -> str:
    """The error for a prompt :func:`decode_admits_alone` refuses (``where``: the option or pool)."""
    room = int(np.floor(cap / block) * block)
    return (f"{where}: a prompt of {int(prompt):,} tokens plus the {SGLANG_RESERVED_DECODE_TOKENS} tokens SGLang's decode "
            f"server reserves for a request's decode (num_reserved_decode_tokens) exceed the {room:,} tokens an "
            "instance holds, so it never admits the request (kv_admission sglang_ratio); shorten the prompt, raise "
            "the decode pool's tp or gpu_memory_utilization, or choose another kv_admission")


def decode_running_limit(kv_admission: str, cap: np.ndarray, prompt: np.ndarray, output: np.ndarray,
                         block: np.ndarray, max_seqs: np.ndarray, clients: np.ndarray | None
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sequences a decode instance runs at most under ``kv_admission``, the share of their decode
    growth paid by preempting (vLLM), and where the policy departs from ``reserve`` (arrays (n,);
    ``clients``: requests an instance holds at most in a closed loop, ``ceil(C / y)``; None: open
    loop, ``max_num_seqs``).

    - ``reserve`` (TensorRT-LLM): prompt + output reserved at admission, ``floor(cap / (p + o))``.
    - ``on_demand`` (vLLM): blocks allocated as tokens come, so a sequence holds ``p + o / 2`` on
      average. Where the clients' whole requests exceed the cache (closed loop) the instance
      preempts the newest request when blocks run out; the preempted request's KV is gone from
      the decode worker and it is prefilled again there (NIXL: ``NixlConnectorScheduler.
      update_state_after_alloc`` sets ``do_remote_prefill = False`` after the one pull, so
      ``get_num_new_matched_tokens`` returns 0 when the scheduler readmits it and the prompt +
      generated tokens are computed locally): the aggregated engine's law
      (:func:`roofline.serving.analytic._kv_preemption`), its running count and the share of the
      growth paid by preempting, with the requests at the instance as the clients. An open loop
      runs up to the knee ``cap / (p + o / 2)`` (Poisson arrivals stay staggered: the aggregated
      simulator preempts next to nothing below it).
    - ``sglang_ratio`` (SGLang's decode server, ``disaggregation/decode.py``): a request is
      pre-allocated its prompt when prompt + ``R`` fits the free KV less ``R`` for every running
      request (``R`` = ``num_reserved_decode_tokens``, 512), and decode steps that do not fit
      retract requests with their KV offloaded to host memory, resumed without recomputing. With
      ``n`` running at ``p + o / 2`` each on average, admission stops at
      ``n = (cap - p - R) / (p + o / 2 + R)``. Where every client's whole request and its reserve
      fit (``clients (p + o + R) <= cap``) nothing is refused or retracted: ``reserve``'s limit.
    """
    whole = np.maximum(np.minimum(max_seqs, np.floor(cap / _in_blocks(prompt + output, block))), 1.0)
    share = np.zeros_like(whole)
    load = max_seqs if clients is None else np.minimum(clients, max_seqs)
    if kv_admission == "reserve":
        return whole, share, np.zeros(whole.shape, dtype=bool)
    if kv_admission == "sglang_ratio":
        reserve = float(SGLANG_RESERVED_DECODE_TOKENS)
        departs = load * _in_blocks(prompt + output + reserve, block) > cap
        fit = np.floor((cap - prompt - reserve) / (prompt + output / 2 + reserve))
        return np.where(departs, np.maximum(np.minimum(max_seqs, fit), 1.0), whole), share, departs
    departs = load * _in_blocks(prompt + output, block) > cap
    if clients is None:
        knee = np.maximum(np.minimum(max_seqs, np.floor(cap / _in_blocks(prompt + output / 2, block))), 1.0)
        return np.where(departs, knee, whole), share, departs
    running, growth_share, _ = _kv_preemption(np.maximum(clients, 1.0), cap, prompt, output, block, max_seqs,
                                              np.zeros(whole.shape, dtype=bool))
    return (np.where(departs, np.maximum(running, 1.0), whole), np.where(departs, growth_share, 0.0), departs)


def recompute_s(decode_cost: StepCost, rows: np.ndarray, share: np.ndarray, prompt: np.ndarray, output: np.ndarray,
                budget: np.ndarray, prefill_scale: np.ndarray | float) -> np.ndarray:
    """Seconds a vLLM decode instance spends on one request's recomputes: ``phi (o - 1)`` tokens
    (``phi`` = ``share``, the growth paid by preempting), in recomputes of ``p + o / 4`` (the
    aggregated law's, :func:`roofline.serving.analytic._preempting`), each its chunked prefill
    alone, ``prefill_scale x`` :func:`prefill_alone_s` (its steps' decode tokens are counted with
    the decode steps)."""
    length = prompt + _RECOMPUTE_OUTPUT_SHARE * output
    pieces = share * np.maximum(output - 1.0, 0.0) / length
    return pieces * prefill_scale * prefill_alone_s(decode_cost, rows, length, length, budget)


def on_demand_open_loop_rate(decode_cost: StepCost, rows: np.ndarray, prompt: np.ndarray, output: np.ndarray,
                             cap: np.ndarray, block: np.ndarray, max_seqs: np.ndarray, verify: np.ndarray,
                             tps: np.ndarray, decode_scale: np.ndarray | float, prefill_scale: np.ndarray | float,
                             step_overhead_s: np.ndarray | float, seq_overhead_s: np.ndarray | float,
                             budget: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The requests/s a vLLM decode instance sustains under Poisson arrivals where its running set
    at the knee cannot hold whole requests, and its state beyond that (batch, recompute seconds
    per request), as the aggregated open loop (:func:`roofline.serving.analytic._open_loop_kv_limit`):
    below it the requests stay staggered and the instance runs up to the knee ``cap / (p + o / 2)``
    without preempting (``R_full`` there); a queue, once a fluctuation forms one, drains at the
    preempting closed loop's rate far above the knee (``_FAR_ABOVE_KNEE`` x the knee, the law's
    running count and recomputes: ``X_far``). Sustained: ``X_far + w (R_full - X_far)``,
    ``w = max(1 - (160 / knee)^2, 0.6)``: the aggregated simulator's weight (larger knees fluctuate
    less), but at least ``_DECODE_POOL_MIN_WEIGHT``: a decode pool's queue starts to grow closer to
    the knee's rate than an aggregated engine's (at knees of 115-166: the aggregated weight 0, the
    disagg simulator's 0.4-0.8)."""
    d = decode_steps(output, tps)
    kv_per_seq = prompt + 1 + np.maximum(d - 1, 0) * tps / 2
    knee = np.maximum(np.minimum(max_seqs, np.floor(cap / _in_blocks(prompt + output / 2, block))), 1.0)
    running, share, _ = _kv_preemption(_FAR_ABOVE_KNEE * knee, cap, prompt, output, block, max_seqs,
                                       np.zeros(knee.shape, dtype=bool))
    running = np.maximum(running, 1.0)
    far_s = recompute_s(decode_cost, rows, share, prompt, output, budget, prefill_scale)

    def rate(b: np.ndarray, extra_s: np.ndarray) -> np.ndarray:
        step = decode_step_s(decode_cost, rows, b, kv_per_seq, verify, decode_scale, step_overhead_s, seq_overhead_s)
        return b / np.maximum(d * step + b * extra_s, 1e-30)

    x_far, full = rate(running, far_s), rate(knee, np.zeros_like(knee))
    w = np.clip(1.0 - (_OPEN_KNEE_SEQS / knee) ** 2, _DECODE_POOL_MIN_WEIGHT, 1.0)
    return x_far + w * np.maximum(full - x_far, 0.0), running, far_s


def disagg_steady_state(prefill_cost: StepCost, decode_cost: StepCost, *, prefill_row: np.ndarray,
                        decode_row: np.ndarray, prompt: np.ndarray, output: np.ndarray, prefill: np.ndarray,
                        prefill_count: np.ndarray, decode_count: np.ndarray, transfer_s: np.ndarray,
                        decode_kv_capacity_tokens: np.ndarray, prefill_budget: np.ndarray,
                        decode_max_num_seqs: np.ndarray, block_tokens: np.ndarray,
                        concurrency: np.ndarray | None = None, rate_rps: np.ndarray | None = None,
                        verify_tokens: np.ndarray | float = 1.0, tokens_per_step: np.ndarray | float = 1.0,
                        prefill_scale: np.ndarray | float = 1.0, decode_scale: np.ndarray | float = 1.0,
                        prefill_step_overhead_s: np.ndarray | float = 0.0,
                        decode_step_overhead_s: np.ndarray | float = 0.0,
                        prefill_seq_overhead_s: np.ndarray | float = 0.0,
                        decode_seq_overhead_s: np.ndarray | float = 0.0,
                        request_overhead_s: np.ndarray | float = 0.0,
                        kv_admission: str = "reserve") -> dict[str, np.ndarray]:
    """Mean metrics of n disaggregated configurations (every argument broadcasts to (n,)).

    Give ``concurrency`` (closed loop, over the whole deployment) or ``rate_rps`` (open loop).
    Returns seconds and per-second arrays: ``ttft_s``, ``tpot_s``, ``itl_s``, ``e2e_s``,
    ``throughput_rps``, ``throughput_tok_s``, ``kv_utilization`` (decode pool), ``mean_batch``
    (running requests over both pools), ``decode_batch`` (per decode instance),
    ``prefill_utilization`` (rho), ``saturated``, ``transfer_s``.
    """
    load = concurrency if concurrency is not None else rate_rps
    arrays = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (
        load, prompt, output, prefill, prefill_count, decode_count, transfer_s, decode_kv_capacity_tokens,
        prefill_budget, decode_max_num_seqs, block_tokens, verify_tokens, tokens_per_step, prefill_scale,
        decode_scale, prefill_step_overhead_s, decode_step_overhead_s, prefill_seq_overhead_s,
        decode_seq_overhead_s, request_overhead_s, prefill_row, decode_row)))
    (load, prompt, output, prefill, x, y, t_x, cap, budget, max_seqs, block, verify, tps, k_p, k_d, s_p, s_d,
     q_p, q_d, s_req, p_row, d_row) = (np.atleast_1d(a) for a in arrays)
    p_row, d_row = p_row.astype(int), d_row.astype(int)
    n_p = np.ceil(prefill / budget - 1e-9)
    service = k_p * prefill_alone_s(prefill_cost, p_row, prompt, prefill, budget) + n_p * (s_p + q_p)
    d = decode_steps(output, tps)
    kv_per_seq = prompt + 1 + np.maximum(d - 1, 0) * tps / 2
    per_seq_blocks = np.ceil((prompt + output) / block) * block
    b_max = np.maximum(np.minimum(max_seqs, np.floor(cap / per_seq_blocks)), 1.0)

    closed = concurrency is not None
    # the decode instances admit as the framework does (decode_running_limit); vLLM's preempted requests
    # prefill prompt + generated tokens again on the decode instance: phi (o - 1) tokens a request, in
    # recomputes of p + o / 4 (the aggregated law's), each its chunked prefill alone there
    on_demand = kv_admission != "reserve"
    rec_s = np.zeros_like(load)
    departs = np.zeros(load.shape, dtype=bool)
    if on_demand:
        per_instance_max = np.ceil(load / y - 1e-9) if closed else None
        b_max, share, departs = decode_running_limit(kv_admission, cap, prompt, output, block, max_seqs,
                                                     per_instance_max)
        if kv_admission == "on_demand" and closed and np.any(share > 0):
            rec_s = recompute_s(decode_cost, d_row, share, prompt, output, budget, k_p)
    # closed loop: a request finds the others as the loop of C - 1 has them (the arrival theorem,
    # Schweitzer's approximation: (C - 1) / C of each mean), per decode instance C / y of them
    seen = np.maximum(load - 1, 0) / np.maximum(load, 1) if closed else np.ones_like(load)
    per_instance = np.maximum(load / y, 1.0) if closed else np.full_like(load, np.inf)
    seen_d = np.maximum(per_instance - 1, 0) / per_instance if closed else np.ones_like(load)

    def decode_rate(b: np.ndarray, extra_s: np.ndarray = rec_s) -> tuple[np.ndarray, np.ndarray]:
        """(requests/s of the decode pool, decode time of a request) with b per instance on
        average; a decoding request steps with itself and the others decoding then (closed loop:
        ``1 + b (n - 1) / n`` of ``n = C / y``, at most ``b_max``; open loop: ``b``); on demand
        its span holds the recomputes (``extra_s`` each) of the ``b`` running."""
        batch = np.minimum(1 + b * seen_d, np.maximum(b_max, b)) if closed else b
        step = decode_step_s(decode_cost, d_row, batch, kv_per_seq, verify, k_d, s_d, q_d)
        span = d * step + b * extra_s if on_demand else d * step
        life = np.maximum(span, 1e-30)
        return np.where(d > 0, y * b / life, np.inf), span

    def prefill_wait(rate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rho = rate * service / x
        with np.errstate(divide="ignore", invalid="ignore"):
            wait = np.where(rho < 1, _md1_wait_s(rho, service, seen), np.inf)
        return rho, wait

    lo, hi = np.zeros_like(load), b_max.copy()
    wait_d = np.zeros_like(load)
    if concurrency is not None:
        def in_system(b: np.ndarray) -> np.ndarray:
            rate, dec = decode_rate(b)
            _, wait = prefill_wait(rate)
            return np.where(np.isfinite(wait), rate * (s_req + wait + service + t_x + dec), np.inf)

        full = in_system(hi)
        for _ in range(_BISECTIONS):
            mid = 0.5 * (lo + hi)
            above = in_system(mid) >= load
            hi, lo = np.where(above, mid, hi), np.where(above, lo, mid)
        decode_full = full < load
        b = np.where(decode_full, b_max, lo)
        rate, dec = decode_rate(b)
        wait_d = np.where(decode_full, (load - np.where(decode_full, full, 0.0)) / rate, 0.0)
        saturated = np.zeros(load.shape, dtype=bool)
    else:
        rate = load
        for _ in range(_BISECTIONS):
            mid = 0.5 * (lo + hi)
            r_mid, _ = decode_rate(mid)
            above = r_mid >= rate
            hi, lo = np.where(above, mid, hi), np.where(above, lo, mid)
        r_max, _ = decode_rate(b_max)
        far = np.zeros(load.shape, dtype=bool)
        if kv_admission == "on_demand" and np.any(departs):
            # vLLM: beyond the rate a running set at the knee sustains without preempting, the pool runs
            # as a closed loop far above its knee (on_demand_open_loop_rate)
            sustained, far_b, far_s = on_demand_open_loop_rate(decode_cost, d_row, prompt, output, cap, block,
                                                               max_seqs, verify, tps, k_d, k_p, s_d, q_d, budget)
            r_top = np.where(departs, np.minimum(y * sustained, r_max), r_max)
            far = departs & (r_top < rate) & (r_top < r_max)
            r_max, b_max = r_top, np.where(far, far_b, b_max)
            rec_s = np.where(far, far_s, 0.0)
        rho_top = rate * service / x
        saturated = (r_max < rate) | (rho_top >= 1)
        b = np.where(r_max < rate, b_max, hi)
        _, dec = decode_rate(b, rec_s)
        rate = np.where(saturated, np.minimum(r_max, x / service), rate)
    rho, wait_p = prefill_wait(rate)
    ttft = s_req + np.where(np.isfinite(wait_p), wait_p, 0.0) + service + t_x
    tpot = np.where(output > 1, (wait_d + dec) / np.maximum(output - 1, 1), 0.0)
    step = np.where(d > 0, dec / np.maximum(d, 1), 0.0)
    return {
        "ttft_s": ttft, "tpot_s": tpot, "itl_s": step, "e2e_s": ttft + (output - 1) * tpot,
        "throughput_rps": rate, "throughput_tok_s": rate * output,
        "kv_utilization": np.minimum(b * kv_per_seq / cap, 1.0),
        "mean_batch": rate * service + y * b,
        "decode_batch": b, "prefill_utilization": np.minimum(rho, 1.0), "saturated": saturated,
        "transfer_s": t_x,
    }
