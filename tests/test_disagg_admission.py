"""The disaggregated decode pool admits by the framework's kv_admission (reserve, vLLM's on-demand
with local recompute, SGLang's pre-allocation with retraction to host memory): pinned reserve
outputs, equality where whole requests fit, hand-worked schedules and formulas, and the analytic
decode pool against the event simulator at KV-limited points."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

import roofline
from roofline.exceptions import InfeasibleConfigError
from roofline.serving import Lengths, ServingWorkload, engine_defaults, make_requests
from roofline.serving.analytic import _kv_preemption
from roofline.serving.columns import parse_serving_block
from roofline.serving.disagg import (
    PoolSpec,
    analytic_disagg,
    disagg_setup,
    pool_engines,
    serve_disagg,
)
from roofline.serving.disagg_analytic import (
    decode_admits_alone,
    decode_running_limit,
    decode_step_s,
    on_demand_open_loop_rate,
)
from roofline.serving.disagg_simulator import simulate_disagg

H100 = roofline.load_hardware("h100-sxm")


def _setup(framework, kv_admission=None, model="llama-3.1-8b", p="tp=1", d="tp=1", dtype="bf16",
           longest=(2200, 4400), c=None, datasheet=False):
    s = engine_defaults(framework).with_overrides(kv_admission=kv_admission).for_device(H100.memory.hbm_capacity_bytes)
    setup = disagg_setup(roofline.load_model(model), H100, H100, PoolSpec.parse(p, "p"), PoolSpec.parse(d, "d"),
                         roofline.Workload.with_dtype(dtype), s, prompt_tokens=longest[0], output_tokens=longest[1],
                         concurrency=c, datasheet=datasheet)
    return setup, setup.costs()


# ---- reserve is what it was --------------------------------------------------------------------

_PIN_CASES = [
    dict(model="llama-3.1-8b", prefill_hardware="h100-sxm", prefill="tp=1", decode="tp=1", input_len=(1800, 2200),
         output_len=(3600, 4400), concurrency=[16, 96, 160], num_requests=400, framework="vllm"),
    dict(model="llama-3.1-70b", prefill_hardware="h200-sxm", prefill="tp=2,count=2", decode="tp=4", input_len=8192,
         output_len=1024, concurrency=[16, 64], framework="sglang", num_requests=300),
    dict(model="llama-3.1-70b", prefill_hardware="h100-sxm", prefill="tp=2", decode="tp=2", dtype="fp8",
         input_len=(900, 1100), output_len=(1800, 2200), rate_rps=[1.0, 4.0], framework="trtllm", num_requests=300),
]
# (case, simulated, row): TPOT, TTFT, throughput, KV utilisation of main 93cd3e7, where every framework's
# decode pool reserved prompt + output (datasheet overheads, so that a refit leaves them alone)
_PINS = {
    (0, False, 2): (44.04525083804097, 43.39560881220448, 3632.6411346236964, 0.6585103802030985),
    (1, False, 1): (21.34591681290623, 7551.210835166316, 2230.019506935851, 0.33529462233003166),
    (2, False, 0): (18.685907212307214, 61.68842339926416, 2000.0, 0.13859130497700403),
    (0, True, 1): (25.369469048102868, 529.6383897503797, 3463.688622919147, 0.6301111541693387),
    (0, True, 2): (38.7061774440339, 1376.2492574942776, 3463.7370747394793, 0.6300960994650946),
    (1, True, 1): (21.326207414064317, 7528.01744347933, 2083.214756464952, 0.31278110446006335),
    (2, True, 1): (27.314126054354197, 70.30357681630238, 4411.320988949177, 0.42787426580596905),
}


@pytest.mark.parametrize("case", range(len(_PIN_CASES)))
@pytest.mark.parametrize("simulated", [False, True])
def test_reserve_is_bit_identical_to_the_decode_pool_before_per_framework_admission(case, simulated):
    rows = serve_disagg(**_PIN_CASES[case], kv_admission="reserve", simulate_events=simulated, datasheet=True).rows
    for (c, sim, i), pinned in _PINS.items():
        if (c, sim) == (case, simulated):
            r = rows[i]
            assert (r["tpot_ms"], r["ttft_ms"], r["throughput_tok_s"], r["kv_utilization"]) == pinned


# ---- where whole requests fit, the policy changes nothing ---------------------------------------

@pytest.mark.parametrize("simulated", [False, True])
@pytest.mark.parametrize("framework", ["vllm", "sglang"])
def test_every_policy_gives_reserves_answer_where_whole_requests_fit(simulated, framework):
    # 48 clients of at most 2.2k + 4.4k tokens on one H100 decode instance of Llama-3.1-8B (461,648 tokens
    # with vLLM's memory rule, 425,348 with SGLang's): 317k, or 341k with SGLang's 512 reserved per request
    kw = dict(model="llama-3.1-8b", prefill_hardware="h100-sxm", prefill="tp=1", decode="tp=1",
              input_len=(1800, 2200), output_len=(3600, 4400), concurrency=[8, 48], num_requests=200,
              framework=framework, simulate_events=simulated)
    assert serve_disagg(**kw).rows == serve_disagg(**kw, kv_admission="reserve").rows


# ---- the schedules, by hand ---------------------------------------------------------------------

def _two_requests(framework, kv_admission=None, capacity=1536):
    """Two requests of 512 + 512 tokens (closed loop of 2, infinite link, datasheet) on a decode
    instance holding ``capacity`` tokens."""
    setup, costs = _setup(framework, kv_admission, longest=(512, 512), datasheet=True)
    prefill_pool, decode_pool = pool_engines(setup, costs)
    decode_pool = replace(decode_pool, kv_capacity_tokens=float(capacity))
    reqs = make_requests(ServingWorkload(Lengths(512), Lengths(512), concurrency=2, num_requests=2))
    return simulate_disagg(reqs, prefill_pool, decode_pool, np.zeros(2), concurrency=2)


def test_vllm_decode_worker_preempts_the_newest_and_recomputes_it_locally():
    # 96 blocks of 16: both prompts land together (32 blocks each; the second fits beside the first's
    # 33 of its next step); they grow a token a step until 2 ceil((kv + 1) / 16) > 96, at kv = 768:
    # 256 decode steps. The newest is preempted with 511 - 256 = 255 tokens left; readmitted when the
    # first has finished (its 769 tokens need 49 blocks; the first holds 64 of 96 at its end), it
    # prefills 512 + 257 = 769 tokens on the decode worker, whose step samples a token, then decodes 254
    tr = _two_requests("vllm")
    assert tr.preemptions == 1
    # decode-step deliveries: 511 of the first, 256 + 254 of the second (the recompute's token is not one)
    assert tr.itl_weight.sum() == 511 + 256 + 254
    assert tr.finish_s[1] > tr.finish_s[0]
    # reserve: 64 blocks each, one at a time; all 511 + 511 tokens of both in decode steps, no preemption
    res = _two_requests("vllm", "reserve")
    assert res.preemptions == 0 and res.itl_weight.sum() == 1022


def test_sglang_decode_server_keeps_the_reserve_of_the_running_request():
    # 1,536 tokens: the first is pre-allocated (512 + 512 reserved <= 1,536); the second needs 512 + 512 but
    # the room is 1,024 free less max(512 reserved for the running one, 512 + 512 its whole request less
    # the running tokens retractable, 0 at the start of the pass) = 0: it waits for the first to finish,
    # so the schedule is reserve's (prompt + output = 1,024 each, one at a time), to the bit
    tr = _two_requests("sglang")
    res = _two_requests("sglang", "reserve")
    assert tr.preemptions == 0
    np.testing.assert_array_equal(tr.finish_s, res.finish_s)
    np.testing.assert_array_equal(tr.first_token_s, res.first_token_s)


def test_sglang_ratio_under_another_frameworks_blocks_counts_free_tokens():
    # vLLM's blocks of 16 under SGLang's policy: the room is the free blocks' tokens (1,536), so the schedule is
    # the sglang test's above, reserve's to the bit; it took the 96 free blocks for 96 tokens, never admitted
    # 512 + 512 and left both requests unfinished (a RuntimeError)
    tr = _two_requests("vllm", "sglang_ratio")
    res = _two_requests("vllm", "reserve")
    assert tr.preemptions == 0
    np.testing.assert_array_equal(tr.finish_s, res.finish_s)


def _short_outputs(capacity, framework="sglang"):
    """Two requests of 512 + 100 tokens on a decode instance of ``capacity`` tokens (as _two_requests)."""
    setup, costs = _setup(framework, longest=(512, 100), datasheet=True)
    prefill_pool, decode_pool = pool_engines(setup, costs)
    decode_pool = replace(decode_pool, kv_capacity_tokens=float(capacity))
    reqs = make_requests(ServingWorkload(Lengths(512), Lengths(100), concurrency=2, num_requests=2))
    return simulate_disagg(reqs, prefill_pool, decode_pool, np.zeros(2), concurrency=2)


def test_a_prompt_sglangs_decode_server_never_admits_is_refused():
    # 512 + 100 tokens fit 1,000, but SGLang pre-allocates a prompt only with its 512 reserved decode tokens
    # beside it (512 + 512 > 1,000): it waits forever, and the simulator ended in "requests left unfinished"
    assert decode_admits_alone("sglang_ratio", np.array([512.0, 488.0]), 1000.0, 1.0).tolist() == [False, True]
    assert decode_admits_alone("on_demand", 512.0, 1000.0, 16.0) and decode_admits_alone("reserve", 512.0, 1000.0, 1.0)
    with pytest.raises(InfeasibleConfigError, match=r"decode instance: a prompt of 512 tokens plus the 512 tokens "
                                                    r"SGLang's decode server reserves .* exceed the 1,000 tokens"):
        _short_outputs(1000)
    assert _short_outputs(1024).preemptions == 0  # 512 + 512 <= 1,024: admitted one after the other
    assert _short_outputs(1000, "vllm").preemptions == 0  # vLLM admits the prompt's blocks alone


@pytest.mark.parametrize("simulated", [False, True])
def test_serve_disagg_refuses_a_prompt_sglangs_decode_server_never_admits(simulated):
    kw = dict(prefill="tp=8", decode="tp=2", concurrency=2, num_requests=4, output_len=16, framework="sglang")
    cap = int(serve_disagg("llama-3.1-70b", "h100-sxm", input_len=1024, **kw).summary["kv_capacity_tokens"])
    # (refused before either evaluator runs; a trace's prompts reach the simulator's own check, above)
    with pytest.raises(InfeasibleConfigError, match=r"--input \(decode instance\): a prompt of .* never admits"):
        serve_disagg("llama-3.1-70b", "h100-sxm", input_len=cap - 200, simulate_events=simulated, **kw)
    serve_disagg("llama-3.1-70b", "h100-sxm", input_len=cap - 512 - 16, **kw)  # the reserve beside it fits


@pytest.mark.parametrize("framework", ["vllm", "sglang"])
def test_retracted_sglang_requests_resume_without_recomputing_and_vllm_ones_recompute(framework):
    # 160 clients of 2k + 4k on one H100 decode instance of Llama-3.1-8B: both preempt. Every token after a
    # request's first comes from a decode step with SGLang (its retracted KV comes back from host memory),
    # one per finished recompute fewer with vLLM (the recompute's prefill step samples it; a request
    # preempted again before its recompute ends samples nothing then)
    setup, costs = _setup(framework, longest=(2200, 4400), c=160, datasheet=True)
    reqs = make_requests(ServingWorkload(Lengths(1800, 2200), Lengths(3600, 4400), concurrency=160, num_requests=400))
    tr = simulate_disagg(reqs, *pool_engines(setup, costs), np.zeros(400), concurrency=160)
    assert tr.preemptions > 10
    decoded = float((reqs.output - 1).sum())
    if framework == "sglang":
        assert tr.itl_weight.sum() == decoded
    else:
        assert decoded - tr.preemptions <= tr.itl_weight.sum() < decoded - 0.9 * tr.preemptions


def test_decode_running_limit_by_hand():
    one = np.ones(1)
    cap, p, o = 100_000.0 * one, 1000.0 * one, 2000.0 * one
    block, seqs = 16.0 * one, 1024.0 * one
    # reserve: floor(100,000 / 3,008) = 33 (3,000 tokens in blocks of 16: 188 blocks)
    assert decode_running_limit("reserve", cap, p, o, block, seqs, 40.0 * one)[0][0] == 33
    # SGLang, 40 clients: 40 x (3,000 + 512) > 100,000, so (100,000 - 1,000 - 512) / (1,000 + 1,000 + 512) =
    # 39.2 -> 39; 28 clients: 28 x 3,512 = 98,336 fit: reserve's 33
    assert decode_running_limit("sglang_ratio", cap, p, o, 1.0 * one, seqs, 40.0 * one)[0][0] == 39
    assert decode_running_limit("sglang_ratio", cap, p, o, 1.0 * one, seqs, 28.0 * one)[0][0] == 33
    # vLLM, open loop: the knee, 100,000 / (1,000 + 1,000) = 50
    assert decode_running_limit("on_demand", cap, p, o, block, seqs, None)[0][0] == 50
    # vLLM, closed loop of 200 clients per instance (far above the knee): the aggregated law's running
    # count and share of the growth paid by preempting (room (500 - 1,000) / 2,000 < 0.15: all of it)
    running, share, departs = decode_running_limit("on_demand", cap, p, o, block, seqs, 200.0 * one)
    law = _kv_preemption(200.0 * one, cap, p, o, block, seqs, np.zeros(1, dtype=bool))
    assert departs[0] and running[0] == law[0][0] and share[0] == law[1][0] == 1.0
    assert 45 < running[0] <= 50
    # 30 clients: 30 x 3,008 = 90,240 fit: no preemption, reserve's 33
    running, share, departs = decode_running_limit("on_demand", cap, p, o, block, seqs, 30.0 * one)
    assert not departs[0] and running[0] == 33 and share[0] == 0.0


# ---- the analytic decode pool against the simulator ----------------------------------------------

# (framework, decode pool's load): Llama-3.1-8B bf16 on H100, KV-limited decode instances
_AGREEMENT = [
    ("vllm", "tp=1", "tp=1", 160, 2000, 4000),
    ("sglang", "tp=1", "tp=1", 160, 2000, 4000),
    ("vllm", "tp=1,count=2", "tp=1", 96, 4096, 1024),
    ("sglang", "tp=1,count=2", "tp=1", 96, 4096, 1024),
]


@pytest.mark.parametrize("framework, p, d, c, isl, osl", _AGREEMENT)
def test_analytic_decode_pool_matches_the_simulator_where_the_kv_cache_limits(framework, p, d, c, isl, osl):
    setup, costs = _setup(framework, p=p, d=d, longest=(int(isl * 1.1), int(osl * 1.1)), c=c)
    n = 20 * c
    w = ServingWorkload(Lengths(int(isl * 0.9), int(isl * 1.1)), Lengths(int(osl * 0.9), int(osl * 1.1)),
                        concurrency=c, num_requests=n)
    reqs = make_requests(w)
    tr = simulate_disagg(reqs, *pool_engines(setup, costs), setup.transfer_s(costs[0], reqs.prompt, reqs.prefill),
                         concurrency=c)
    assert tr.preemptions > 0  # KV-limited: the policy is at work
    mid = np.argsort(tr.finish_s)[n // 4: 3 * n // 4]
    tpot = np.mean(((tr.finish_s - tr.first_token_s) / (tr.output - 1))[mid])
    rps = (len(mid) - 1) / (tr.finish_s[mid].max() - tr.finish_s[mid].min())
    a = analytic_disagg(setup, costs, prompt=isl, output=osl, prefill=isl, concurrency=np.array([c]))
    assert a["tpot_s"][0] == pytest.approx(tpot, rel=0.05)
    assert a["throughput_rps"][0] == pytest.approx(rps, rel=0.05)
    # SGLang's running count is set by its pre-allocation: the simulator runs a few more (retractions offload
    # and resume; 0.933 against 0.875 at 2k/4k)
    assert a["kv_utilization"][0] == pytest.approx(tr.mean_kv_tokens / tr.kv_capacity_tokens, rel=0.08)


def test_a_kv_limited_vllm_decode_pool_holds_more_sequences_than_reserve():
    # 256 clients of 2k + 4k on 461,648 tokens: reserve runs floor(461,648 / 6,000) = 76, vLLM up to its knee
    # (115 at 4,000 tokens each), its growth paid by preempting and recomputing
    setup, costs = _setup("vllm", longest=(2200, 4400), c=256)
    a = analytic_disagg(setup, costs, prompt=2000, output=4000, prefill=2000, concurrency=np.array([256]))
    res = _setup("vllm", "reserve", longest=(2200, 4400), c=256)
    r = analytic_disagg(*res, prompt=2000, output=4000, prefill=2000, concurrency=np.array([256]))
    assert a["decode_batch"][0] > 100 and r["decode_batch"][0] == 76
    assert a["kv_utilization"][0] > r["kv_utilization"][0]  # more sequences: p + o / 2 each, not p + o


# ---- the options reach the pools -----------------------------------------------------------------

def test_a_sweeps_disagg_block_takes_kv_admission():
    block = parse_serving_block({"disagg": {"prefill": "tp=1", "decode": "tp=1"}, "kv_admission": "reserve",
                                 "framework": "vllm"}, "s.yaml")
    assert block.disagg is not None and block.settings.kv_admission == "reserve"


def test_serve_disagg_reports_the_decode_pools_admission():
    kw = dict(model="llama-3.1-8b", prefill_hardware="h100-sxm", concurrency=[4], num_requests=40)
    assert serve_disagg(**kw).summary["kv_admission"] == "on_demand"
    assert serve_disagg(**kw, framework="sglang").summary["kv_admission"] == "sglang_ratio"
    assert serve_disagg(**kw, kv_admission="reserve").summary["kv_admission"] == "reserve"


def test_a_vllm_decode_pools_open_loop_saturates_where_the_simulators_queue_starts_to_grow():
    # Llama-3.1-8B fp8 on one H100 per pool at 1k/8k (held out from the reading of the decode pool's weight):
    # the decode instance's knee is 202 sequences of 1,024 + 4,096 tokens, and the analytic open loop
    # sustains 0.6 of the way from the preempting instance's drain rate to the knee's (0.759 rps); Poisson
    # arrivals at 0.95x that rate keep a steady TPOT over 3,000 requests, at 1.1x the last arrivals' TPOT
    # is well above the second quarter's (the queue grows; at 1.05x already: 23 -> 44 ms by quarter)
    setup, costs = _setup("vllm", dtype="fp8", longest=(1126, 9011))
    top = analytic_disagg(setup, costs, prompt=1024, output=8192, prefill=1024, rate_rps=np.array([1e3]))
    assert top["saturated"][0]
    sustained = top["throughput_rps"][0]

    def tpot_by_quarter(rate):
        n = 3000
        reqs = make_requests(ServingWorkload(Lengths(921, 1126), Lengths(7372, 9011), rate_rps=rate, num_requests=n,
                                             seed=1))
        tr = simulate_disagg(reqs, *pool_engines(setup, costs), setup.transfer_s(costs[0], reqs.prompt, reqs.prefill))
        tpot = ((tr.finish_s - tr.first_token_s) / (tr.output - 1))[np.argsort(tr.arrival_s)]
        return [float(np.mean(tpot[i * n // 4:(i + 1) * n // 4])) for i in range(4)]

    below, above = tpot_by_quarter(0.95 * sustained), tpot_by_quarter(1.1 * sustained)
    assert below[3] < 1.1 * below[1]
    assert above[3] > 1.4 * above[1]


def test_on_demand_open_loop_rate_by_hand():
    # Llama-3.1-8B bf16 on H100 at 2k/4k: knee floor(461,648 / 4,000) = 115 < 160, so the aggregated weight is
    # 0 and the decode pool's floor 0.6 holds: sustained = X_far + 0.6 (R_full - X_far), with R_full the knee's
    # rate b / (d step(b)) and X_far the far state's b / (d step(b) + b t_rec)
    setup, costs = _setup("vllm", longest=(2200, 4400), datasheet=True)
    cost, cap, o = costs[1], costs[3], setup.decode.overheads
    one, rows = np.ones(1), np.zeros(1, dtype=int)
    sustained, far_b, far_s = on_demand_open_loop_rate(cost, rows, 2000 * one, 4000 * one, cap * one, 16 * one,
                                                       1024 * one, one, one, o.decode_scale, o.prefill_scale,
                                                       o.step_overhead_s, o.seq_overhead_s, 8192 * one)
    assert math.floor(cap / 4000) == 115 and far_s[0] > 0

    def rate(b, extra):
        step = decode_step_s(cost, rows, b * one, (2000 + 1 + 3998 / 2) * one, one, o.decode_scale, o.step_overhead_s,
                             o.seq_overhead_s)
        return b / (3999 * step + b * extra)

    x_far, full = rate(far_b[0], far_s[0]), rate(115.0, 0.0)
    assert x_far < full
    assert sustained[0] == pytest.approx(x_far + 0.6 * (full - x_far), rel=1e-12)
