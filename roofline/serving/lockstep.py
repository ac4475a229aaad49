"""Closed loop of identical lengths: the periodic schedule the engine settles into, vectorized.

With every request of ``p`` prompt and ``o`` output tokens and ``c`` clients, the schedule is
deterministic and periodic: each client's request finishes, its successor arrives, is prefilled
and decodes, and every request of a period spans the same number of steps. The requests that
finish in the same step form a *group*; groups are prefilled in ``G`` consecutive steps, then
decode together. Step counts per request (``d = ceil((o - 1) / tps)`` decode steps):

- **Mixed steps** (vLLM, TensorRT-LLM: decode tokens and prefill chunks share a step's budget
  ``M``). The first group to finish in a period (group 0) finds no prompt waiting. Its
  successors become schedulable ``r`` (request overhead) later; until then the engine runs
  ``w`` decode-only steps (the *window*, in which groups 1, 2... finish, one a step) or, when
  every group has finished first, idles (one more "step" of the rest of ``r``). Group 0 is then
  prefilled in ``n_p = ceil(p / budget)`` steps, so its TTFT spans ``L = w + idle + n_p`` steps,
  and the period is ``N = d + L`` steps. Periodicity makes every request's TTFT span ``L`` steps
  (the later groups queue behind the earlier ones) and its e2e span the whole period, so
  ``e2e = T`` (the period's time) and ``TPOT = (T - TTFT) / (o - 1)``.
  With ``r = 0`` (datasheet) the groups form a *chain*: each group's successors are prefilled in
  the step after it finishes, in which the next group finishes, so a group is the most whole
  prompts that fit one step beside the ``c - q`` decoding sequences, ``q = floor((M - c v) /
  (p - v))``, ``G = ceil(c / q)`` groups, and ``L = 1``. Otherwise prompts queue and every
  prefill step is a full budget ``B = M - v n_dec`` (``n_dec = c - L B / p`` sequences decode
  beside it: the others are waiting for their first token, ``L`` steps each), ``G = ceil(c p / B)``.
- **Prefill-first steps** (SGLang): chunks run alone, so the groups prefilled in the ``G``
  steps start decoding together and the whole cohort finishes in the same step: all successors
  arrive at once, the engine idles ``r``, prefills ``G = ceil(c p / M)`` full-budget steps and
  decodes ``d`` steps. A request completing in prefill step ``u`` has TTFT ``r + u`` steps and
  waits through the ``G - u`` prefill steps after it.

The cohort: ``c = min(C, max_num_seqs, KV-capacity sequences)`` of the ``C`` clients run. In
lock-step every sequence holds its prompt and whole output at the end of the period at the same
time, so the KV cache must hold ``c`` whole requests (as the event simulator reserves them). The
``C - c`` others wait (Little's law: ``(C - c) / throughput``) and, being schedulable already,
replace finishing requests at once (no window: ``r`` does not delay the running set).

Step times come from the same step cost as the staggered model; the window's decode steps (the
batch shrinking by a group a step) are taken as affine in the batch. Where the prefill of a
period would not end before its first group finishes (``G >= d + n_p``: prefill-bound), there is
no decode-only stretch and no lock-step: :func:`lockstep_state` marks those configurations
``valid = False`` for the caller to use the staggered model.
"""

from __future__ import annotations

import numpy as np

from roofline.serving.step_cost import StepCost

__all__ = ["lockstep_state"]

_EPS = 1e-9


def _floor_sum(beta: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``sum_{j=0}^{n-1} floor(j * beta)``, closed form: ``beta n (n - 1) / 2`` less the fractional
    parts, which start as multiples of the distance ``f'`` of ``beta`` to an integer (rising from
    0 or falling from 1) until they wrap around, then average 1/2."""
    frac = beta - np.floor(beta)
    near = np.minimum(frac, 1.0 - frac)
    terms = np.maximum(n - 1, 0.0)
    ramp = np.minimum(terms, np.floor(1.0 / np.maximum(near, 1e-12)))
    rising = near * ramp * (ramp + 1) / 2
    parts = np.where(frac <= 0.5, rising, ramp - rising) + 0.5 * (terms - ramp)
    return beta * n * (n - 1) / 2 - parts


def _requests_waiting(c: np.ndarray, per_step: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """``sum_{j=0}^{steps-1} (c - min(c, floor(j * per_step)))``: over ``steps`` consecutive
    prefill steps, each completing ``per_step`` prompts (carrying the rest of a prompt into the
    next step), the requests still without their first token at each step's start."""
    j = np.minimum(steps, np.ceil(c / per_step - _EPS))
    return j * c - _floor_sum(per_step, j)


