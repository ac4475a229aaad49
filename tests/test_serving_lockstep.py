"""The lock-step model of a closed loop of identical lengths against the event simulator."""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest

import roofline
from roofline.exceptions import SpecError
from roofline.fitted import ModelChoice, fitted_model
from roofline.serving import (
    Lengths,
    ServingSetup,
    ServingWorkload,
    engine_defaults,
    load_overheads,
    make_requests,
    serve,
    simulate,
    steady_state,
    trace_metrics,
)
from roofline.serving.columns import length_range, parse_serving_block
from roofline.serving.lockstep import lockstep_state
from roofline.serving.overheads import DATASHEET
from roofline.serving.step_cost import StepCost
from roofline.serving.workload import Requests


def _linear_step_cost() -> StepCost:
    """A step costs 1 ms + 1 us per token (body only: no head, no attention), for hand calculations."""
    z = np.zeros(1)
    return StepCost(np.array([1.0, 10_000.0]), np.array([[1e-3 + 1e-6, 1e-3 + 1e-2]]), np.zeros((1, 2)),
                    z, z, z, z, z, z)


def _one(x: float) -> np.ndarray:
    return np.array([float(x)])


def _lockstep(cost: StepCost, c: int, prompt: int, output: int, budget: int, request_overhead_s: float = 0.0,
              prefill_first: bool = False) -> dict[str, np.ndarray]:
    return lockstep_state(
        cost, np.zeros(1, dtype=int), concurrency=_one(c), prompt=_one(prompt), output=_one(output),
        prefill=_one(prompt), kv_capacity_tokens=_one(1e6), max_num_batched_tokens=_one(budget),
        max_num_seqs=_one(1024), block_tokens=_one(16), verify_tokens=_one(1), tokens_per_step=_one(1),
        step_overhead_s=_one(0), request_overhead_s=_one(request_overhead_s), decode_scale=_one(1),
        prefill_scale=_one(1), seq_overhead_s=_one(0), prefill_first=_one(prefill_first))


@pytest.mark.parametrize("budget, r_s, ttft_ms, tpot_ms, e2e_ms, batch", [
    # c = 2, prompts of 100, outputs of 5 (d = 4 decode steps), step = 1 ms + 1 us/token.
    # One group (both prompts fit the 8192 budget): the period is one prefill step of 200 tokens
    # (1.2 ms) and 4 decode steps of 2 tokens (1.002 ms): T = 1.2 + 4.008 = 5.208 ms = e2e;
    # TTFT = 1.2 ms; TPOT = (5.208 - 1.2) / 4 = 1.002 ms; both always run.
    (8192, 0.0, 1.2, 1.002, 5.208, 2.0),
    # the same with a 0.5 ms request overhead: both finish together, the engine idles 0.5 ms:
    # T = 5.708 ms, TTFT = 1.7 ms, TPOT 1.002 ms; running 2 x (1 - 0.5 / 5.708) = 1.8248
    (8192, 5e-4, 1.7, 1.002, 5.708, 2 * (1 - 0.5 / 5.708)),
    # a budget of 150: one prompt a step beside one decoder (q = floor((150 - 2) / 99) = 1), two
    # groups of one in a chain: A's successor is prefilled beside B's last decode token (101
    # tokens, 1.101 ms), then B's beside A's first (1.101 ms), then 3 decode-only steps of 2
    # (1.002 ms): N = d + 1 = 5 steps, T = 2.202 + 3.006 = 5.208 ms; TTFT 1.101 ms (one step);
    # TPOT = (5.208 - 1.101) / 4 = 1.02675 ms
    (150, 0.0, 1.101, 1.02675, 5.208, 2.0),
])
def test_periodic_schedule_by_hand(budget, r_s, ttft_ms, tpot_ms, e2e_ms, batch):
    cost = _linear_step_cost()
    a = _lockstep(cost, 2, 100, 5, budget, r_s)
    assert a["ttft_s"][0] * 1e3 == pytest.approx(ttft_ms, rel=1e-9)
    assert a["tpot_s"][0] * 1e3 == pytest.approx(tpot_ms, rel=1e-9)
    assert a["e2e_s"][0] * 1e3 == pytest.approx(e2e_ms, rel=1e-9)
    assert a["throughput_rps"][0] == pytest.approx(2 / (e2e_ms * 1e-3), rel=1e-9)
    assert a["mean_batch"][0] == pytest.approx(batch, rel=1e-9)
    # the event simulator follows the same period exactly
    n = 40
    req = Requests(np.full(n, np.nan), np.full(n, 100), np.full(n, 5), np.full(n, 100))
    tr = simulate(req, cost.scalar(), engine_defaults("vllm").with_overrides(max_num_batched_tokens=budget), 1e6,
                  concurrency=2, request_overhead_s=r_s)
    mid = np.argsort(tr.finish_s)[10:30]
    assert (tr.first_token_s - tr.arrival_s)[mid] * 1e3 == pytest.approx(np.full(20, ttft_ms), rel=1e-9)
    assert (tr.finish_s - tr.arrival_s)[mid] * 1e3 == pytest.approx(np.full(20, e2e_ms), rel=1e-9)


