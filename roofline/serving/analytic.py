"""Steady-state serving model, vectorized over configurations: means only.

In steady state every running request is either prefilling or decoding. A request needs ``p``
prefill tokens (its prompt minus prefix-cache hits) and ``d = osl - 1`` decode steps
(``ceil((osl - 1) / tps)`` with speculative decoding). With ``B`` decoding sequences per step the prefill budget is ``M - B * v``, so a prompt
takes ``n_p = ceil(p / (M - B v))`` steps; with ``c`` running requests, ``B = c d / (n_p + d)``
and ``lambda = c / (n_p + d)`` requests finish (and are admitted) per step. A share
``f = min(1, lambda n_p)`` of the steps carry prefill chunks (``lambda p / f`` tokens each); the
others are decode-only. The step cost is not linear in the tokens (flat while memory-bound), so
the two kinds of step are costed apart and averaged with weights ``1 - f`` and ``f``:

- TPOT (per request, as benchmark clients measure it) = ``d * decode step / (osl - 1)``, the mean
  of the steps a decoding request sees: its own prefill steps come before them, so a share
  ``f (c - 1) / c`` carry (the other requests') chunks, with ``1 + B (c - 1) / c`` sequences
  decoding (open loop: ``f`` and ``1 + B``, Poisson arrivals seeing the mean);
- TTFT = request overhead + queueing wait + ``n_p`` prefill steps, plus the wait for the running
  step to end: half a mean step in open loop; in closed loop, when other requests run, the rest of
  the step running a request overhead after the step end at which a request finished (arrivals
  spaced in steps, not in time: a renewal residual, :func:`_step_residual_s`, which counts the
  prefill steps of colliding long prompts: it was half a mean step, 7-14% low at 8k / 1k against
  the event simulator); in open loop the queueing wait is for the prompts ahead
  to pass the step's token budget, an M/D/1 queue whose service is a prompt's share of the prefill
  steps (:func:`_prefill_queue_s`, as the disaggregated prefill pool's,
  :mod:`roofline.serving.disagg_analytic`);
- a closed loop whose requests all have the same lengths (``lockstep``) does not stagger: it
  follows a periodic schedule in which groups of requests start, prefill and finish together,
  modelled apart (:mod:`roofline.serving.lockstep`);
- TensorRT-LLM's batch waiting (``batch_wait_timeout_iters`` ``T`` and ``batch_wait_max_tokens_ratio``
  ``rho``, :func:`roofline.serving.settings.batch_wait_holds`): while others decode, the first prompt
  to arrive opens a window of decode-only steps that ends after ``T`` steps or when ``m`` prompts
  have gathered (``m p + B v >= rho M``); with Poisson arrivals at ``lambda`` a step its prompts
  wait ``T (1 + lambda T / 2) / (1 + lambda T)`` steps on average when the threshold is out of
  reach, less when it is not (:func:`_batch_wait_steps`); those steps join the request's lifetime,
  and its TTFT, as decode-only steps, and the prompts a window releases are prefilled together;
- closed loop at concurrency ``C``: ``c = min(C, max_num_seqs, KV-capacity sequences)``; the
  ``C - c`` others wait (Little's law: wait = ``(C - c) / throughput``); a sequence takes its
  prompt and output in the KV cache where the engine reserves blocks at admission
  (``kv_reserve``, TensorRT-LLM), its prompt and half its output on average where it allocates
  them as tokens come (vLLM, SGLang); the lock-step loop counts whole requests (its cohorts grow
  together to their prompt and output);
- on demand where the ``C`` clients' whole requests do not fit the KV cache, the engine preempts
  the newest request when blocks run out and prefills its prompt and generated tokens again
  (:func:`_kv_preemption`, :func:`_preempting`): a closed form whose conservation laws are derived
  (the running set's KV is ``n (p + o / 2)`` whatever the preemptions; far above the knee every
  token of growth is paid by a preemption, ``o - 1`` tokens recomputed a request) and whose
  transition near the knee (the running count, the share of growth preempted, the preempted
  requests waiting at the head of the queue, whose wait is in their TPOT and not a newcomer's
  TTFT) is a law read off the event simulator in dimensionless terms. A lock-step loop there
  does not stay in lock-step (its cohorts grow into the preemptions and stagger): such rows
  (on demand, ``C`` whole requests beyond the cache) take the staggered model, with the law for
  identical lengths. Where every whole request fits, nothing changes (to the bit);
- open loop at rate ``R``: ``c`` solves ``c = R * lifetime(c)`` (fixed point); above the rate
  the replica can sustain the result is saturated (TTFT unbounded: reported as null). On demand,
  where the running set at the knee cannot hold its whole requests (:func:`_open_loop_kv_limit`),
  Poisson arrivals keep the running requests staggered and the fixed point without preemption
  stands below that rate (the simulator preempts next to nothing there), but a queue, once a
  fluctuation forms one, is served by the preempting closed loop far above the knee, whose
  throughput ``X_far`` is below the running set's at the knee ``R_full``: the sustainable rate is
  ``X_far + w (R_full - X_far)``, ``w = max(1 - (160 / knee)^2, 0)`` read off the simulator
  (larger knees fluctuate less, relatively); beyond it the state is that closed loop's.

Percentiles need the distribution, which only the event simulator gives: null here.
"""

from __future__ import annotations

import numpy as np

from roofline.serving.lockstep import lockstep_state
from roofline.serving.settings import SGLANG_RATIO, SglangRatio
from roofline.serving.step_cost import StepCost
from roofline.serving.workload import decode_steps

__all__ = ["steady_state", "ANALYTIC_NOTE", "sglang_ratio_running"]

ANALYTIC_NOTE = ("analytic steady-state model: means only; percentiles need the event simulator "
                 "(--simulate) and are null")


#: Points of the midpoint rule over a batch-waiting window (:func:`_batch_wait_steps`).
_WINDOW_POINTS = 64


def _md1_wait_s(rho: np.ndarray, service_s: np.ndarray, seen: np.ndarray | float = 1.0) -> np.ndarray:
    """Mean wait in an M/D/1 queue of utilisation ``rho`` < 1 and service ``service_s``
    (Pollaczek-Khinchine): ``rho S / (2 (1 - rho))``, times the share ``seen`` of it an arrival
    finds (a closed loop's ``(C - 1) / C``, the arrival theorem)."""
    return seen * rho * service_s / (2.0 * np.maximum(1.0 - rho, 1e-300))


def _prefill_queue_s(rate_rps: np.ndarray, service_s: np.ndarray) -> np.ndarray:
    """Mean wait (s) of a Poisson arrival for the prompts ahead of it to pass the step's token
    budget: the budget is one server that a prompt holds for its share of the prefill steps
    (``service_s``, :func:`_running`), so the queue is M/D/1 (lengths within +-20% barely vary the
    service): ``rho S / (2 (1 - rho))``, ``rho = rate x S`` (Pollaczek-Khinchine). Short prompts share
    a step, so their service is a fraction of one and their wait small; prompts that fill the budget
    queue one behind the other. Bounded at rho = 0.99 (the sustainable rate is decided elsewhere)."""
    return _md1_wait_s(np.minimum(rate_rps * service_s, 0.99), service_s)


