"""A request that becomes schedulable while the engine runs other requests' steps waits for the
running step to end: the event simulator, the analytic model and the fit's features all count it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import roofline
from roofline.serving import (
    Lengths,
    ServingSetup,
    ServingWorkload,
    engine_defaults,
    make_requests,
    simulate,
    steady_state,
)
from roofline.serving.analytic import _running, _step_residual_s
from roofline.validation._serving_fit import _design


@pytest.fixture(scope="module")
def setup8b():
    setup = ServingSetup(roofline.load_model("llama-3.1-8b"), roofline.load_hardware("h100-sxm"),
                         roofline.Workload.with_dtype("fp8"), roofline.Parallelism(tp=1), engine_defaults("vllm"))
    return setup, setup.step_cost(), setup.kv_capacity_tokens()


def _mean_ttft_s(setup8b, c: int, request_overhead_s: float) -> tuple[float, float]:
    setup, cost, cap = setup8b
    w = ServingWorkload(Lengths(900, 1100), Lengths(230, 280), concurrency=c, num_requests=20 * c)
    tr = simulate(make_requests(w), cost.scalar(), setup.settings, cap, concurrency=c,
                  request_overhead_s=request_overhead_s)
    return float(np.mean(tr.first_token_s - tr.arrival_s)), tr.stepping_s / tr.steps


def test_simulator_request_waits_for_the_running_step(setup8b):
    r = 0.03
    # alone (c = 1) the engine is idle when the request becomes schedulable: r is purely additive
    alone0, _ = _mean_ttft_s(setup8b, 1, 0.0)
    alone, _ = _mean_ttft_s(setup8b, 1, r)
    assert alone - alone0 == pytest.approx(r, abs=1e-12)
    # with 3 others decoding it lands inside a step and waits for its end: more than r, by less
    # than one mean step (measured 2026-11-29: 1.3 ms, the mean step 4.0 ms)
    busy0, _ = _mean_ttft_s(setup8b, 4, 0.0)
    busy, step = _mean_ttft_s(setup8b, 4, r)
    assert 0.0 < busy - busy0 - r < step


def test_analytic_closed_loop_adds_the_running_steps_rest_when_others_run(setup8b):
    setup, cost, cap = setup8b
    s = setup.settings
    kw = dict(prompt=1000.0, output=255.0, prefill=1000.0, kv_capacity_tokens=cap,
              max_num_batched_tokens=s.max_num_batched_tokens, max_num_seqs=s.max_num_seqs,
              block_tokens=s.block_tokens, concurrency=np.array([1.0, 16.0]))
    base = steady_state(cost, **kw)
    late = steady_state(cost, request_overhead_s=0.03, **kw)
    # c = 1: + r; c = 16: + r + the rest of the step running r after a step end (the renewal residual of
    # the steps, _step_residual_s; the steps themselves do not change)
    one = np.ones(1)
    run = _running(cost, np.zeros(1, dtype=int), 16.0 * one, 1000.0 * one, 255.0 * one, 1000.0 * one,
                   float(s.max_num_batched_tokens) * one, one, one, 0.0 * one)
    rest = _step_residual_s(run["decode_only_step_s"], run["prefill_step_s"], run["prefill_share"], 0.03 * one)[0]
    assert 0.0 < rest < run["prefill_step_s"][0]
    assert late["ttft_s"][0] - base["ttft_s"][0] == pytest.approx(0.03, rel=1e-9)
    assert late["ttft_s"][1] - base["ttft_s"][1] == pytest.approx(0.03 + rest, rel=1e-9)
    assert late["tpot_s"] == pytest.approx(base["tpot_s"], rel=1e-12)


def test_fit_design_puts_the_step_wait_in_ttft_only():
    # one dense row: TTFT features 10 ms decode, 40 ms prefill, 5 steps, 50 sequence-steps; the
    # wait for the running step is half a mean step of 4 ms decode, 2 ms prefill, 1 step, 16 seqs
    f = pd.DataFrame([{"ttft_decode": 10.0, "ttft_prefill": 40.0, "ttft_step": 5.0, "ttft_seq": 0.05,
                       "tpot_decode": 8.0, "tpot_prefill": 1.0, "tpot_step": 1.0, "tpot_seq": 0.016,
                       "wait_decode": 2.0, "wait_prefill": 1.0, "wait_step": 0.5, "wait_seq": 0.008}])
    tpot, ttft = _design(f, np.zeros(1))
    # (k_d, k_p, s_ms, s_seq_us, r_ms, k_p k_moe, s_tp_ms) = (1.1, 0.9, 0.7, 10, 40, 2, 0.1), TP 1:
    # TTFT = 1.1 x 12 + 0.9 x 41 + 0.7 x 5.5 + 10 x 0.058 + 40 = 13.2 + 36.9 + 3.85 + 0.58 + 40 = 94.53 ms
    x = np.array([1.1, 0.9, 0.7, 10.0, 40.0, 2.0, 0.1])
    assert (ttft @ x)[0] == pytest.approx(94.53)
    # TPOT = 1.1 x 8 + 0.9 x 1 + 0.7 x 1 + 10 x 0.016 = 8.8 + 0.9 + 0.7 + 0.16 = 10.56 ms (no wait, no r)
    assert (tpot @ x)[0] == pytest.approx(10.56)


def test_predictions_without_request_overhead_have_no_step_wait():
    from roofline.serving import Overheads
    from roofline.validation._serving_fit import predict_rows

    f = pd.DataFrame([{"ttft_decode": 10.0, "ttft_prefill": 40.0, "ttft_step": 5.0, "ttft_seq": 0.05,
                       "tpot_decode": 8.0, "tpot_prefill": 1.0, "tpot_step": 1.0, "tpot_seq": 0.016,
                       "wait_decode": 2.0, "wait_prefill": 1.0, "wait_step": 0.5, "wait_seq": 0.008}])
    # datasheet model (unit scales, no overheads): the request arrives at a step boundary, as in the
    # simulator: TTFT = 10 + 40 = 50 ms
    ttft, tpot = predict_rows(f, Overheads())
    assert ttft[0] == pytest.approx(50.0) and tpot[0] == pytest.approx(9.0)
    # 20 ms of request overhead: + 20 + the half step's 2 + 1 ms (no step or sequence overhead)
    ttft, _ = predict_rows(f, Overheads(request_overhead_ms=20.0))
    assert ttft[0] == pytest.approx(73.0)
