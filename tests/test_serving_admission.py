"""KV admission per framework: blocks reserved at admission (TensorRT-LLM) or allocated on demand
with recompute preemption (vLLM, SGLang), in the event simulator and the analytic model."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roofline.exceptions import SpecError
from roofline.serving import engine_defaults, simulate, steady_state
from roofline.serving.settings import KV_ADMISSION, EngineSettings, SpeculativeDecoding
from roofline.serving.step_cost import ScalarStepCost
from roofline.serving.workload import Requests


def _linear_cost() -> ScalarStepCost:
    """A step costs 1 ms + 1 us per token (no attention, no head), for hand calculations."""
    return ScalarStepCost([1.0, 10_000.0], [1e-3 + 1e-6, 1e-3 + 1e-2], [0.0, 0.0], 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def _requests(prompt: list[int], output: list[int]) -> Requests:
    n = len(prompt)
    return Requests(np.full(n, np.nan), np.array(prompt), np.array(output), np.array(prompt))


def test_each_framework_has_its_sourced_policy():
    assert engine_defaults("trtllm").kv_admission == "reserve"
    assert engine_defaults("vllm").kv_admission == "on_demand"
    assert engine_defaults("sglang").kv_admission == "sglang_ratio"
    for fw in ("vllm", "sglang", "trtllm"):
        assert dict(engine_defaults(fw).sources)["kv_admission"].startswith("source: ")
    assert EngineSettings().kv_admission == "reserve"  # a hand-built engine keeps the former behaviour
    assert engine_defaults("vllm").with_overrides(kv_admission="reserve").kv_admission == "reserve"


def test_an_unknown_policy_is_one_line_listing_the_allowed():
    with pytest.raises(SpecError) as e:
        EngineSettings(kv_admission="lazy")
    assert str(e.value) == "engine: kv_admission: 'lazy' is not allowed; choose one of reserve, on_demand, sglang_ratio"
    assert set(KV_ADMISSION) == {"reserve", "on_demand", "sglang_ratio"}


def test_decode_growth_preempts_the_newest_request_by_hand():
    # KV cache of 5 blocks of 16 tokens; closed loop c = 2 of two requests, prompts 20, outputs 30;
    # a step costs 1 ms + 1 us per token.
    # reserve: each needs ceil(50 / 16) = 4 blocks, so one runs at a time: r0 prefills (1.020 ms)
    # and decodes 29 steps (1.001 ms each): ends at 30.049 ms; r1 then gets its first token at
    # 31.069 ms and ends at 60.098 ms.
    # on demand: both prompts fit (2 blocks each, 4 of 5): one prefill step of 40 tokens (1.040 ms),
    # then both decode while 2 blocks (32 tokens) hold them: decode step j writes token 21 + j, so
    # 12 steps (2 tokens, 1.002 ms each): 13.064 ms, 13 tokens delivered each. Step 13 needs a third
    # block for both (6 > 5): r1, the newest, is preempted (its 2 blocks freed; 3 free, it needs
    # ceil((20 + 13) / 16) = 3 for its recompute beside r0's next block: it waits). r0 decodes its
    # last 17 tokens alone (1.001 ms each): ends at 30.081 ms. r1 prefills 20 + 13 tokens
    # (1.033 ms: 31.114 ms, its 14th token) and decodes 16 more: ends at 47.130 ms; its first token
    # stays at 1.040 ms.
    req = _requests([20, 20], [30, 30])
    base = engine_defaults("vllm").with_overrides(max_num_seqs=2)
    reserve = simulate(req, _linear_cost(), base.with_overrides(kv_admission="reserve"), 80, concurrency=2)
    assert reserve.first_token_s * 1e3 == pytest.approx([1.020, 31.069])
    assert reserve.finish_s * 1e3 == pytest.approx([30.049, 60.098])
    assert reserve.preemptions == 0
    tr = simulate(req, _linear_cost(), base, 80, concurrency=2)
    assert tr.first_token_s * 1e3 == pytest.approx([1.040, 1.040])
    assert tr.finish_s * 1e3 == pytest.approx([30.081, 47.130])
    assert tr.preemptions == 1
    assert tr.steps == 1 + 12 + 17 + 1 + 16


def test_a_prompt_waits_for_its_blocks_beside_the_running_steps():
    # 4 blocks of 16; prompts of 40 tokens (3 blocks): the second is admitted only when the first
    # finishes (3 + 3 > 4). The first: prefill 1.040 ms, 2 decode steps of 1.001 ms: ends at
    # 3.042 ms; the second: first token 4.082 ms, end 6.084 ms
    req = _requests([40, 40], [3, 3])
    tr = simulate(req, _linear_cost(), engine_defaults("vllm"), 64, concurrency=2)
    assert tr.first_token_s * 1e3 == pytest.approx([1.040, 4.082])
    assert tr.finish_s * 1e3 == pytest.approx([3.042, 6.084])
    assert tr.preemptions == 0


_lengths = st.lists(st.tuples(st.integers(1, 300), st.integers(1, 300)), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lengths=_lengths, c=st.integers(1, 6), framework=st.sampled_from(["vllm", "sglang"]),
       block=st.sampled_from([1, 16]))
def test_with_room_for_every_request_both_policies_are_identical(lengths, c, framework, block):
    # KV cache for every request's prompt + output at once: on-demand allocation never runs out,
    # so its schedule is the reservation's, to the last bit
    prompt, output = map(list, zip(*lengths))
    req = _requests(prompt, output)
    s = engine_defaults(framework).with_overrides(block_tokens=block, max_num_batched_tokens=256)
    cap = float(block * sum(math.ceil((p + o) / block) for p, o in lengths))
    a = simulate(req, _linear_cost(), s.with_overrides(kv_admission="reserve"), cap, concurrency=c)
    b = simulate(req, _linear_cost(), s.with_overrides(kv_admission="on_demand"), cap, concurrency=c)
    for name in ("arrival_s", "first_token_s", "finish_s", "itl_s", "itl_weight", "clock_first", "clock_finish"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert (a.steps, a.mean_running, a.mean_kv_tokens, b.preemptions) == (b.steps, b.mean_running,
                                                                         b.mean_kv_tokens, 0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lengths=_lengths, c=st.integers(1, 8), framework=st.sampled_from(["vllm", "sglang"]),
       policy=st.sampled_from(["reserve", "on_demand", "sglang_ratio"]), spare_blocks=st.integers(0, 20), draft=st.sampled_from([0, 3]))
def test_little_law_and_reserve_never_preempts(lengths, c, framework, policy, spare_blocks, draft):
    # a KV cache barely above the longest request: the closed loop's requests are in the system
    # (running or queued, preempted ones too) from arrival to finish, so the time-average count
    # x the busy time is the sum of their e2e latencies; reservation never preempts (with
    # speculative decoding too, whose verify tokens may run past a request's last block)
    prompt, output = map(list, zip(*lengths))
    req = _requests(prompt, output)
    s = engine_defaults(framework).with_overrides(max_num_batched_tokens=256, kv_admission=policy,
                                                  speculative=SpeculativeDecoding(draft, 0.6))
    need = max(math.ceil((p + o) / s.block_tokens) for p, o in lengths)
    tr = simulate(req, _linear_cost(), s, float((need + spare_blocks) * s.block_tokens), concurrency=c)
    assert np.isfinite(tr.finish_s).all() and (tr.first_token_s <= tr.finish_s).all()
    in_system = (tr.mean_running + tr.mean_waiting) * tr.busy_s
    assert in_system == pytest.approx(float((tr.finish_s - tr.arrival_s).sum()), rel=1e-9)
    if policy == "reserve":
        assert tr.preemptions == 0


def test_clocks_give_any_scales_with_preemptions():
    # the schedule (admissions, preemptions) depends on token and block counts only, so one run's
    # engine clocks still give the times of any fitted scales (the serving fit relies on it)
    rng = np.random.default_rng(3)
    req = _requests(list(rng.integers(50, 400, 60)), list(rng.integers(50, 400, 60)))
    s = engine_defaults("vllm").with_overrides(max_num_batched_tokens=512)
    unit = simulate(req, _linear_cost(), s, 1600, concurrency=12)
    assert unit.preemptions > 0
    x = np.array([1.1, 1.7, 2e-3, 30e-6])
    scaled = simulate(req, _linear_cost(), s, 1600, concurrency=12, decode_scale=1.1, prefill_scale=1.7,
                      step_overhead_s=2e-3, seq_overhead_s=30e-6)
    assert scaled.preemptions == unit.preemptions
    assert ((unit.clock_first - unit.clock_arrival) @ x) == pytest.approx(scaled.first_token_s - scaled.arrival_s)
    assert ((unit.clock_finish - unit.clock_arrival) @ x) == pytest.approx(scaled.finish_s - scaled.arrival_s)


def test_analytic_sequences_per_kv_cache_follow_the_policy():
    # 1,000 + 1,000 tokens, blocks of 16, 150,400 tokens of KV cache: reserving, a sequence holds
    # 2,000 tokens (75 fit); on demand its prompt and half its output, ceil(1,500 / 16) x 16 =
    # 1,504 (100 fit); the lock-step loop counts whole requests (75), and on demand, where 512 whole
    # requests exceed the cache (the engine preempts, the cohorts stagger), hands over to the
    # staggered model (100); at c = 75 every whole request fits: lock-step either way
    import roofline
    from roofline.serving import ServingSetup

    setup = ServingSetup(roofline.load_model("llama-3.1-8b"), roofline.load_hardware("h100-sxm"),
                         roofline.Workload.with_dtype("bf16"), roofline.Parallelism(tp=1), engine_defaults("vllm"))
    kw = dict(prompt=1000, output=1000, prefill=1000, kv_capacity_tokens=150_400, max_num_batched_tokens=8192,
              max_num_seqs=1024, block_tokens=16, concurrency=np.array([512.0]))
    cost = setup.step_cost()
    assert steady_state(cost, kv_reserve=True, **kw)["max_running"][0] == 75
    assert steady_state(cost, kv_reserve=False, **kw)["max_running"][0] == 100
    assert steady_state(cost, kv_reserve=np.array([True, False]), **kw)["max_running"].tolist() == [75, 100]
    assert steady_state(cost, kv_reserve=True, lockstep=True, **kw)["max_running"][0] == 75
    assert steady_state(cost, kv_reserve=False, lockstep=True, **kw)["max_running"][0] == 100
    fits = kw | {"concurrency": np.array([75.0])}
    on_demand, reserve = (steady_state(cost, kv_reserve=r, lockstep=True, **fits) for r in (False, True))
    assert all(np.array_equal(on_demand[k], reserve[k]) for k in reserve)


@pytest.mark.parametrize("framework, first_sum_s, finish_sum_s, steps", [
    ("trtllm", 238.634361, 255.24093700000003, 6517), ("vllm", 236.818759, 253.426366, 6446),
    ("sglang", 233.67596599999996, 250.39717599999994, 6367)])
def test_reserve_is_the_former_simulator_to_the_bit(framework, first_sum_s, finish_sum_s, steps):
    # 80 requests of 50-400 + 50-400 tokens at c = 12 in a KV cache of 1,600 tokens (KV-limited):
    # the sums of first-token and finish times the simulator gave before on-demand admission existed
    # (main at 566f4d6), exactly
    rng = np.random.default_rng(11)
    p, o = rng.integers(50, 400, 80), rng.integers(50, 400, 80)
    req = Requests(np.full(80, np.nan), p, o, p)
    s = engine_defaults(framework).with_overrides(max_num_batched_tokens=512, kv_admission="reserve")
    tr = simulate(req, _linear_cost(), s, 1600, concurrency=12)
    assert (float(tr.first_token_s.sum()), float(tr.finish_s.sum()), tr.steps) == (first_sum_s, finish_sum_s, steps)


@pytest.mark.parametrize("policy", ["reserve", "on_demand"])
def test_analytic_matches_simulator_where_the_kv_cache_is_the_limit(policy):
    # Llama-3.1-8B fp8 on an H100, c = 512 of 2048 / 1024 (+-10%): about 1.04M tokens of KV cache
    # hold 337 whole requests, 404 at prompt + half the output: the rest queue. Reserving, the
    # analytic model is the simulator's steady state (TTFT 16.9 s, TPOT within 1%). On demand the
    # simulator preempts (3,310 times over 10,240 requests) and recomputes: the analytic model's
    # preemption law (c = 1.26 x the knee) gives the running batch (404.4 against 400.8), TPOT
    # (42.4 against 42.8 ms: without the law 12% low), e2e within 3%; the TTFT, the queue's wait less
    # the preempted requests' share of it, 23% high (10.8 against 8.8 s): +-10% lengths keep more
    # preempted requests at the queue's head than the +-20% the law reads
    import roofline
    from roofline.serving import Lengths, ServingSetup, ServingWorkload, make_requests

    setup = ServingSetup(roofline.load_model("llama-3.1-8b"), roofline.load_hardware("h100-sxm"),
                         roofline.Workload.with_dtype("fp8"), roofline.Parallelism(tp=1),
                         engine_defaults("vllm").with_overrides(kv_admission=policy))
    cost, cap, s = setup.step_cost(), setup.kv_capacity_tokens(), setup.settings
    c, n = 512, 20 * 512
    w = ServingWorkload(Lengths(1843, 2252), Lengths(921, 1126), concurrency=c, num_requests=n)
    tr = simulate(make_requests(w), cost.scalar(), s, cap, concurrency=c)
    mid = np.argsort(tr.finish_s)[n // 4: 3 * n // 4]
    ttft = np.mean((tr.first_token_s - tr.arrival_s)[mid])
    tpot = np.mean(((tr.finish_s - tr.first_token_s) / (tr.output - 1))[mid])
    a = steady_state(cost, prompt=2048, output=1024, prefill=2048, kv_capacity_tokens=cap,
                     max_num_batched_tokens=s.max_num_batched_tokens, max_num_seqs=s.max_num_seqs,
                     block_tokens=s.block_tokens, concurrency=c, kv_reserve=policy == "reserve")
    assert a["mean_batch"][0] == pytest.approx(tr.mean_running, rel=0.02)
    assert a["mean_batch"][0] == pytest.approx(337 if policy == "reserve" else 404.42, abs=0.01)
    if policy == "reserve":
        assert tr.preemptions == 0
        assert a["tpot_s"][0] == pytest.approx(tpot, rel=0.02)
        assert a["ttft_s"][0] == pytest.approx(ttft, rel=0.05)
    else:
        assert tr.preemptions > 0
        e2e = np.mean((tr.finish_s - tr.arrival_s)[mid])
        assert a["tpot_s"][0] == pytest.approx(tpot, rel=0.03)
        assert a["e2e_s"][0] == pytest.approx(e2e, rel=0.05)
        assert 1.1 < a["ttft_s"][0] / ttft < 1.3


@pytest.mark.parametrize("args, needle", [
    (["--kv-admission", "lazy"], "Invalid value for '--kv-admission': Value error, 'lazy' is not one of 'reserve', "
                                 "'on_demand'"),
    (["--kv-admission", "ON_DEMAND"], "Invalid value for '--kv-admission'"),
    (["--kv-admission", ""], "Invalid value for '--kv-admission'"),
])
def test_serve_cli_refuses_a_bad_kv_admission(capsys, args, needle):
    from roofline.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(["serve", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--concurrency", "4", *args])
    err = capsys.readouterr().err
    assert e.value.code == 2 and needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_serve_simulate_reports_preemptions_where_the_kv_cache_is_full(capsys):
    # Llama-3.1-70B fp8 with a bf16 KV cache on one B200 (~307k tokens) at c = 64 of 1k + 8k: vLLM's
    # on-demand blocks run out and it preempts; reserving, the requests queue instead
    import json

    from roofline.cli.main import main

    def run(*extra: str) -> dict:
        with pytest.raises(SystemExit) as e:
            main(["serve", "-m", "llama-3.1-70b", "-H", "b200", "--dtype", "fp8", "--kv-dtype", "bf16", "--isl", "1024",
                  "--osl", "8192", "--concurrency", "64", "--num-requests", "128", "--simulate", "--json", *extra])
        assert e.value.code in (0, None)
        return json.loads(capsys.readouterr().out)

    vllm, reserve = run(), run("--kv-admission", "reserve")
    assert vllm["summary"]["engine"]["kv_admission"] == "on_demand"
    assert reserve["summary"]["engine"]["sources"]["kv_admission"] == "user"
    assert vllm["rows"][0]["preemptions"] > 0 and reserve["rows"][0]["preemptions"] == 0
    assert "preemptions" in vllm["definitions"]
    # more sequences run at once on demand: the first tokens come sooner
    assert vllm["rows"][0]["mean_batch"] > 1.3 * reserve["rows"][0]["mean_batch"]
    assert vllm["rows"][0]["ttft_ms"] < 0.5 * reserve["rows"][0]["ttft_ms"]


def test_sweep_serving_block_takes_kv_admission():
    from roofline.serving.columns import parse_serving_block

    block = parse_serving_block({"framework": "trtllm", "kv_admission": "on_demand"}, "s.yaml")
    assert block.settings.kv_admission == "on_demand"
    assert parse_serving_block({"framework": "trtllm"}, "s.yaml").settings.kv_admission == "reserve"
    with pytest.raises(SpecError, match=r"^s.yaml: serving.kv_admission: 'x' is not allowed; choose one of "
                                        r"reserve, on_demand, sglang_ratio$"):
        parse_serving_block({"kv_admission": "x"}, "s.yaml")


def test_serve_help_lists_the_kv_admission_policies(capsys):
    # the option was a free string: --help named no choices and a typo's error named the engine
    # field (engine: kv_admission), not the option the user typed
    from roofline.cli.serve import KVAdmission
    from roofline.serving.settings import KV_ADMISSION
    from tests._run_cli import run_cli

    assert tuple(KVAdmission.__members__) == tuple(KV_ADMISSION)  # the CLI's names are the engine's
    run = run_cli(capsys, "serve", "--help")
    assert run.exit_code == 0 and "--kv-admission <reserve|on_demand|sglang_ratio>" in run.stdout


@pytest.mark.parametrize("extra, text", [
    ((), "KV admission on_demand (vllm's default)"),
    (("--kv-admission", "reserve"), "KV admission reserve (--kv-admission)"),
    (("--framework", "trtllm"), "KV admission reserve (trtllm's default)"),
    (("--simulate", "--num-requests", "100", "--kv-admission", "on_demand", "--framework", "sglang"),
     "KV admission on_demand (--kv-admission)"),
])
def test_serve_table_caption_names_the_kv_admission_that_ran(capsys, extra, text):
    # the two policies give different numbers where the KV cache is the limit; the table's caption
    # said neither which one ran nor whether it was the framework's default
    from tests._run_cli import run_cli

    run = run_cli(capsys, "serve", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--concurrency", "4", "--input", "256",
                  "--output", "32", *extra)
    assert run.exit_code == 0
    assert text in " ".join(run.stdout.split())  # the caption wraps


@pytest.mark.parametrize("value", [["reserve"], {"policy": "reserve"}])
def test_kv_admission_of_a_wrong_type_is_a_spec_error_not_a_traceback(value):
    # a YAML list or mapping (kv_admission: [reserve]) reached `value in KV_ADMISSION`, a dict
    # lookup: TypeError (unhashable) and a traceback from roofline sweep instead of its one-line error
    from roofline.serving.columns import parse_serving_block
    from roofline.serving.settings import EngineSettings

    with pytest.raises(SpecError, match=r"^s.yaml: serving.kv_admission: .* is not allowed; choose one of "
                                        r"reserve, on_demand, sglang_ratio$"):
        parse_serving_block({"kv_admission": value}, "s.yaml")
    with pytest.raises(SpecError, match=r"^engine: kv_admission: .* is not allowed"):
        EngineSettings(kv_admission=value)
    with pytest.raises(SpecError, match=r"^engine: kv_memory_rule: .* is not allowed"):
        EngineSettings(kv_memory_rule=value)


@pytest.mark.parametrize("key, value", [("batch_wait_timeout_iters", 2), ("batch_wait_max_tokens_ratio", 0.5)])
def test_sweep_serving_block_refuses_engine_keys_disaggregated_pools_ignore(key, value):
    # serve refuses --batch-wait-* with --disagg; a sweep's disagg block took them and ran without them
    # (a prefill pool runs no decode steps; kv_admission is the decode pool's, taken since disagg12)
    from roofline.serving.columns import parse_serving_block

    disagg = {"prefill": "tp=1,count=1", "decode": "tp=1,count=1"}
    assert parse_serving_block({"disagg": disagg}, "s.yaml").disagg is not None
    with pytest.raises(SpecError, match=rf"^s.yaml: serving.{key}: not modelled with disaggregated pools"):
        parse_serving_block({"disagg": disagg, key: value}, "s.yaml")


def test_serve_report_lists_the_simulators_preemptions(tmp_path, capsys, monkeypatch):
    # serve --simulate printed the count in its caption and JSON, but --report's table of rows left
    # it out; the analytic rows have no count, and their report no such column
    from tests._run_cli import run_cli

    monkeypatch.chdir(tmp_path)
    args = ("serve", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--isl", "256", "--osl", "32", "--concurrency", "4",
            "--num-requests", "100", "--report", "--force")
    header = '<th title="preemptions (sequences)">preempted</th>'
    assert run_cli(capsys, *args, "--simulate").exit_code == 0
    page = (tmp_path / "report.html").read_text()
    assert header in page
    assert run_cli(capsys, *args).exit_code == 0
    assert header not in (tmp_path / "report.html").read_text()


@pytest.mark.parametrize("key", ["kv_admission", "concurrency", "max_num_seqs"])
def test_a_serving_key_under_sweep_says_where_it_belongs(key):
    # sweep: {kv_admission: [reserve, on_demand]} answered "unknown parameter" and the list of every
    # hardware parameter, none of them near it
    from roofline.sweepfile import sweep_from_dict

    data = {"name": "t", "hardware": "h100-sxm", "model": "llama-3.1-8b", "workload": {"input_len": 64},
            "sweep": {key: ["reserve", "on_demand"] if key == "kv_admission" else [1, 2]},
            "serving": {"concurrency": 4}}
    with pytest.raises(SpecError, match=rf"^t.yaml: sweep.{key}: not sweepable: a key of the serving: block"):
        sweep_from_dict(data, "t.yaml")