def test_prefill_first_cohort_by_hand():
    # SGLang-style, c = 4 prompts of 100, outputs of 5, a budget of 250: the cohort finishes
    # together, its successors arrive at once and run in prefill-only steps: step 1 prompts 1, 2
    # and half of 3 (250 tokens, 1.25 ms), step 2 the rest of 3 and prompt 4 (150 tokens, 1.15 ms),
    # so first tokens after u = 1, 1, 2, 2 steps; then 4 decode steps of 4 tokens (1.004 ms).
    # T = 2.4 + 4.016 = 6.416 ms; TTFT = (2 x 1.25 + 2 x 2.4) / 4 = 1.825 ms;
    # TPOT = (6.416 - 1.825) / 4 = 1.14775 ms; ITL: step 2 stalls the two decoding sequences,
    # counted in their first gap: (1.15 + 4 x 1.004) / 4 = 1.2915 ms
    cost = _linear_step_cost()
    a = _lockstep(cost, 4, 100, 5, 250, prefill_first=True)
    assert a["e2e_s"][0] * 1e3 == pytest.approx(6.416, rel=1e-9)
    assert a["ttft_s"][0] * 1e3 == pytest.approx(1.825, rel=1e-9)
    assert a["tpot_s"][0] * 1e3 == pytest.approx(1.14775, rel=1e-9)
    assert a["itl_s"][0] * 1e3 == pytest.approx(1.2915, rel=1e-9)
    n = 40
    req = Requests(np.full(n, np.nan), np.full(n, 100), np.full(n, 5), np.full(n, 100))
    tr = simulate(req, cost.scalar(), engine_defaults("sglang").with_overrides(max_num_batched_tokens=250), 1e6,
                  concurrency=4)
    mid = np.argsort(tr.finish_s)[8:32]
    assert np.mean((tr.first_token_s - tr.arrival_s)[mid]) * 1e3 == pytest.approx(1.825, rel=1e-9)
    assert np.mean((tr.finish_s - tr.arrival_s)[mid]) * 1e3 == pytest.approx(6.416, rel=1e-9)
    assert trace_metrics(tr)["itl_ms"] == pytest.approx(1.2915, rel=1e-9)


@cache
def _scenario(model: str, hardware: str, tp: int, framework: str,
              datasheet: bool) -> tuple[ServingSetup, StepCost, float]:
    """A replica as ``roofline serve`` builds it (the checkpoint's dtype; the fitted model unless
    ``datasheet``), its step cost and KV capacity (tokens), built once."""
    chosen = fitted_model(hardware, ModelChoice(datasheet, framework))
    m = roofline.load_model(model)
    over = DATASHEET if datasheet else load_overheads(framework).for_model(m)
    setup = ServingSetup(m, chosen.hardware, roofline.Workload.for_model(m, None), roofline.Parallelism(tp=tp),
                         engine_defaults(framework), over)
    return setup, setup.step_cost(), setup.kv_capacity_tokens()


