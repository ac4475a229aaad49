"""KV utilisation ("KV used"): the time-averaged share of the KV-cache capacity the running
sequences hold, a step's sequences counted with the tokens it writes (their slots are allocated
when it is scheduled). Both evaluators, by hand and against each other."""

from __future__ import annotations

import math

import numpy as np
import pytest

import roofline
from roofline.serving import Lengths, ServingWorkload, engine_defaults, make_requests, simulate
from roofline.serving.analytic import steady_state
from roofline.serving.serve import ServingSetup
from roofline.serving.step_cost import StepCost


def _synthetic_cost() -> StepCost:
    """A step of 1 token takes 0.1 s, of 1,024 tokens or more 100 s (linear between); no head, no attention."""
    zero = np.zeros(1)
    return StepCost(np.array([1.0, 1024.0, 16384.0]), np.array([[0.1, 100.0, 100.0]]), np.zeros((1, 3)),
                    zero, zero, zero, zero, zero, zero)


def test_kv_utilization_by_hand_one_request_at_a_time():
    """One request at a time (c = 1) of 1,024 prompt and 1,025 output tokens, block 16: capacity
    ceil(2,049 / 16) x 16 = 2,064 tokens. Its prefill is one 100 s step holding the 1,024 prompt
    tokens it writes; its 1,024 decode steps of 0.1 s hold 1,025, 1,026, ..., 2,048 tokens (mean
    1,536.5 = prompt + output / 2). Time average: (100 x 1,024 + 102.4 x 1,536.5) / 202.4 =
    1,283.29 tokens, 0.621748 of the capacity.

    Before, the simulator counted the cache before each step wrote (0 tokens for the whole 100 s
    prefill: 0.3764) and the analytic model weighted by steps, not time (one prefill step of 1,025:
    0.7442)."""
    cost, settings = _synthetic_cost(), engine_defaults("vllm")
    expected = (100 * 1024 + 102.4 * 1536.5) / 202.4 / 2064
    assert expected == pytest.approx(0.621748, abs=1e-6)
    reqs = make_requests(ServingWorkload(Lengths(1024), Lengths(1025), concurrency=1, num_requests=3))
    tr = simulate(reqs, cost.scalar(), settings, 2064.0, concurrency=1)
    assert tr.kv_capacity_tokens == 2064
    assert tr.mean_kv_tokens / tr.kv_capacity_tokens == pytest.approx(expected, rel=1e-9)
    a = steady_state(cost, prompt=1024, output=1025, prefill=1024, kv_capacity_tokens=2064,
                     max_num_batched_tokens=settings.max_num_batched_tokens, max_num_seqs=settings.max_num_seqs,
                     block_tokens=settings.block_tokens, concurrency=1)
    assert a["kv_utilization"][0] == pytest.approx(expected, rel=1e-6)


def test_the_reported_case_agrees_like_for_like():
    """DeepSeek-V3 fp8 on 2 GH200 (weights and KV cache in LPDDR), c = 1, 1,024 / 64, fitted model
    (roofline serve's default), the same fixed lengths in both: analytic 0.970 against simulated
    0.628 before (0.97 against 0.56 as reported, the simulation with length ranges and a 10%
    larger capacity); both 0.953 then. The prefill step is 1.6 s of the request's 4.9 s, and the
    simulator counted it at 0 tokens. With the soft-L1 refit of the overheads (2026-11-29: vLLM's
    MoE prefill 2.75x the roofline, was 2.36x; its prefill step 1.9 s) serve evaluates fixed lengths
    with the lock-step model, which counted c x (prompt + output / 2): analytic 0.965 against
    simulated 0.954; with its KV utilisation time-averaged too, 0.9536 in both (to 1e-6)."""
    kw = dict(tp=2, dtype="fp8", input_len=1024, output_len=64, concurrency=1, num_requests=20)
    analytic = roofline.serve("deepseek-v3", "gh200", **kw).rows[0]["kv_utilization"]
    simulated = roofline.serve("deepseek-v3", "gh200", simulate_events=True, **kw).rows[0]["kv_utilization"]
    assert simulated == pytest.approx(analytic, rel=0.01)
    assert analytic == pytest.approx(0.954, abs=0.005)