def _window(a0: np.ndarray, a1: np.ndarray, c: np.ndarray, groups: np.ndarray,
            r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decode-only steps ``w`` from the first group's finish until its successors are schedulable
    (``r`` later), and the time of those steps (s). Step ``i`` runs ``c - i s`` sequences (a group
    of ``s = c / groups`` finishes each step), ``a0 + a1 b`` seconds for ``b`` of them, so ``w`` is
    the smallest integer with ``sum_{i=1..w} (a0 + a1 (c - i s)) >= r``, a quadratic; at most
    ``groups - 1`` (then every group has finished and the engine idles the rest of ``r``)."""
    size = c / groups
    curve = a1 * size / 2  # the window's time after w steps: slope w - curve w^2
    slope = a0 + a1 * c - curve
    disc = slope * slope - 4 * curve * r
    bent = np.abs(curve) > _EPS * np.abs(slope) + 1e-30
    root = np.where(bent, (slope - np.sqrt(np.maximum(disc, 0.0))) / np.where(bent, 2 * curve, 1.0),
                    r / np.maximum(slope, 1e-30))
    reach = (disc >= 0) & (root <= groups - 1 + _EPS)
    w = np.where(r <= 0, 0.0, np.where(reach, np.ceil(root - _EPS), groups - 1))
    return w, w * (a0 + a1 * c) - a1 * size * w * (w + 1) / 2


def lockstep_state(cost: StepCost, hw: np.ndarray, *, concurrency: np.ndarray, prompt: np.ndarray,
                   output: np.ndarray, prefill: np.ndarray, kv_capacity_tokens: np.ndarray,
                   max_num_batched_tokens: np.ndarray, max_num_seqs: np.ndarray, block_tokens: np.ndarray,
                   verify_tokens: np.ndarray, tokens_per_step: np.ndarray, step_overhead_s: np.ndarray,
                   request_overhead_s: np.ndarray, decode_scale: np.ndarray, prefill_scale: np.ndarray,
                   seq_overhead_s: np.ndarray, prefill_first: np.ndarray) -> dict[str, np.ndarray]:
    """Mean serving metrics of a closed loop of identical lengths (see the module doc).

    Every argument is an (n,) float array (``hw``: the step-cost row of each configuration).
    Returns the keys of :func:`roofline.serving.analytic.steady_state` (seconds) plus ``valid``.
    """
    v, tps, M = verify_tokens, tokens_per_step, max_num_batched_tokens
    p, pf, o = prompt, prefill, output
    need = np.ceil((p + o) / block_tokens) * block_tokens  # a whole request's blocks
    c_max = np.maximum(np.minimum(max_num_seqs, np.floor(kv_capacity_tokens / need)), 1.0)
    c = np.minimum(concurrency, c_max)
    queued = concurrency > c
    r = np.where(queued, 0.0, request_overhead_s)  # the queue replaces finishing requests at once
    d = np.ceil(np.maximum(o - 1, 0) / tps - _EPS)
    first = prefill_first > 0
    cached = p - pf

    def step(b: np.ndarray, kv_per_seq: np.ndarray | float, prompts: np.ndarray | float = 0.0,
             running: np.ndarray | None = None) -> np.ndarray:
        """A step with ``b`` decoding sequences and chunks completing ``prompts`` prompts."""
        n_p = np.ceil(pf / M - _EPS)
        chunk = prompts * pf
        pairs = prompts * (pf * cached + pf * (pf + 1) / 2)
        ctx = prompts * (n_p * cached + (n_p - 1) * pf / 2)
        kv = b * kv_per_seq
        dec = cost.step_s(hw, b * v, b, kv, b)
        full = cost.step_s(hw, b * v + chunk, b + prompts, kv, b, pairs, ctx, chunk)
        run = c if running is None else running
        return decode_scale * dec + prefill_scale * (full - dec) + step_overhead_s + seq_overhead_s * run

    kv_end = p + o  # sequences about to finish (the window)
    kv_mid = p + o / 2.0

    # mixed steps: the window's decode-only steps, affine in the batch b: a0 + a1 * b
    full_batch = step(c, kv_end)
    half_batch = step(c / 2, kv_end, running=c / 2)
    a1 = (full_batch - half_batch) / np.maximum(c / 2, _EPS)
    a0 = full_batch - a1 * c

    # chain (no request overhead, whole groups fit a step) or queue (full-budget prefill steps)
    q = np.clip(np.floor((M - c * v) / np.maximum(pf - v, _EPS)), 0.0, c)
    chain = (r <= 0) & (q >= 1) & ~first
    per_step = np.minimum(M / pf, c)  # prompts completed per prefill step
    L = np.ceil(pf / M - _EPS)
    for _ in range(3):  # L, the decoding sequences beside the prefill, the groups and the window settle
        n_dec = np.where(first, 0.0, np.clip(c - L * per_step, 0.0, np.maximum(c - 1.0, 0.0)))
        budget = np.maximum(M - n_dec * v, 1.0)
        per_step = np.where(chain, q, np.minimum(budget / pf, c))
        groups = np.maximum(np.ceil(c / per_step - _EPS), 1.0)  # prefill steps (G)
        n_p = np.where(chain, 1.0, np.ceil(pf / budget - _EPS))
        # groups finish one a step (prompts longer than a step: one request each); prefill-first
        # cohorts finish together, no window
        w, window_s = _window(a0, a1, c, np.where(first, 1.0, np.minimum(c, groups)), r)
        idle = np.maximum(r - window_s, 0.0)
        has_idle = (idle > _EPS * np.maximum(r, 1e-30)) * 1.0
        L = np.where(chain, 1.0, w + has_idle + n_p)

    # the prefill steps: G - 1 full ones and the last with the remaining prompts
    last = c - (groups - 1) * per_step
    dec_last = np.where(first, 0.0, np.clip(c - last, 0.0, c))
    pre_full = step(np.where(chain, c - q, n_dec), kv_mid, per_step)
    pre_last = step(dec_last, kv_mid, last)
    prefill_s = (groups - 1) * pre_full + pre_last

    # the decode-only steps, all c decoding: mixed d + n_p - G of them, prefill-first d
    dec_steps = np.where(first, d, d + n_p - groups)
    valid = first | (dec_steps >= 1)
    dec_steps = np.maximum(dec_steps, 0.0)
    completed = _requests_waiting(c, per_step, groups) / c  # mean prefill step of a request's first token
    t_mean = np.where(first, (d + 1) / 2, groups + (dec_steps + 1) / 2 - completed)
    decode_step = step(c, p + t_mean * tps)
    period_s = window_s + idle + prefill_s + dec_steps * decode_step

    # TTFT: mixed, L steps ending with the request's completion step; prefill-first, idle + u steps
    in_last = c - np.minimum(c, np.floor((groups - 1) * per_step + _EPS))  # completed in the last prefill step
    if_first = idle + (completed * c - in_last) / c * pre_full + in_last / c * pre_last
    covered = _requests_waiting(c, per_step, L)  # sum over requests of the prefill steps in its TTFT
    before = np.minimum(c, np.floor(np.maximum(L - 1, 0) * per_step + _EPS))  # TTFT reaching before step 1
    window_steps = c * L - covered - has_idle * before
    mean_window_step = window_s / np.maximum(w, 1.0)
    queue_ttft = (covered * pre_full + has_idle * before * idle + window_steps * mean_window_step) / c
    chain_ttft = ((c - last) * pre_full + last * pre_last) / c
    ttft_run = np.where(first, if_first, np.where(chain, chain_ttft, queue_ttft))

    rps = c / period_s
    wait = (concurrency - c) / rps
    span = np.maximum(period_s - ttft_run, 0.0)  # a request's decode span
    tpot = np.where(o > 1, span / np.maximum(o - 1, 1), 0.0)
    # prefill-first: the prefill steps after the first completion stall every decoding sequence,
    # counted in the gap of its first decode step (as the simulator)
    stall = np.maximum(prefill_s - np.ceil(pf / M - _EPS) * pre_full, 0.0)
    itl = np.where(first, (stall + d * decode_step) / np.maximum(d, 1), span / np.maximum(d, 1))
    steps = np.where(first, groups + d, w + groups + dec_steps)
    running = c * (1.0 - r / period_s)
    # KV held, time-averaged (Little's law, as analytic.steady_state): a request holds nothing before
    # its chunks, its prompt so far in their steps (a mean prefill step each) and prompt + half the
    # output from its first token on
    chunks = np.ceil(pf / M - _EPS)
    kv_held = rps * (chunks * prefill_s / groups * (cached + pf * (chunks + 1) / (2 * chunks)) + span * (p + o / 2))
    return {
        "ttft_s": ttft_run + wait, "tpot_s": tpot, "itl_s": itl, "e2e_s": period_s + wait,
        "mean_step_s": (period_s - idle) / np.maximum(steps, 1.0),
        "throughput_rps": rps, "throughput_tok_s": rps * o,
        "kv_utilization": np.minimum(kv_held / kv_capacity_tokens, 1.0),
        "mean_batch": running, "max_running": c_max, "saturated": np.zeros(len(c), dtype=bool),
        "valid": valid,
        # a benchmark's first c requests arrive at once: r, then their prompts in G full steps (the
        # u-th step's requests wait u of them): the first wave's TTFT less the steady one
        "first_wave_extra_s": r + completed * pre_full - ttft_run,
    }