def _steady_running(tr, request_overhead_s: float, c_max: float) -> float:
    """The simulator's mean running batch over the middle half (by finish time) of the run: a
    request runs from when it is schedulable (its request overhead after its arrival) to its finish,
    at most ``c_max`` at once (the others wait, first come first served)."""
    finish = np.sort(tr.finish_s)
    t0, t1 = finish[len(finish) // 4], finish[3 * len(finish) // 4]
    times = np.concatenate([tr.arrival_s + request_overhead_s, tr.finish_s])
    steps = np.concatenate([np.ones(len(tr.finish_s)), -np.ones(len(tr.finish_s))])
    order = np.argsort(times, kind="stable")
    times, count = times[order], np.minimum(np.cumsum(steps[order]), c_max)
    edges = np.clip(np.append(times, t1), t0, t1)
    return float(np.sum(count * np.diff(edges)) / (t1 - t0))


def _assert_lockstep_matches_simulator(scenario: tuple[ServingSetup, StepCost, float], c: int, isl: int,
                                       osl: int) -> dict[str, float]:
    setup, cost, cap = scenario
    # the lock-step schedule's cohorts hold their whole prompt + output: the simulator's reserve
    # admission (on demand, vLLM's and SGLang's, admits more where the KV cache is the limit and
    # preempts as they grow, which the lock-step model leaves out)
    s, over = setup.settings.with_overrides(kv_admission="reserve"), setup.overheads
    n = max(20 * c, 300)
    req = make_requests(ServingWorkload(Lengths(isl), Lengths(osl), concurrency=c, num_requests=n))
    tr = simulate(req, cost.scalar(), s, cap, concurrency=c, step_overhead_s=over.step_overhead_s,
                  request_overhead_s=over.request_overhead_s, decode_scale=over.decode_scale,
                  prefill_scale=over.prefill_scale, seq_overhead_s=over.seq_overhead_s)
    a = steady_state(cost, prompt=isl, output=osl, prefill=isl, kv_capacity_tokens=cap,
                     max_num_batched_tokens=s.max_num_batched_tokens, max_num_seqs=s.max_num_seqs,
                     block_tokens=s.block_tokens, concurrency=c, step_overhead_s=over.step_overhead_s,
                     request_overhead_s=over.request_overhead_s, decode_scale=over.decode_scale,
                     prefill_scale=over.prefill_scale, seq_overhead_s=over.seq_overhead_s,
                     prefill_first=s.prefill_first, lockstep=True, kv_reserve=True)
    # steady state: the middle half of the requests by finish time, as the staggered tests measure
    mid = np.argsort(tr.finish_s)[n // 4: 3 * n // 4]
    blocks = math.ceil((isl + osl) / s.block_tokens)
    c_max = min(s.max_num_seqs, (cap // s.block_tokens) // blocks)  # the simulator's admission rule
    sim = {"ttft_s": np.mean((tr.first_token_s - tr.arrival_s)[mid]),
           "tpot_s": np.mean(((tr.finish_s - tr.first_token_s) / (tr.output - 1))[mid]),
           "e2e_s": np.mean((tr.finish_s - tr.arrival_s)[mid]), "itl_s": trace_metrics(tr)["itl_ms"] / 1e3,
           "mean_batch": _steady_running(tr, over.request_overhead_s, c_max)}
    errors = {k: float(a[k][0] / v - 1) for k, v in sim.items()}
    for key, bound in (("tpot_s", 0.05), ("itl_s", 0.05), ("e2e_s", 0.05), ("mean_batch", 0.05), ("ttft_s", 0.15)):
        assert abs(errors[key]) <= bound, (key, errors)
    return errors


_SETUPS = [("llama-3.1-8b", "h100-sxm", 1), ("llama-3.1-70b", "h200-sxm", 8), ("qwen3-32b", "h100-sxm", 2),
           ("gpt-oss-120b", "h200-sxm", 1)]  # dense on 1, 8 and 2 devices; MoE (gpt-oss) on one H200
_POINTS = [(c, isl, osl) for c in (1, 8, 64, 256) for isl, osl in ((1024, 128), (1024, 1024), (8192, 1024))]
#: run by default (the rest of the grid is marked slow): every set-up, framework and overheads at
#: one of these points in turn, and the documented case (Llama-3.1-8B, c = 64, 1024 / 128) at all
_DEFAULT = [(64, 1024, 128), (8, 8192, 1024), (256, 1024, 1024)]


def _grid() -> list:
    params = []
    combos = [(*s, fw, ds) for s in _SETUPS for fw in ("vllm", "sglang") for ds in (True, False)]
    for k, (model, hw, tp, framework, datasheet) in enumerate(combos):
        for point in _POINTS:
            fast = point == _DEFAULT[k % len(_DEFAULT)] or (model == "llama-3.1-8b" and point == _DEFAULT[0])
            params.append(pytest.param(model, hw, tp, framework, datasheet, *point,
                                       marks=() if fast else pytest.mark.slow))
    return params


@pytest.mark.parametrize("model, hw, tp, framework, datasheet, c, isl, osl", _grid())
def test_lockstep_means_match_simulator(model, hw, tp, framework, datasheet, c, isl, osl):
    _assert_lockstep_matches_simulator(_scenario(model, hw, tp, framework, datasheet), c, isl, osl)


def test_the_grid_splits_cohorts_and_caps_the_batch_by_kv():
    # c x input beyond the budget: Llama-3.1-8B at c = 64 of 1024 tokens is 65,536 prompt tokens
    # for a budget of 8,192: groups of 7 (floor((8192 - 64) / 1023)) in 10 prefill steps; and
    # Qwen3-32B bf16 on 2 H100 holds about 334k tokens of KV cache: 36 requests of 8192 + 1024
    scenario = _scenario("qwen3-32b", "h100-sxm", 2, "vllm", False)
    _, cost, cap = scenario
    assert 30 <= cap // 9216 < 64
    a = steady_state(cost, prompt=8192, output=1024, prefill=8192, kv_capacity_tokens=cap,
                     max_num_batched_tokens=8192, max_num_seqs=1024, block_tokens=16, concurrency=64, lockstep=True,
                     kv_reserve=True)
    assert a["max_running"][0] == cap // 9216 and a["mean_batch"][0] == cap // 9216
    errors = _assert_lockstep_matches_simulator(scenario, 64, 8192, 1024)
    assert abs(errors["ttft_s"]) < 0.05  # the queue's wait (Little's law) dominates TTFT here


def test_serve_uses_lockstep_for_identical_lengths_only():
    kw = {"input_len": 1024, "output_len": 128, "concurrency": [8, 64], "datasheet": True}
    fixed = serve("llama-3.1-8b", "h100-sxm", **kw)
    simulated = serve("llama-3.1-8b", "h100-sxm", simulate_events=True, **kw)
    # the whole benchmark of 10 c requests (its first wave included): TTFT within 15% of the
    # simulator's, TPOT within 5% (before: 23.5 / 93.7 ms against 160.9 / 220.4 ms)
    for a, s in zip(fixed.rows, simulated.rows):
        assert a["ttft_ms"] == pytest.approx(s["ttft_ms"], rel=0.15)
        assert a["tpot_ms"] == pytest.approx(s["tpot_ms"], rel=0.05)
    # a range of lengths keeps the staggered model
    ranged = serve("llama-3.1-8b", "h100-sxm", **kw | {"input_len": (820, 1228)})
    _, step_cost, cap = _scenario("llama-3.1-8b", "h100-sxm", 1, "vllm", True)
    staggered = steady_state(step_cost, prompt=1024, output=128, prefill=1024, kv_capacity_tokens=cap,
                             max_num_batched_tokens=8192, max_num_seqs=1024, block_tokens=16,
                             concurrency=np.array([8.0, 64.0]), burst_requests=100.0 * np.array([1, 6.4]))
    assert [r["ttft_ms"] for r in ranged.rows] == pytest.approx(list(staggered["ttft_s"] * 1e3), rel=1e-9)


def test_prefill_bound_configurations_fall_back_to_the_staggered_model():
    # 256 prompts of 8192 tokens with outputs of 2: the prefill of a period (256 steps) cannot end
    # before its first request finishes: no lock-step, the staggered model's numbers
    _, cost, cap = _scenario("llama-3.1-8b", "h100-sxm", 1, "vllm", True)
    kw = dict(prompt=8192, output=2, prefill=8192, kv_capacity_tokens=cap, max_num_batched_tokens=8192,
              max_num_seqs=1024, block_tokens=16, concurrency=np.array([1.0, 256.0]))
    # (without preemption: 256 whole requests exceed the KV cache, where on demand preempts and the
    # lock-step model hands every such row to the staggered one, prefill-bound or not)
    both = steady_state(cost, lockstep=True, preemption=False, **kw)
    staggered = steady_state(cost, preemption=False, **kw)
    assert both["ttft_s"][1] == staggered["ttft_s"][1]
    assert both["ttft_s"][0] != staggered["ttft_s"][0]
    assert all(np.isfinite(v).all() for v in both.values())


def test_lockstep_is_vectorized_and_finite():
    setup, cost, cap = _scenario("llama-3.1-70b", "h200-sxm", 8, "vllm", False)
    rng = np.random.default_rng(0)
    n = 5000
    o = setup.overheads
    a = steady_state(cost, prompt=rng.integers(1, 9000, n), output=rng.integers(1, 4000, n),
                     prefill=rng.integers(1, 9000, n), kv_capacity_tokens=cap, max_num_batched_tokens=8192,
                     max_num_seqs=1024, block_tokens=16, concurrency=rng.integers(1, 2000, n).astype(float),
                     request_overhead_s=o.request_overhead_s, step_overhead_s=o.step_overhead_s,
                     prefill_first=rng.integers(0, 2, n), burst_requests=1000.0, lockstep=True)
    assert all(np.shape(v) == (n,) for v in a.values())
    assert all(np.isfinite(v).all() for v in a.values())
    assert (a["ttft_s"] > 0).all() and (a["tpot_s"] >= 0).all() and (a["mean_batch"] > 0).all()


@pytest.mark.parametrize("value", ["random", 1, None])
def test_serving_block_lengths_must_be_identical_or_varied(value):
    with pytest.raises(SpecError, match=r"f\.yaml: serving\.lengths: .* choose one of identical, varied"):
        parse_serving_block({"concurrency": 8, "lengths": value}, "f.yaml")
    assert parse_serving_block({"concurrency": 8}, "f.yaml").lengths == "identical"
    assert parse_serving_block({"concurrency": 8, "lengths": "varied"}, "f.yaml").lengths == "varied"


def test_staggered_tpot_of_a_fractional_mean_output_is_not_rounded_up():
    # outputs drawn from 15-18 (mean 16.5): a request decodes o - 1 steps, 15.5 on average; the
    # ceiling (16) made TPOT 16 / 15.5 - 1 = 3.2% high. At c = 1 the decode step is affine in the
    # KV length, so TPOT at 16.5 is the mean of those at 16 and 17.
    _, cost, cap = _scenario("llama-3.1-8b", "h100-sxm", 1, "vllm", True)
    tpot = steady_state(cost, prompt=1024, output=np.array([16.0, 16.5, 17.0]), prefill=1024, kv_capacity_tokens=cap,
                        max_num_batched_tokens=8192, max_num_seqs=1024, block_tokens=16, concurrency=1)["tpot_s"]
    assert tpot[1] == pytest.approx((tpot[0] + tpot[2]) / 2, rel=1e-3)


@pytest.mark.parametrize("lengths, serve_lengths", [("identical", (1024, 256)), ("varied", ((922, 1126), (230, 282)))])
def test_a_sweeps_serving_block_agrees_with_serve_for_both_kinds_of_lengths(lengths, serve_lengths):
    # identical lengths: lock-step in both; varied: the staggered model at the same means, as
    # `roofline serve --input 922-1126 --output 230-282` (what `roofline report` prints for the row)
    from roofline.report._details import PointSettings, serve_command
    from roofline.sweep import evaluate_rows
    from roofline.sweepfile import sweep_from_dict

    assert length_range(1024, lengths) == (serve_lengths[0] if lengths == "varied" else (1024, 1024))
    data = {"name": "t", "hardware": "h100-sxm", "model": "llama-3.1-8b",
            "workload": {"input_len": 1024, "output_len": 256}, "parallelism": {"tp": 1},
            "serving": {"concurrency": 48, "lengths": lengths}}
    spec = sweep_from_dict(data, "t.yaml")
    rows = evaluate_rows(spec, next(iter(spec.structural_combinations())), spec.hardware_grid())
    ref = serve("llama-3.1-8b", "h100-sxm", input_len=serve_lengths[0], output_len=serve_lengths[1],
                concurrency=48).rows[0]
    for column, key in (("serving_ttft_ms", "ttft_ms"), ("serving_tpot_ms", "tpot_ms"),
                        ("serving_mean_batch", "mean_batch"), ("goodput_tok_s", "goodput_tok_s")):
        assert float(rows[column][0]) == pytest.approx(ref[key], rel=1e-9), column
    row = {k: v[0] for k, v in rows.items()} | {"model": "llama-3.1-8b", "hardware": "h100-sxm", "tp": 1,
                                                  "input_len": 1024, "output_len": 256}
    command = serve_command(row, PointSettings(serving=spec.serving))
    wanted = "--input 922-1126 --output 230-282" if lengths == "varied" else "--input 1024 --output 256"
    assert command is not None and wanted in command