@pytest.mark.parametrize("model, hw, tp, c, isl, osl", [
    ("deepseek-v3", "gh200", 2, 1, 256, 16),  # weights and KV cache in LPDDR: a long prefill step
    ("deepseek-v3", "gh200", 2, 4, 1024, 128),
    ("llama-3.1-70b", "gh200", 1, 1, 256, 16),
    ("llama-3.1-8b", "h100-sxm", 1, 32, 2048, 256),
    ("qwen3-32b", "gb200-nvl72", 1, 32, 2048, 256),
])
@pytest.mark.parametrize("framework", ["vllm", "sglang"])
def test_analytic_kv_utilization_matches_simulator(model, hw, tp, c, isl, osl, framework):
    """Staggered lengths (+-10 %), as the other agreement tests; the simulator's mean is over the whole
    run (ramp-up and drain included). Measured: within 2.2% (before: up to 109% off at c = 1)."""
    settings = engine_defaults(framework)
    block = settings.block_tokens
    demand = c * (math.ceil((int(isl * 1.1) + int(osl * 1.1)) / block) + 1) * block
    setup = ServingSetup(roofline.load_model(model), roofline.load_hardware(hw), roofline.Workload.with_dtype("fp8"),
                         roofline.Parallelism(tp=tp), settings, kv_demand_tokens=demand)
    cost, cap = setup.step_cost(), setup.kv_capacity_tokens()
    w = ServingWorkload(Lengths(int(isl * 0.9), int(isl * 1.1)), Lengths(int(osl * 0.9), int(osl * 1.1)),
                        concurrency=c, num_requests=max(20 * c, 300))
    tr = simulate(make_requests(w), cost.scalar(), settings, cap, concurrency=c)
    a = steady_state(cost, prompt=isl, output=osl, prefill=isl, kv_capacity_tokens=cap,
                     max_num_batched_tokens=settings.max_num_batched_tokens, max_num_seqs=settings.max_num_seqs,
                     block_tokens=block, concurrency=c, prefill_first=settings.prefill_first)
    assert a["kv_utilization"][0] == pytest.approx(tr.mean_kv_tokens / tr.kv_capacity_tokens, rel=0.03)


@pytest.mark.parametrize("model, hw, tp, c, isl, osl", [
    ("deepseek-v3", "gh200", 2, 16, 1024, 64),
    ("llama-3.1-8b", "h100-sxm", 1, 64, 1024, 128),
    ("llama-3.1-8b", "h100-sxm", 1, 8, 8192, 1024),  # prompts of a whole budget
])
@pytest.mark.parametrize("framework", ["vllm", "sglang"])
def test_lockstep_kv_utilization_matches_simulator(model, hw, tp, c, isl, osl, framework):
    """Identical lengths in a closed loop (roofline.serving.lockstep): a request holds nothing before its
    chunks, so the share counted from the lock-step period, not c x (prompt + output / 2). Measured
    within 1.6% on a grid of 21 cases (before: 29% high for SGLang at c = 64, whose requests wait through
    the other groups' prefill steps holding nothing)."""
    settings = engine_defaults(framework)
    block = settings.block_tokens
    setup = ServingSetup(roofline.load_model(model), roofline.load_hardware(hw), roofline.Workload.with_dtype("fp8"),
                         roofline.Parallelism(tp=tp), settings,
                         kv_demand_tokens=c * math.ceil((isl + osl) / block) * block)
    cost, cap = setup.step_cost(), setup.kv_capacity_tokens()
    w = ServingWorkload(Lengths(isl), Lengths(osl), concurrency=c, num_requests=max(20 * c, 200))
    tr = simulate(make_requests(w), cost.scalar(), settings, cap, concurrency=c)
    a = steady_state(cost, prompt=isl, output=osl, prefill=isl, kv_capacity_tokens=cap,
                     max_num_batched_tokens=settings.max_num_batched_tokens, max_num_seqs=settings.max_num_seqs,
                     block_tokens=block, concurrency=c, prefill_first=settings.prefill_first, lockstep=True)
    assert a["kv_utilization"][0] == pytest.approx(tr.mean_kv_tokens / tr.kv_capacity_tokens, rel=0.025)