#: Half-width, in decode-only steps, of the window over which the closed loop's step-end count is averaged
#: (:func:`_step_residual_s`): the arrival's phase within a decode-only step taken as uniform, so the count is the
#: staircase's linear interpolation. A narrow ramp (0.025) follows the deterministic simulator closer where the
#: overhead is within a step or two (Llama-3.1-70B 1k / 1k at c = 4 on 2 H200, s_req = 1.99 steps: the arrival
#: catches the end of the second step, 2 ms against 8 here) but makes TTFT fall by up to a decode step where it
#: crosses a stair as the steps lengthen with the concurrency (21 ms drops at 8k / 1k, s_req = 170 ms)
_PHASE_HALF_WIDTH = 0.5
#: Prefill steps counted before the arrival at most (:func:`_step_residual_s`); more: the stationary residual
_MAX_LONG_STEPS = 8


def _step_residual_s(step0: np.ndarray, step1: np.ndarray, f: np.ndarray, offset_s: np.ndarray) -> np.ndarray:
    """Mean wait, in a closed loop, from a request becoming schedulable to the end of the step then
    running (arrays (n,)). The request arrives when one finishes, at the end of a step, and becomes
    schedulable ``offset_s`` (the request overhead) later; every running request decodes one token a
    step, so finishes keep their spacing in steps, not in time, and the steps from that end on are a
    renewal sequence: a step carries prefill chunks with probability ``f`` (of steps, not of time) and
    lasts ``step1``, else ``step0``. By Wald's identity the step covering ``offset_s`` ends on average at
    ``mu (1 + M(s))``, ``mu`` the mean step, ``M(s)`` the mean number of step ends up to ``s``: the steps
    of ``i`` prefill and ``j`` decode-only steps end within ``s`` when ``i step1 + j step0 <= s``, and
    ``sum_{j <= m} C(i + j, i) f^i (1 - f)^j = I_f(i + 1, m + 1) / f`` (the negative binomial's CDF, a
    regularized incomplete beta function). The wait is ``mu (1 + M(s)) - s``: ``mu - s`` where the
    overhead ends early in the first step, so that a step with prefill chunks is waited for whole with
    probability ``f`` (vLLM, 29 ms, against 25 ms decode-only and 0.5 s prefill steps: Llama-3.1-70B
    fp8 on 2 H200, 8k / 1k at c = 64, 60 ms), nearer the length-biased ``E[T^2] / 2 mu`` where it
    spans many steps (SGLang, 170 ms). It was ``mu / 2``, the residual of a point uniform over the
    steps: where prompts are long and collide, 30-65 ms short of the event simulator. Deterministic
    step lengths make ``M`` a staircase in ``s / step0``; it is averaged over ``s`` within
    ``+-_PHASE_HALF_WIDTH`` decode-only steps (a uniform phase: the linear interpolation of the stairs
    at their middles; continuous, and TTFT grows with the concurrency as the steps do, but for drops of
    at most 2.3e-4 of it where the prefill share hardly grows: at a fixed share a longer decode step
    leaves fewer paths on which a prefill step starts before the overhead ends). Beyond
    ``_MAX_LONG_STEPS`` prefill steps within ``s``: the stationary residual."""
    from scipy.special import betainc  # lazily: the CLI imports this module for every serve command

    step0, step1, f, s = (np.broadcast_to(np.asarray(a, dtype=float), np.broadcast_shapes(
        *(np.shape(a) for a in (step0, step1, f, offset_s)))) for a in (step0, step1, f, offset_s))
    q = 1.0 - f
    mu = q * step0 + f * step1
    fc = np.maximum(f, 1e-12)
    t0 = np.maximum(step0, 1e-12)

    def ramped(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # the stair's count m (whole decode-only steps within x, past the ramp's middle) and the ramp's weight of m
        m = np.floor(x + _PHASE_HALF_WIDTH)
        return m, np.clip((x + _PHASE_HALF_WIDTH - m) / (2.0 * _PHASE_HALF_WIDTH), 0.0, 1.0)

    # M(s) + 1 (the start at 0 is the (i, j) = (0, 0) term); no prefill step: sum_{j <= m} q^j = (1 - q^(m + 1)) / f
    m, w = ramped(s / t0)
    qm = q ** np.maximum(m, 0.0)
    below = np.where(m >= 1.0, np.where(f > 1e-9, (1.0 - qm) / fc, m), 1.0)  # j <= m - 1 (the start counts)
    at = np.where(m >= 0.0, np.where(f > 1e-9, (1.0 - qm * q) / fc, m + 1.0), 0.0)  # j <= m
    ends = (1.0 - w) * below + w * at
    rows = np.arange(len(s))
    for i in range(1, _MAX_LONG_STEPS + 1):  # i prefill steps among them (the rows that fit one more, only)
        x = (s[rows] - i * step1[rows]) / t0[rows]
        keep = x > -_PHASE_HALF_WIDTH
        rows, x = rows[keep], x[keep]
        if not len(rows):
            break
        m, w = ramped(x)
        g = fc[rows]
        # sum_{j <= k} C(i + j, i) f^i q^j = I_f(i + 1, k + 1) / f, the negative binomial's CDF
        below = np.where(m >= 1.0, betainc(i + 1.0, np.maximum(m, 1.0), g) / g, 0.0)
        at = np.where(m >= 0.0, betainc(i + 1.0, np.maximum(m, 0.0) + 1.0, g) / g, 0.0)
        ends[rows] += (1.0 - w) * below + w * at
    stationary = (q * step0 ** 2 + f * step1 ** 2) / (2.0 * np.maximum(mu, 1e-300))
    renewal = np.maximum(mu * ends - s, 0.0)
    return np.where(s >= _MAX_LONG_STEPS * step1, stationary, renewal)


def _in_blocks(tokens: np.ndarray, block: np.ndarray) -> np.ndarray:
    """KV-cache tokens that ``tokens`` take in whole paged blocks of ``block`` tokens."""
    return np.ceil(tokens / block) * block


def _batch_wait_steps(lam: np.ndarray, decode_batch: np.ndarray, prompt: np.ndarray, verify: np.ndarray,
                      timeout_iters: np.ndarray, threshold_tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean steps TensorRT-LLM's batch waiting holds a prompt back, and the prompts it releases
    together (all arrays broadcast to (n,)).

    A window opens at a prompt that finds sequences decoding; it ends after ``T`` =
    ``timeout_iters`` steps or when ``k = m - 1`` more prompts have arrived, ``m`` the prompts whose
    tokens with the decode tokens reach ``threshold_tokens`` (``ratio x max_num_tokens``); arrivals
    are Poisson at ``lambda`` a step (``N(t)`` of them by step ``t``). So the window lasts
    ``L = min(T, S_k)``, ``E[L] = int_0^T P(N(t) < k) dt``; a prompt arriving at ``t`` waits ``L - t``,
    together ``E[int_0^L N(t) dt] = int_0^T E[N(t); N(t) < k] dt``; a window holds ``1 + E[min(N(T),
    k)]`` prompts, and the mean wait is the ratio (renewal reward). ``k`` large against ``lambda T``
    gives ``T (1 + lambda T / 2) / (1 + lambda T)``. None when ``T`` or the threshold is 0 (as the
    source, whose release test is then true at once) or one prompt reaches it."""
    lam, b, prompt, verify, t_max, thr = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (
        lam, decode_batch, prompt, verify, timeout_iters, threshold_tokens)))
    k = np.maximum(np.ceil((thr - b * verify) / np.maximum(prompt, 1.0) - 1e-9), 1.0) - 1.0
    on = (t_max > 0) & (thr > 0) & (k >= 1)
    wait, group = np.zeros(lam.shape), np.ones(lam.shape)
    if not on.any():
        return wait, group
    lam, t_max, k = lam[on], t_max[on], k[on]
    # beyond j = lambda T + 12 sqrt(lambda T) + 12 the Poisson terms are negligible: k above it acts as infinite
    k = np.minimum(k, np.ceil(lam * t_max + 12.0 * np.sqrt(lam * t_max) + 12.0))
    x = lam[:, None] * t_max[:, None] * np.append((np.arange(_WINDOW_POINTS) + 0.5) / _WINDOW_POINTS, 1.0)
    p = np.exp(-x)  # P(N = j) at each point (the last column: t = T), from j = 0
    below, below_n = np.zeros_like(x), np.zeros_like(x)  # P(N < k), E[N; N < k]
    for j in range(int(k.max())):
        live = (j < k)[:, None]
        below += np.where(live, p, 0.0)
        below_n += np.where(live, j * p, 0.0)
        p = p * x / (j + 1)
    e_len = t_max * below[:, :-1].mean(axis=1)
    e_area = t_max * below_n[:, :-1].mean(axis=1)
    held = 1.0 + below_n[:, -1] + k * (1.0 - below[:, -1])
    wait[on], group[on] = (e_len + e_area) / held, held
    return wait, group


def _running(cost: StepCost, hw: np.ndarray, c: np.ndarray, prompt: np.ndarray, output: np.ndarray,
             prefill: np.ndarray, budget: np.ndarray, verify: np.ndarray, tps: np.ndarray,
             step_overhead_s: np.ndarray, decode_scale: np.ndarray | float = 1.0,
             prefill_scale: np.ndarray | float = 1.0, seq_overhead_s: np.ndarray | float = 0.0,
             prefill_first: np.ndarray | float = 0.0, closed: bool = True,
             wait_iters: np.ndarray | float = 0.0, wait_tokens: np.ndarray | float = 0.0,
             recompute: np.ndarray | float = 0.0, recompute_len: np.ndarray | float = 1.0) -> dict[str, np.ndarray]:
    """Step times and lifetimes with ``c`` requests running (all arrays broadcast to (n,)).

    ``prefill_first`` (1 for SGLang-style engines): steps carrying prefill chunks carry no decode
    tokens, so a request's ``d`` decode steps take ``d / (1 - f')`` steps, ``f'`` the share of steps
    carrying the other requests' prefill chunks. ``closed``: a closed loop of ``c`` requests (a
    request sees ``c - 1`` others), else Poisson arrivals (it sees ``c`` others on average).
    ``wait_iters``, ``wait_tokens``: TensorRT-LLM's batch waiting, its timeout (steps) and token
    threshold (ratio x budget; :func:`_batch_wait_steps`), 0: off. ``recompute``: tokens a request
    prefills again after preemptions (on-demand KV cache, :func:`_kv_preemption`), in pieces of
    ``recompute_len``; they take prefill steps of its lifetime after its first token, as its prompt's
    chunks do before it (0: none, the model without preemption to the bit)."""
    d = decode_steps(output, tps)
    pieces = np.asarray(recompute, dtype=float) / np.asarray(recompute_len, dtype=float)  # recomputes a request
    work = prefill + recompute  # prefill tokens a request puts through the engine
    mixed = 1.0 - np.asarray(prefill_first, dtype=float)  # 1: decode tokens share the prefill steps
    n_p = np.ones_like(c)
    n_r = np.zeros_like(c)  # steps of a request's recomputes
    f = np.zeros_like(c)
    # a request waits through, or decodes alongside, the other running requests' prefill chunks
    # only (its own precede its decode steps): c - 1 others of c in closed loop; with Poisson
    # arrivals (open loop) a request sees on average the c others of the mean (PASTA)
    others = np.maximum(c - 1.0, 0.0) / np.maximum(c, 1.0) if closed else np.ones_like(c)
    waits_batch = bool(np.any((np.asarray(wait_iters) > 0) & (np.asarray(wait_tokens) > 0)))
    hold = np.zeros_like(c)  # steps batch waiting holds a prompt back (decode-only steps)
    group = np.ones_like(c)  # prompts it releases together (prefilled in the same steps)

    def schedule(n_p: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, ...]:
        d_eff = d / (1.0 - (1.0 - mixed) * f * others)
        b = c * d_eff / (n_p + n_r + hold + d_eff)
        # the budget left for a prompt's chunk: the decode tokens of the OTHER running requests (its
        # own decode starts after its prefill: at c = 1 an 8,192-token prompt is one chunk of 8,192)
        return d_eff, b, c / (n_p + n_r + hold + d_eff), np.maximum(budget - mixed * b * others * verify, 1.0)

    def batch_wait(lam: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # only a prompt that finds others decoding waits: in closed loop at c > 1 (the others decode
        # but while prefilling), with Poisson arrivals when at least one sequence decodes
        decoding = (c > 1.0) * mixed if closed else (1.0 - np.exp(-b)) * mixed
        wait, size = _batch_wait_steps(lam, b * others, prompt, verify, np.asarray(wait_iters, dtype=float),
                                       np.asarray(wait_tokens, dtype=float))
        return decoding * wait, 1.0 + decoding * (size - 1.0)

    def prefill_share(n_p: np.ndarray, lam: np.ndarray, avail: np.ndarray) -> np.ndarray:
        # staggered arrivals: a prefill step also carries the chunks of the other requests
        # expected in the same step, lambda (c - 1) / c (arrivals independent of each other;
        # none at c = 1, where counting lambda made DeepSeek-V3's mean step 8% short on 2 GH200)
        # (batch waiting releases its held prompts together: ``group`` of them share the steps)
        per_step = np.minimum(work / (n_p + n_r) * np.maximum(1.0 + lam * others, group), avail)
        return np.clip(lam * work / per_step, 1e-12, np.where(mixed > 0, 1.0, 0.99))

    # B, n_p (and with prefill-first steps f) depend on each other: a few rounds settle them
    waits = bool(np.any(mixed < 1.0))
    for _ in range(4 if waits else 3):
        d_eff, b, lam, avail = schedule(n_p, f)
        n_p = np.maximum(1.0, np.ceil(prefill / avail - 1e-9))
        n_r = pieces * np.maximum(1.0, np.ceil(recompute_len / avail - 1e-9))
        if waits:
            f = prefill_share(n_p, *schedule(n_p, f)[2:])
    for _ in range(6 if waits_batch else 0):  # the hold lengthens a lifetime, which thins the arrivals
        _, b, lam, _ = schedule(n_p, f)
        hold, group = batch_wait(lam, b)
    d_eff, b, lam, avail = schedule(n_p, f)
    f = prefill_share(n_p, lam, avail)
    cached = prompt - prefill
    # a recompute of L tokens in n chunks: L (L + 1) / 2 attention pairs, (n - 1) L / 2 context reads
    n_len = np.maximum(1.0, np.ceil(recompute_len / avail - 1e-9))
    pairs = prefill * cached + prefill * (prefill + 1) / 2 + pieces * recompute_len * (recompute_len + 1) / 2
    ctx = n_p * cached + (n_p - 1) * prefill / 2 + pieces * (n_len - 1) * recompute_len / 2
    zero = np.zeros_like(c)

    def steps_s(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # a decode-only step and a step with prefill chunks, ``b`` sequences decoding
        kv, t0 = b * (prompt + output / 2.0), b * verify
        base = cost.step_s(hw, t0, b, kv, b, zero, zero, zero)
        with_prefill = cost.step_s(hw, mixed * t0 + lam * work / f, mixed * b + lam * (1.0 + pieces) / f, mixed * kv,
                                   mixed * b, lam * pairs / f, lam * ctx / f, lam * work / f)
        step0 = decode_scale * base + step_overhead_s + seq_overhead_s * c
        return step0, step0 - (1.0 - mixed) * decode_scale * base + prefill_scale * (with_prefill - mixed * base)

    step0, step1 = steps_s(b)
    mean_step = (1 - f) * step0 + f * step1  # the engine's mean step (power, the wait for a running step)
    # a request's decode steps see the others' prefill chunks only and decode with itself plus the
    # others decoding (at c = 1 no decode step carries a chunk: counting them made DeepSeek-V3's
    # TPOT 85% high on 2 GH200, whose chunks read every expert from LPDDR)
    f_dec = f * others
    dec0, dec1 = steps_s(1.0 + others * b)
    dec_step = (1 - f_dec) * dec0 + f_dec * dec1
    # a decoding sequence's gap between tokens: one step, plus the prefill steps it waits through
    gap = dec_step / (1.0 - (1.0 - mixed) * f_dec)
    # the held steps are decode-only steps of the others (the thinner arrivals already lower f)
    hold_s = hold * step0
    return {"decode_steps": d_eff, "prefill_steps": n_p, "decode_batch": b, "mean_step_s": mean_step,
            "decode_step_s": dec_step, "token_gap_s": gap, "prefill_step_s": step1, "batch_wait_s": hold_s,
            "recompute_steps": n_r, "decode_only_step_s": step0, "prefill_share": f,
            "lifetime_s": hold_s + (n_p + n_r) * step1 + d_eff * dec_step,
            # how long a prompt holds the budget: its share of the chunk tokens of the prefill steps
            # times what the chunks add to a step, plus (mixed steps) its share of the budget of the
            # decode part (prefill-first: the whole prefill steps)
            "prefill_service_s": prefill * f / np.maximum(lam * work, 1e-300) * (step1 - mixed * step0)
            + mixed * prefill / avail * step0}


#: The on-demand preemption law (:func:`_kv_preemption`), read off the event simulator
#: (roofline.serving.simulator, ``kv_admission = "on_demand"``) on Llama-3.1-8B / 70B, H100 / H200 / B200,
#: vLLM and SGLang, 1k/8k, 2k/4k, 1k/2k, 4k/2k and 8k/1k, lengths identical or +-20%, concurrency 0.6-4x the knee,
#: where it is the same in these dimensionless terms to within a few hundredths:
#: the share of the decode growth paid by preempting falls linearly from 1 at ``x = 0.15`` to 0 at ``x = 0.8``
_PREEMPT_ALL_X, _PREEMPT_NONE_X = 0.15, 0.8
#: the running count's smooth minimum of C and the knee sharpens with ``(p + o / 2) / o`` (the KV a sequence
#: holds over the growth it adds), by this factor (identical lengths stay in cohorts: softer)
_KNEE_SHARPNESS = {True: 6.9, False: 9.9}
#: the share of the queue that are preempted requests (started, waiting to be readmitted), below the cap
_STACK_SHARE = {True: 0.65, False: 0.5}
#: the cap, preempted requests waiting per sequence of the knee, against output / prompt (interpolated in log)
_STACK_OUT_PER_PROMPT = np.log([1 / 8, 1 / 2, 2, 8])
_STACK_CAP = {True: np.array([0.02, 0.11, 0.41, 0.87]), False: np.array([0.002, 0.015, 0.115, 0.37])}


def _kv_preemption(load: np.ndarray, cap: np.ndarray, prompt: np.ndarray, output: np.ndarray, block: np.ndarray,
                   max_seqs: np.ndarray, coherent: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Running sequences, share of the decode growth paid by preempting, and preempted requests
    waiting, of a closed loop of ``load`` clients on an engine that allocates KV blocks on demand
    and preempts the newest request when they run out (vLLM V1 ``Scheduler.schedule``; SGLang's
    retraction), where the KV cache cannot hold every client's whole request (arrays (n,)).

    What is derived: a decoding sequence holds on average its prompt and half its output, so the
    cache holds ``n_fit = cap / (p + o / 2)`` of them (the knee); each token of a request's output is
    generated once (a preemption keeps the tokens delivered), so the time-averaged KV of the running
    set is ``n_running (p + o / 2)`` whatever the preemptions, and the running count tends to
    ``n_fit``. Admission is greedy (a request is admitted when its prompt fits beside this step's
    tokens): the space a finishing request frees is filled at once, and the growth of the others is
    then paid by preempting: where the queue always holds a request, every token of growth is, and a
    request is prefilled again ``o - 1`` tokens over its life (the simulator: 0.97-1.0 of it).

    What is read off the simulator (module constants above): with ``x = (cap / C - p) / o`` the
    share of its output each client's request has room for (``x >= 1``: every whole request fits,
    no preemption, the model without this law), the share ``phi`` of the growth paid by preempting
    (recomputed tokens ``phi (o - 1)`` a request); the running count, a smooth minimum of ``C`` and
    ``n_fit`` (the greedy admission and the preempted requests at the head of the queue leave blocks
    free near the knee); and the preempted requests waiting at the front of the queue (their wait is
    in their TPOT, not a newcomer's TTFT): a share of the queue, up to a cap that grows with
    ``o / p`` (more prompts fit the space a finishing request frees, more are admitted, started and
    preempted) and is larger for identical lengths (``coherent``: the requests grow in cohorts that
    fill the cache together)."""
    coherent = np.asarray(coherent, dtype=bool)
    per_seq = _in_blocks(prompt + output / 2, block)
    n_fit = cap / per_seq
    clients = np.minimum(load, max_seqs)
    room = (cap / clients - prompt) / output
    sharp = np.where(coherent, _KNEE_SHARPNESS[True], _KNEE_SHARPNESS[False]) * per_seq / output
    # C (1 + (C / n_fit)^n)^(-1/n), in logs (n is large for long prompts)
    smooth = clients * np.exp(-np.logaddexp(0.0, sharp * np.log(clients / n_fit)) / sharp)
    ramp = np.clip((1.0 - room) / 0.2, 0.0, 1.0)  # none of it where whole requests fit: continuous there
    running = clients - ramp * (clients - smooth)
    share = np.clip((_PREEMPT_NONE_X - room) / (_PREEMPT_NONE_X - _PREEMPT_ALL_X), 0.0, 1.0)
    ratio = np.log(output / np.maximum(prompt, 1.0))
    cap_share = np.where(coherent, np.interp(ratio, _STACK_OUT_PER_PROMPT, _STACK_CAP[True]),
                         np.interp(ratio, _STACK_OUT_PER_PROMPT, _STACK_CAP[False]))
    queue_share = np.where(coherent, _STACK_SHARE[True], _STACK_SHARE[False])
    stack = np.minimum(queue_share * (load - running), cap_share * n_fit)
    return running, share, stack


