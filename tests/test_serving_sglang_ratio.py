"""SGLang's KV admission (``kv_admission = "sglang_ratio"``): the ``new_token_ratio`` reservation,
its decay per decode step (in closed form over a run), retraction, the analytic count of running
sequences, and vLLM / TensorRT-LLM unchanged to the bit."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roofline.serving import Lengths, ServingWorkload, engine_defaults, make_requests, simulate
from roofline.serving.analytic import sglang_ratio_running
from roofline.serving.settings import SGLANG_RATIO, SglangRatio
from roofline.serving.simulator import _ratio_after_retract, _retract_victim
from roofline.serving.step_cost import ScalarStepCost
from roofline.serving.workload import Requests


def _linear_cost() -> ScalarStepCost:
    """A step costs 1 ms + 1 us per token (no attention, no head), for hand calculations."""
    return ScalarStepCost([1.0, 10_000.0], [1e-3 + 1e-6, 1e-3 + 1e-2], [0.0, 0.0], 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def _requests(prompt: list[int], output: list[int]) -> Requests:
    n = len(prompt)
    return Requests(np.full(n, np.nan), np.array(prompt), np.array(output), np.array(prompt))


def _sglang(**over: object):
    return engine_defaults("sglang").with_overrides(max_num_batched_tokens=512, **over)


def test_the_ratio_constants_by_hand():
    # 0.7 x conservativeness 1, floor 0.7 x 0.14 = 0.098, decay (0.7 - 0.098) / 600 = 0.0010033
    assert (SGLANG_RATIO.start, SGLANG_RATIO.floor) == (0.7, pytest.approx(0.098))
    assert SGLANG_RATIO.decay == pytest.approx(0.602 / 600)
    assert SglangRatio(conservativeness=2.0).start == 1.0  # min(1.4, 1)
    assert SGLANG_RATIO.after(0.7, 100) == pytest.approx(0.7 - 0.10033333)
    assert SGLANG_RATIO.after(0.7, 600) == pytest.approx(0.098) and SGLANG_RATIO.after(0.7, 10**6) == 0.098


@given(ratio=st.floats(0.0, 1.0), steps=st.integers(0, 2000))
def test_decay_in_closed_form_is_step_by_step(ratio, steps):
    r = ratio
    for _ in range(steps):  # scheduler.py update_running_batch, one decode step at a time
        r = max(r - SGLANG_RATIO.decay, SGLANG_RATIO.floor)
    assert SGLANG_RATIO.after(ratio, steps) == pytest.approx(r, abs=1e-12)


@pytest.mark.parametrize("output, steps", [(101, 100), (1001, 1000)])
def test_the_simulator_decays_a_run_at_once(output, steps):
    # one request of 10 + output tokens: its prefill step, then output - 1 decode steps in one run
    tr = simulate(_requests([10], [output]), _linear_cost(), _sglang(), 10_000.0, concurrency=1)
    r = SGLANG_RATIO.start
    for _ in range(steps):
        r = max(r - SGLANG_RATIO.decay, SGLANG_RATIO.floor)
    assert tr.new_token_ratio == pytest.approx(r, abs=1e-12) and tr.steps == 1 + steps
    # 0.7 - 100 x 0.0010033 = 0.59967; 1000 steps reach the floor
    assert tr.new_token_ratio == pytest.approx({100: 0.599667, 1000: 0.098}[steps], abs=1e-6)


def test_admission_against_the_decayed_ratio_by_hand():
    # KV cache of 1,000 tokens (blocks of 1), a step 1 ms + 1 us per token, closed loop c = 3:
    # A 100 + 100, B 100 + 400, C 100 + 500 tokens (prompt + output).
    # Admission at 0 (nothing runs, ratio 0.7): A charges 100 + 100 (room 1,000 -> 800), B 100 + 400
    # (800 -> 300), C 600 >= 300: refused, the batch is full until a request finishes.
    # A and B prefill together (200 tokens, 1.2 ms: their first tokens); 99 decode steps of 2 tokens
    # (1.002 ms) end A at 1.2 + 99.198 = 100.398 ms; the ratio is 0.7 - 99 x 0.0010033 = 0.60067.
    # B holds 100 + 99 tokens: 801 free; its charge min(300, 4096) x 0.60067 = 180.2: room 620.8 > 600:
    # C is admitted and prefills alone (SGLang's prefill first: 1.1 ms): its first token at 101.498 ms.
    # At a ratio kept at 0.7 the room is 801 - 210 = 591 < 600: C waits for B to finish.
    req = _requests([100, 100, 100], [100, 400, 500])
    tr = simulate(req, _linear_cost(), _sglang(), 1000.0, concurrency=3)
    assert tr.first_token_s[:2] == pytest.approx([1.2e-3, 1.2e-3])
    assert tr.finish_s[0] == pytest.approx(100.398e-3)
    assert tr.first_token_s[2] == pytest.approx(101.498e-3)
    assert tr.preemptions == 0
    kept = simulate(req, _linear_cost(), _sglang(), 1000.0, concurrency=3,
                    sglang_ratio=SglangRatio(decay_steps=10**12))
    assert kept.first_token_s[2] > kept.finish_s[1]
    # on demand (vLLM's rule) admits all three at once: their prompts fit
    od = simulate(req, _linear_cost(), _sglang(kv_admission="on_demand"), 1000.0, concurrency=3)
    assert od.first_token_s[2] == pytest.approx(1.3e-3)


def test_retraction_victim_and_ratio_by_hand():
    # retract_decode sorts by (generated, -prompt) descending and pops the last: the fewest
    # generated tokens first, then the longest prompt, then the newest
    generated = np.zeros(10)
    prompt = np.zeros(10)
    output = np.zeros(10)
    generated[[4, 7, 9]] = [10, 3, 3]
    prompt[[4, 7, 9]] = [100, 50, 80]
    output[[4, 7, 9]] = [200, 300, 400]
    assert _retract_victim(np.array([4, 7, 9]), generated, prompt) == 9
    prompt[9] = 50
    assert _retract_victim(np.array([4, 7, 9]), generated, prompt) == 9  # a tie: the newest
    assert _retract_victim(np.array([4, 9, 7]), generated, prompt) == 7
    # the ratio after: (10 + 3 + 20 x 2) / (200 + 300 + 1) = 53 / 501 of the two left
    assert _ratio_after_retract(np.array([4, 7]), generated, output, 20) == pytest.approx(53 / 501)
    generated[[4, 7]] = [190, 290]
    assert _ratio_after_retract(np.array([4, 7]), generated, output, 20) == 1.0  # capped


def test_retraction_frees_the_least_advanced_and_raises_the_ratio():
    # 60 requests of 50 + 200-1,000 tokens at c = 12 in 4,000 tokens: the floor-level reservation
    # lets more in than their outputs fit, so decode steps run out and requests are retracted (8,
    # where on-demand preempts 92 times); every request still delivers its whole output, and the
    # ratio ends between its floor and 1 (0.140: raised by a retraction less than 600 steps before)
    rng = np.random.default_rng(3)
    req = _requests([50] * 60, rng.integers(200, 1000, 60).tolist())
    tr = simulate(req, _linear_cost(), _sglang(), 4000.0, concurrency=12)
    od = simulate(req, _linear_cost(), _sglang(kv_admission="on_demand"), 4000.0, concurrency=12)
    assert tr.preemptions > 0 and np.isfinite(tr.finish_s).all()
    assert tr.preemptions < od.preemptions  # the reservation keeps most of them out
    assert SGLANG_RATIO.floor < tr.new_token_ratio <= 1.0


_lengths = st.lists(st.tuples(st.integers(1, 300), st.integers(1, 300)), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lengths=_lengths, c=st.integers(1, 6), block=st.sampled_from([1, 16]))
def test_with_room_for_every_request_the_ratio_changes_no_time(lengths, c, block):
    # a KV cache for every request's prompt + output at once (plus the clip's slack): every
    # admission passes, so the schedule is on-demand's (SGLang's prefill first), to the bit; only
    # the running count differs (a request waits in the queue, not admitted, until the step's
    # token budget reaches its prompt: the clocks' fourth column)
    prompt, output = map(list, zip(*lengths))
    req = _requests(prompt, output)
    s = _sglang(block_tokens=block)
    cap = float(block * sum(math.ceil((p + o) / block) + 1 for p, o in lengths))
    a = simulate(req, _linear_cost(), s.with_overrides(kv_admission="on_demand"), cap, concurrency=c)
    b = simulate(req, _linear_cost(), s, cap, concurrency=c)
    for name in ("arrival_s", "first_token_s", "finish_s", "itl_s", "itl_weight"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    for name in ("clock_arrival", "clock_first", "clock_finish"):
        assert np.array_equal(getattr(a, name)[:, :3], getattr(b, name)[:, :3]), name
    assert (a.steps, b.preemptions) == (b.steps, 0)


@pytest.mark.parametrize("framework, policy, first_sum_s, finish_sum_s, steps, preemptions", [
    ("vllm", "on_demand", 157.099288, 177.28823599999998, 4533, 64),
    ("sglang", "on_demand", 156.69633799999997, 177.34420499999996, 4540, 63),
    ("trtllm", "on_demand", 160.034834, 180.05310000000003, 4586, 58),
    ("trtllm", "reserve", 238.634361, 255.24093700000003, 6517, 0)])
def test_the_other_policies_are_main_to_the_bit(framework, policy, first_sum_s, finish_sum_s, steps, preemptions):
    # 80 requests of 50-400 + 50-400 tokens at c = 12 in 1,600 tokens (KV-limited): the sums main's
    # simulator gave before the sglang_ratio policy (main at 388d8fd), exactly
    rng = np.random.default_rng(11)
    p, o = rng.integers(50, 400, 80), rng.integers(50, 400, 80)
    req = Requests(np.full(80, np.nan), p, o, p)
    s = engine_defaults(framework).with_overrides(max_num_batched_tokens=512, kv_admission=policy)
    tr = simulate(req, _linear_cost(), s, 1600, concurrency=12)
    assert (float(tr.first_token_s.sum()), float(tr.finish_s.sum()), tr.steps, tr.preemptions) == (
        first_sum_s, finish_sum_s, steps, preemptions)
    assert math.isnan(tr.new_token_ratio)


def test_analytic_running_by_hand():
    # 100,000 tokens, prompts 1,000, outputs 2,000: (100,000 - 1,000 - 2,000) / (1,000 + 1,000 +
    # 0.098 x 1,000) = 97,000 / 2,098 = 46.235; at C = 30 all run; outputs of 10,000 clip at 4,096:
    # (100,000 - 1,000 - 4,096) / (1,000 + 5,000 + 0.098 x 4,096) = 94,904 / 6,401.4 = 14.825
    got = sglang_ratio_running(np.array([100.0, 30.0, 100.0]), 1e5, np.array([1e3, 1e3, 1e3]),
                               np.array([2e3, 2e3, 1e4]))
    assert got == pytest.approx([46.2345, 30.0, 14.8255], abs=1e-3)


@pytest.mark.parametrize("case", [
    ("llama-3.1-8b", "h100-sxm", 1, 1024, 8192, 1.6),
    ("llama-3.1-70b", "b200", 2, 8192, 1024, 1.6),
    ("llama-3.1-70b", "h100-sxm", 2, 1024, 8192, 3.2)], ids=lambda c: "-".join(map(str, c)))
def test_analytic_running_agrees_with_the_simulator_where_kv_is_the_limit(case):
    # +-20% lengths at 1.6-3.2x the on-demand knee: the simulator's mean running count (whole run,
    # 10 C requests) within 5% of sglang_ratio_running (measured: -2.3%, +2.7%, -3.4%)
    from tests.test_serving_preemption import _setup

    model, hw, tp, isl, osl, knee_x = case
    setup, cost, cap = _setup(model, hw, tp, "sglang")
    s, o = setup.settings.with_overrides(kv_admission="sglang_ratio"), setup.overheads
    c = int(round(knee_x * cap / (isl + osl / 2)))
    lengths = [Lengths(int(x * 0.8), int(x * 1.2)) for x in (isl, osl)]
    tr = simulate(make_requests(ServingWorkload(*lengths, concurrency=c, num_requests=10 * c)), cost.scalar(), s,
                  cap, concurrency=c, step_overhead_s=o.step_overhead_s, request_overhead_s=o.request_overhead_s,
                  decode_scale=o.decode_scale, prefill_scale=o.prefill_scale, seq_overhead_s=o.seq_overhead_s)
    an = float(sglang_ratio_running(c, cap, isl, osl))
    assert tr.preemptions > 0
    assert an / tr.mean_running - 1 == pytest.approx(0.0, abs=0.05)