#: The clients of the closed loop that stands for a saturated open loop on demand: this many times the knee
#: (the law's running count and throughput are within 1e-4 of their limit from 3x on)
_FAR_ABOVE_KNEE = 4.0
#: An open loop on demand sustains ``X_far + w (R_full - X_far)``, ``w = 1 - (K / knee)^2`` (at least 0), read
#: off the event simulator (:func:`_open_loop_kv_limit`): K in sequences of the knee
_OPEN_KNEE_SEQS = 160.0


def _open_loop_kv_limit(cost: StepCost, hw: np.ndarray, prompt: np.ndarray, output: np.ndarray, prefill: np.ndarray,
                        cap: np.ndarray, budget: np.ndarray, max_seqs: np.ndarray, block: np.ndarray,
                        verify: np.ndarray, tps: np.ndarray, s_step: np.ndarray, s_req: np.ndarray, k_d: np.ndarray,
                        k_p: np.ndarray, s_seq: np.ndarray, pf: np.ndarray, w_it: np.ndarray, w_tok: np.ndarray,
                        coherent: np.ndarray, full_rate: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The sustainable rate of an open loop (Poisson arrivals) on an on-demand KV cache whose running
    set, at its limit, cannot hold its whole requests, and the state beyond it (arrays (n,);
    ``full_rate``: the rate the model without preemption sustains, its running set at the knee).

    Below it the running requests are staggered in age, their KV is ``c (p + o / 2)`` on average and
    the fixed point ``c = R lifetime(c)`` without preemption stands: the event simulator preempts
    next to nothing there (Llama-3.1-70B 1k / 8k on 2 H100 at 0.9x: none, TPOT 29.4 against
    29.5 ms, although the 61 running sequences' whole requests exceed the cache). Once a
    fluctuation forms a queue, the engine admits until the cache is full and serves it as a closed
    loop far above the knee: every token of growth paid by preempting the newest request (vLLM V1
    ``Scheduler.schedule``; SGLang's retraction) and recomputing it (:func:`_preempting` at
    ``_FAR_ABOVE_KNEE`` times the knee), whose throughput ``X_far`` is below ``full_rate`` (2-18% on
    Llama-3.1-8B / 70B). A queue drains no faster than that; whether a run forms one depends on
    how often the fluctuating number of requests reaches the knee, rarer the larger the knee
    (relative fluctuations ~ 1 / sqrt(knee), their tail faster): the rate at which the simulator's
    queue grows without bound over 4,000 requests (lengths +-20%) is
    ``X_far + w (full_rate - X_far)``, ``w = max(1 - (160 / knee)^2, 0)``, to within 2.7% on average
    (6.4% worst, high: 8k/1k, prefill-bound) over 32 points (8B / 70B, H100 / H200 / B200, vLLM /
    SGLang, 1k/8k, 2k/2k, 8k/1k; ``full_rate``: 7.1%, 16%; ``X_far`` alone 20% low for large
    knees; four more, 8B 2k/2k with knees of 630-817, sustain beyond ``full_rate``). Above it: saturated, in the
    far-above-the-knee state (its running count, TPOT, KV; the throughput reported is the sustainable
    rate, as for every saturated row, though a run that tips over falls back to the drain rate).
    Returns the rate and that state."""
    knee = cap / _in_blocks(prompt + output / 2, block)
    far = _preempting(cost, hw, _FAR_ABOVE_KNEE * np.maximum(knee, 1.0), prompt, output, prefill, cap, budget,
                      max_seqs, block, verify, tps, s_step, s_req, k_d, k_p, s_seq, pf, w_it, w_tok, None, coherent)
    share = np.clip(1.0 - (_OPEN_KNEE_SEQS / np.maximum(knee, 1.0)) ** 2, 0.0, 1.0)
    drain = far["throughput_rps"]
    return drain + share * np.maximum(full_rate - drain, 0.0), far


def _burst_wait_s(cost: StepCost, hw: np.ndarray, c: np.ndarray, prefill: np.ndarray, budget: np.ndarray,
                  step_overhead_s: np.ndarray, requests: np.ndarray | float, steady_ttft_s: np.ndarray,
                  request_overhead_s: np.ndarray | float = 0.0,
                  prefill_scale: np.ndarray | float = 1.0) -> np.ndarray:
    """Mean extra TTFT, over a benchmark of ``requests`` requests, of its start: the first ``c``
    arrive at once at an idle engine and their ``c p`` prompt tokens go through steps filled to the
    budget ``M`` (chunked prefill; one step of ``c p`` tokens where they fit), ``W = c p / M`` of
    them; the k-th prompt gets its first token at the end of step ``ceil(k p / M)``, on average
    ``(c + 1) p / 2M + 1/2`` steps (the ceiling adds half a step on average over prompt lengths that
    vary), at least 1 and at least the ``ceil(p / M)`` steps of a prompt longer than the budget. That TTFT replaces the steady one (``steady_ttft_s``) for a share
    ``c / requests`` of the requests. (It counted ``(W - 1) / 2`` full steps on top of the steady TTFT,
    whose own prefill step is a steady one, a few times shorter: Llama-3.1-70B on 2 H200, 1k / 1k at
    c = 16, the first wave's TTFT 0.35 s against the simulator's 0.70 s.)"""
    c = np.asarray(c, dtype=float)
    tokens = np.minimum(c * prefill, budget)
    whole = tokens / np.maximum(prefill, 1.0)  # prompts a full step finishes (a fraction: a chunk of one)
    pairs = np.where(prefill <= budget, whole * prefill * (prefill + 1) / 2, budget * (budget + 1) / 2)
    zero = np.zeros_like(c)
    full = prefill_scale * cost.step_s(hw, tokens, np.maximum(np.minimum(whole, c), 1.0), zero, zero, pairs, zero,
                                       tokens) + step_overhead_s
    x = prefill / budget
    # (one prompt alone, or a wave that fits one step: exactly its ceil(p / M) steps, or one)
    steps = np.where(c <= 1.0, np.ceil(x - 1e-9), np.where(c * x <= 1.0, 1.0,
                                                          np.maximum((c + 1.0) * x / 2.0 + 0.5, np.ceil(x - 1e-9))))
    first_wave = request_overhead_s + steps * full
    return np.minimum(c / np.asarray(requests, dtype=float), 1.0) * np.maximum(first_wave - steady_ttft_s, 0.0)


def _preempting(cost: StepCost, hw: np.ndarray, load: np.ndarray, prompt: np.ndarray, output: np.ndarray,
                prefill: np.ndarray, cap: np.ndarray, budget: np.ndarray, max_seqs: np.ndarray, block: np.ndarray,
                verify: np.ndarray, tps: np.ndarray, s_step: np.ndarray, s_req: np.ndarray, k_d: np.ndarray,
                k_p: np.ndarray, s_seq: np.ndarray, pf: np.ndarray, w_it: np.ndarray, w_tok: np.ndarray,
                burst_requests: np.ndarray | None, coherent: np.ndarray) -> dict[str, np.ndarray]:
    """The closed loop on an on-demand KV cache that cannot hold every client's whole request
    (arrays (n,)): :func:`_kv_preemption`'s running count, recomputes and preempted requests.

    The running set lives as in :func:`_running`, each request prefilling ``phi (o - 1)`` tokens
    again over its life (in recomputes of ``p + o / 4``, the simulator's mean between ``p + o / 7``
    far above the knee and ``p + o / 2`` near it), which lengthens the lifetime and the steps.
    Little's law over the loop: the ``C - running`` waiting requests wait ``(C - running) / rate``
    in all; the preempted ones among them (``stack``) wait inside their requests' decode span (TPOT),
    the others before their first token (TTFT)."""
    running, share, stack = _kv_preemption(load, cap, prompt, output, block, max_seqs, coherent)
    recompute = share * np.maximum(output - 1.0, 0.0)
    run = _running(cost, hw, running, prompt, output, prefill, budget, verify, tps, s_step, k_d, k_p, s_seq, pf,
                   wait_iters=w_it, wait_tokens=w_tok, recompute=recompute, recompute_len=prompt + output / 4)
    rate = running / run["lifetime_s"]
    # the wait for the running step as in the loop without preemption (:func:`_step_residual_s`; the same law on
    # both sides of the knee, where the two models meet)
    step_end = np.where((s_req > 0) & (running > 1), _step_residual_s(
        run["decode_only_step_s"], run["prefill_step_s"], run["prefill_share"], s_req), 0.0)
    first = run["prefill_steps"] * run["prefill_step_s"]
    ttft = s_req + step_end + (load - running - stack) / rate + run["batch_wait_s"] + first
    if burst_requests is not None:
        ttft = ttft + _burst_wait_s(cost, hw, running, prefill, budget, s_step, burst_requests, ttft, s_req, k_p)
    span = run["lifetime_s"] - run["batch_wait_s"] - first + stack / rate  # first token to last
    rps = load / (ttft + span)  # Little's law over the whole loop
    tpot = np.where(output > 1, span / np.maximum(output - 1, 1), 0.0)
    n_p = run["prefill_steps"]
    kv_tokens = rps * (n_p * run["prefill_step_s"] * (prompt - prefill + prefill * (n_p + 1) / (2 * n_p))
                       + (span - stack / rate) * (prompt + output / 2))
    c_max = np.maximum(np.minimum(max_seqs, np.floor(cap / _in_blocks(prompt + output / 2, block))), 1.0)
    return {
        "ttft_s": ttft, "tpot_s": tpot, "itl_s": run["token_gap_s"], "mean_step_s": run["mean_step_s"],
        "e2e_s": ttft + span, "throughput_rps": rps, "throughput_tok_s": rps * output,
        "kv_utilization": np.minimum(kv_tokens / cap, 1.0), "mean_batch": running,
        "max_running": c_max, "saturated": np.zeros(len(load), dtype=bool),
    }


def _lockstep(cost: StepCost, hw: np.ndarray, load: np.ndarray, prompt: np.ndarray, output: np.ndarray,
              prefill: np.ndarray, cap: np.ndarray, budget: np.ndarray, max_seqs: np.ndarray, block: np.ndarray,
              verify: np.ndarray, tps: np.ndarray, s_step: np.ndarray, s_req: np.ndarray, k_d: np.ndarray,
              k_p: np.ndarray, s_seq: np.ndarray, pf: np.ndarray,
              burst_requests: np.ndarray | float | None, w_it: np.ndarray, w_ratio: np.ndarray,
              preempts: np.ndarray) -> dict[str, np.ndarray]:
    """The lock-step closed loop (all arrays (n,)); the staggered one where it has no lock-step
    (``w_it``, ``w_ratio``: the batch wait's timeout and ratio, which only the staggered rows use):
    prefill-bound rows, and ``preempts`` (on demand, the clients' whole requests exceed the KV
    cache): the cohorts grow until the blocks run out, the newest are preempted and recomputed, and
    the schedule staggers (the simulator: 117 preemptions over 640 requests just above the knee), so
    the staggered model with its preemption law for identical lengths."""
    res = lockstep_state(
        cost, hw, concurrency=load, prompt=prompt, output=output, prefill=prefill, kv_capacity_tokens=cap,
        max_num_batched_tokens=budget, max_num_seqs=max_seqs, block_tokens=block, verify_tokens=verify,
        tokens_per_step=tps, step_overhead_s=s_step, request_overhead_s=s_req, decode_scale=k_d, prefill_scale=k_p,
        seq_overhead_s=s_seq, prefill_first=pf)
    valid, first_wave = res.pop("valid"), res.pop("first_wave_extra_s")
    # batch waiting holds prompts only while others decode; in lock step a group finishes together and
    # the next one arrives to an idle engine, so the periodic schedule stands (the staggered model with
    # its Poisson wait was 2-4x below the event simulator there: 195 against 592 ms, Llama-3.1-8B, c = 32)
    if burst_requests is not None:
        # the benchmark's first c requests arrive at once: a share c / N of the requests have the
        # first wave's TTFT instead of the steady one
        share = np.minimum(np.minimum(load, res["max_running"]) / burst_requests, 1.0)
        extra = share * first_wave
        res["ttft_s"] = res["ttft_s"] + extra
        res["e2e_s"] = res["e2e_s"] + extra
        res["throughput_rps"] = load / res["e2e_s"]  # Little's law over the whole loop
        res["throughput_tok_s"] = res["throughput_rps"] * output
    stagger = ~valid | preempts  # prefill-bound: no decode-only stretch, requests overlap as if staggered
    if stagger.any():
        i = np.flatnonzero(stagger)
        stag = steady_state(cost, prompt=prompt[i], output=output[i], prefill=prefill[i], kv_capacity_tokens=cap[i],
                            max_num_batched_tokens=budget[i], max_num_seqs=max_seqs[i], block_tokens=block[i],
                            concurrency=load[i], verify_tokens=verify[i], tokens_per_step=tps[i],
                            step_overhead_s=s_step[i], request_overhead_s=s_req[i], hw_row=hw[i],
                            burst_requests=None if burst_requests is None else np.broadcast_to(
                                np.asarray(burst_requests, dtype=float), load.shape)[i],
                            decode_scale=k_d[i], prefill_scale=k_p[i], seq_overhead_s=s_seq[i], prefill_first=pf[i],
                            batch_wait_timeout_iters=w_it[i], batch_wait_max_tokens_ratio=w_ratio[i],
                            identical_lengths=True, preemption=preempts[i])
        for key, values in stag.items():
            res[key][i] = values
    return res


def steady_state(cost: StepCost, *, prompt: np.ndarray, output: np.ndarray, prefill: np.ndarray,
                 kv_capacity_tokens: np.ndarray, max_num_batched_tokens: np.ndarray, max_num_seqs: np.ndarray,
                 block_tokens: np.ndarray, concurrency: np.ndarray | None = None, rate_rps: np.ndarray | None = None,
                 verify_tokens: np.ndarray | float = 1.0, tokens_per_step: np.ndarray | float = 1.0,
                 step_overhead_s: np.ndarray | float = 0.0, request_overhead_s: np.ndarray | float = 0.0,
                 hw_row: np.ndarray | None = None, lockstep: bool = False,
                 burst_requests: np.ndarray | float | None = None, decode_scale: np.ndarray | float = 1.0,
                 prefill_scale: np.ndarray | float = 1.0,
                 seq_overhead_s: np.ndarray | float = 0.0,
                 prefill_first: np.ndarray | bool = False,
                 batch_wait_timeout_iters: np.ndarray | float = 0.0,
                 batch_wait_max_tokens_ratio: np.ndarray | float = 0.0,
                 kv_reserve: np.ndarray | bool = False,
                 identical_lengths: np.ndarray | bool = False,
                 preemption: np.ndarray | bool = True) -> dict[str, np.ndarray]:
    """Mean serving metrics of n configurations at once (every argument broadcasts to (n,)).

    ``hw_row`` picks the row of ``cost`` (its hardware configuration) for each configuration
    (default: row 0, or row i when ``cost`` has n rows). Give ``concurrency`` (closed loop) or
    ``rate_rps`` (open loop). ``seq_overhead_s`` is added to a step per running sequence.
    ``lockstep``: a closed loop of identical lengths, whose requests start, prefill and finish in
    groups (:func:`roofline.serving.lockstep.lockstep_state`; where that schedule has no
    decode-only stretch, prefill-bound, the staggered model). ``decode_scale`` multiplies a step's
    cost without prefill chunks, ``prefill_scale`` what the chunks add (fitted, see
    :mod:`roofline.serving.overheads`). ``prefill_first``: the engine runs prefill chunks in steps
    of their own, the decoding sequences waiting (SGLang's scheduler). ``burst_requests``: a benchmark
    of that many requests whose first ``concurrency`` arrive at once (see :func:`_burst_wait_s`).
    ``batch_wait_timeout_iters``, ``batch_wait_max_tokens_ratio``: TensorRT-LLM's batch waiting
    (:func:`_batch_wait_steps`; a lock-step loop keeps its periodic schedule: a whole group finishes
    together, so the next arrives with nothing decoding and is not held; groups that arrive while
    an earlier one decodes would be held and merge, which the schedule leaves out). ``kv_reserve``:
    the engine reserves a request's prompt + output blocks at admission (``kv_admission`` ``reserve``,
    TensorRT-LLM), else it allocates them on demand (vLLM, SGLang) and, in closed loop where the
    clients' whole requests exceed the cache, preempts (:func:`_preempting`; ``preemption=False``:
    the sequence count alone, the model before the preemption law); in open loop, where the running
    set at the knee cannot hold its whole requests, it sustains less (:func:`_open_loop_kv_limit`;
    ``preemption=False``: the rate of the running set at the knee). ``identical_lengths``: the
    preemption law for requests of one length (they grow in cohorts; the lock-step path sets it
    for the rows it hands over), else for a range (read at +-20%). Times in seconds.
    """
    load = concurrency if concurrency is not None else rate_rps
    arrays = np.broadcast_arrays(np.asarray(load, dtype=float), np.asarray(prompt, dtype=float),
                                 np.asarray(output, dtype=float), np.asarray(prefill, dtype=float),
                                 np.asarray(kv_capacity_tokens, dtype=float),
                                 np.asarray(max_num_batched_tokens, dtype=float),
                                 np.asarray(max_num_seqs, dtype=float), np.asarray(block_tokens, dtype=float),
                                 np.asarray(verify_tokens, dtype=float), np.asarray(tokens_per_step, dtype=float),
                                 np.asarray(step_overhead_s, dtype=float), np.asarray(request_overhead_s, dtype=float),
                                 np.asarray(decode_scale, dtype=float), np.asarray(prefill_scale, dtype=float),
                                 np.asarray(seq_overhead_s, dtype=float), np.asarray(prefill_first, dtype=float),
                                 np.asarray(batch_wait_timeout_iters, dtype=float),
                                 np.asarray(batch_wait_max_tokens_ratio, dtype=float),
                                 np.asarray(kv_reserve, dtype=float), np.asarray(identical_lengths, dtype=float),
                                 np.asarray(preemption, dtype=float))
    load, prompt, output, prefill, cap, budget, max_seqs, block, verify, tps, s_step, s_req, k_d, k_p, s_seq, pf, \
        w_it, w_ratio, reserve, same, preempt_on = (np.atleast_1d(a) for a in arrays)
    w_tok = w_ratio * budget  # TensorRT-LLM's threshold: ratio x max_num_tokens
    n = len(load)
    if hw_row is None:
        hw = np.zeros(n, dtype=int) if cost.n == 1 else np.arange(n)
    else:
        hw = np.broadcast_to(np.asarray(hw_row, dtype=int), (n,))
    # engines that allocate KV blocks as tokens arrive (vLLM, SGLang): a running sequence holds on
    # average its prompt and half its output; reserving at admission (TensorRT-LLM): all of it
    per_seq = _in_blocks(prompt + np.where(reserve > 0, output, output / 2), block)
    c_fit = np.floor(cap / per_seq)
    c_max = np.maximum(np.minimum(max_seqs, c_fit), 1.0)
    saturated = np.zeros(n, dtype=bool)
    # on demand, where the clients' whole requests do not fit the KV cache, the engine preempts
    preempts = (reserve <= 0) & (preempt_on > 0) & (
        np.minimum(load, max_seqs) * _in_blocks(prompt + output, block) > cap)
    if concurrency is not None and lockstep:
        return _lockstep(cost, hw, load, prompt, output, prefill, cap, budget, max_seqs, block, verify, tps, s_step,
                         s_req, k_d, k_p, s_seq, pf, burst_requests, w_it, w_ratio, preempts)
    if concurrency is not None:
        c_run = np.minimum(load, c_max)
        run = _running(cost, hw, c_run, prompt, output, prefill, budget, verify, tps, s_step, k_d, k_p, s_seq, pf,
                       wait_iters=w_it, wait_tokens=w_tok)
        rps = c_run / run["lifetime_s"]
        wait = (load - c_run) / rps
        # a request schedulable s_req after it arrives finds the others' step running and waits
        # for its end (as the event simulator; alone, the engine is idle): the rest of the step covering
        # s_req after the step end at which it arrived (:func:`_step_residual_s`)
        step_end = np.where((s_req > 0) & (c_run > 1), _step_residual_s(
            run["decode_only_step_s"], run["prefill_step_s"], run["prefill_share"], s_req), 0.0)
        ttft = s_req + step_end + wait + run["batch_wait_s"] + run["prefill_steps"] * run["prefill_step_s"]
        if burst_requests is not None:
            ttft = ttft + _burst_wait_s(cost, hw, c_run, prefill, budget, s_step, burst_requests, ttft, s_req, k_p)
        rps = load / (ttft + run["decode_steps"] * run["decode_step_s"])  # Little's law over the whole loop
    else:
        full = _running(cost, hw, c_max, prompt, output, prefill, budget, verify, tps, s_step, k_d, k_p, s_seq,
                        pf, False, w_it, w_tok)
        saturated = load * full["lifetime_s"] > c_max
        c_run = np.minimum(load * full["lifetime_s"], c_max)
        for _ in range(40):  # c = R * lifetime(c): a contraction for stable loads
            run = _running(cost, hw, np.maximum(c_run, 1e-9), prompt, output, prefill, budget, verify, tps, s_step,
                           k_d, k_p, s_seq, pf, False, w_it, w_tok)
            c_run = np.minimum(0.5 * c_run + 0.5 * load * run["lifetime_s"], c_max)
        run = _running(cost, hw, np.maximum(c_run, 1e-9), prompt, output, prefill, budget, verify, tps, s_step,
                       k_d, k_p, s_seq, pf, False, w_it, w_tok)
        ttft = s_req + 0.5 * run["mean_step_s"] + run["batch_wait_s"] + run["prefill_steps"] * run["prefill_step_s"] \
            + _prefill_queue_s(load, run["prefill_service_s"])
        rps = np.where(saturated, c_max / full["lifetime_s"], load)
    tpot = np.where(output > 1, run["decode_steps"] * run["decode_step_s"] / np.maximum(output - 1, 1), 0.0)
    e2e = ttft + (output - 1) * tpot
    # time-averaged (Little's law: requests/s x token-seconds each; counting steps made DeepSeek-V3 on 2 GH200
    # at c = 1 0.97 against 0.63, its one 1.7 s prefill step weighing as one of 64): a prefilling request
    # holds its prompt so far and the chunk its step writes, a decoding one its prompt and half its output
    n_p = run["prefill_steps"]
    kv_tokens = rps * (n_p * run["prefill_step_s"] * (prompt - prefill + prefill * (n_p + 1) / (2 * n_p))
                       + run["decode_steps"] * run["decode_step_s"] * (prompt + output / 2))
    res = {
        "ttft_s": ttft, "tpot_s": tpot, "itl_s": run["token_gap_s"], "mean_step_s": run["mean_step_s"], "e2e_s": e2e,
        "throughput_rps": rps, "throughput_tok_s": rps * output,
        "kv_utilization": np.minimum(kv_tokens / cap, 1.0), "mean_batch": c_run,
        "max_running": c_max, "saturated": saturated,
    }
    # open loop on demand where the running set at its limit cannot hold its whole requests: a queue, once
    # formed, drains at the preempting closed loop's throughput (:func:`_open_loop_kv_limit`)
    whole_over = (reserve <= 0) & (preempt_on > 0) & (c_max * _in_blocks(prompt + output, block) > cap)
    if concurrency is None and whole_over.any():
        i = np.flatnonzero(whole_over)
        full_rate = c_max[i] / full["lifetime_s"][i]
        sustained, far = _open_loop_kv_limit(
            cost, hw[i], prompt[i], output[i], prefill[i], cap[i], budget[i], max_seqs[i], block[i], verify[i], tps[i],
            s_step[i], s_req[i], k_d[i], k_p[i], s_seq[i], pf[i], w_it[i], w_tok[i], same[i] > 0, full_rate)
        # (where the law's running count falls short of max_num_seqs, the preempting loop may drain faster
        # than the full running set without preemption: that one's rate stands)
        over = (load[i] > sustained) & (sustained < full_rate)
        j = i[over]
        res["saturated"][j] = True
        # beyond it the queue grows and the engine runs far above the knee; the throughput reported is, as
        # for every saturated row, the largest rate it sustains (callers bisect below it)
        for key in ("tpot_s", "itl_s", "mean_step_s", "kv_utilization", "mean_batch"):
            res[key][j] = far[key][over]
        res["throughput_rps"][j] = sustained[over]
        res["throughput_tok_s"][j] = sustained[over] * output[j]
        res["e2e_s"][j] = res["ttft_s"][j] + (output[j] - 1) * res["tpot_s"][j]
    if concurrency is not None and preempts.any():
        i = np.flatnonzero(preempts)
        sub = _preempting(cost, hw[i], load[i], prompt[i], output[i], prefill[i], cap[i], budget[i], max_seqs[i],
                          block[i], verify[i], tps[i], s_step[i], s_req[i], k_d[i], k_p[i], s_seq[i], pf[i], w_it[i],
                          w_tok[i], None if burst_requests is None else np.broadcast_to(
                              np.asarray(burst_requests, dtype=float), (n,))[i], same[i] > 0)
        for key, values in sub.items():
            res[key] = res[key].astype(values.dtype) if res[key].dtype != values.dtype else res[key]
            res[key][i] = values
    return res


def sglang_ratio_running(concurrency: np.ndarray | float, kv_capacity_tokens: np.ndarray | float,
                         prompt: np.ndarray | float, output: np.ndarray | float, *,
                         ratio: SglangRatio = SGLANG_RATIO) -> np.ndarray:
    """Sequences running in steady state under SGLang's ``new_token_ratio`` admission
    (``kv_admission = "sglang_ratio"``) of a closed loop of ``concurrency`` clients (broadcasts).

    A request is admitted when a running one finishes (``batch_is_full`` waits for that) if its
    prompt ``p`` and ``min(o, clip)`` fit beside the running ``n``: each holds ``p + o / 2`` tokens
    on average (on demand, progress spread evenly) and is charged ``min(o / 2, clip) x r`` for what
    it has left, ``r`` the ratio's floor (0.098: reached after 600 decode steps, so at outputs of a
    few hundred tokens and more it stays there between retractions). So at most
    ``n = (cap - p - min(o, clip)) / (p + o / 2 + r min(o / 2, clip))`` run, and ``min(C, n)``.
    Against the event simulator's running count at KV-limited points it is within 3% with +-20%
    lengths, +3 and +10% with identical ones (retractions raise the ratio for a while), see
    ``tests/test_serving_sglang_ratio.py``. Not used by
    :func:`steady_state`, whose on-demand law stands in for SGLang.
    """
    p, o = np.asarray(prompt, dtype=float), np.asarray(output, dtype=float)
    clip = ratio.clip_tokens
    fit = (np.asarray(kv_capacity_tokens, dtype=float) - p - np.minimum(o, clip)) \
        / (p + o / 2 + ratio.floor * np.minimum(o / 2, clip))
    return np.minimum(np.asarray(concurrency, dtype=float), np.maximum(fit, 1.0))
