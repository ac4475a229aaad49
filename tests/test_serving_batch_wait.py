"""TensorRT-LLM's batch waiting (batch_wait_timeout_iters, batch_wait_max_tokens_ratio): the
settings, the event simulator against a hand-worked schedule, the analytic model against the
simulator, and the validation rows that the InferenceX launch scripts configured."""

from __future__ import annotations

import numpy as np
import pytest

import roofline
from roofline.exceptions import SpecError
from roofline.serving import Lengths, ServingSetup, engine_defaults, simulate, steady_state
from roofline.serving.settings import batch_wait_holds
from roofline.serving.step_cost import ScalarStepCost
from roofline.serving.workload import Requests
from tests.conftest import needs_data


def _linear_cost() -> ScalarStepCost:
    """A step costs 1 ms + 1 us per token (body only), for hand calculations."""
    return ScalarStepCost([1.0, 10_000.0], [1e-3 + 1e-6, 1e-3 + 1e-2], [0.0, 0.0], 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def _waiting(iters: int, ratio: float):
    return engine_defaults("trtllm").with_overrides(batch_wait_timeout_iters=iters, batch_wait_max_tokens_ratio=ratio)


def test_defaults_are_off_and_sourced():
    for framework in ("vllm", "sglang", "trtllm"):
        s = engine_defaults(framework)
        assert (s.batch_wait_timeout_iters, s.batch_wait_max_tokens_ratio, s.batch_waiting) == (0, 0.0, False)
    assert "TorchLlmArgs.batch_wait_timeout_iters" in dict(engine_defaults("trtllm").sources)["batch_wait_timeout_iters"]


@pytest.mark.parametrize("field, value, needle", [
    ("batch_wait_timeout_iters", -1, "batch_wait_timeout_iters: must be an integer >= 0"),
    ("batch_wait_timeout_iters", 2.5, "batch_wait_timeout_iters: must be an integer >= 0"),
    ("batch_wait_max_tokens_ratio", 1.5, "batch_wait_max_tokens_ratio: must be in [0, 1]"),
    ("batch_wait_max_tokens_ratio", -0.1, "batch_wait_max_tokens_ratio: must be in [0, 1]"),
])
def test_bad_settings_are_refused(field, value, needle):
    with pytest.raises(SpecError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        engine_defaults("trtllm").with_overrides(**{field: value})


def test_release_rule_is_the_sources():
    # py_executor.py _waiting_requests: release when count >= timeout or tokens >= ratio x max_num_tokens
    kw = dict(timeout_iters=20, max_tokens_ratio=0.9, max_num_tokens=1000)
    assert batch_wait_holds(0, 899.0, **kw)  # 899 < 900: hold
    assert not batch_wait_holds(0, 900.0, **kw)  # the threshold reached
    assert batch_wait_holds(19, 10.0, **kw) and not batch_wait_holds(20, 10.0, **kw)  # the 20th held step is the last
    # either setting 0 releases at once (0 >= 0, or tokens >= 0): both are needed for a wait
    assert not batch_wait_holds(0, 10.0, timeout_iters=0, max_tokens_ratio=0.9, max_num_tokens=1000)
    assert not batch_wait_holds(0, 10.0, timeout_iters=20, max_tokens_ratio=0.0, max_num_tokens=1000)


@pytest.mark.parametrize("iters, ratio, ttft_ms", [(0, 0.0, 1.101), (5, 0.9, 6.106), (5, 0.01, 1.101)])
def test_simulator_holds_a_prompt_by_hand(iters, ratio, ttft_ms):
    # closed loop c = 2, prompts 100, outputs 3, 30, 3; step 1 ms + 1 us per token; budget 8,192.
    # t = 0: r0, r1 prefill together (nobody decodes: no wait), 1.2 ms; two decode steps of 2
    # tokens (2 x 1.002 ms): r0 ends at 3.204 ms and r2 arrives. Its 100 prompt tokens + r1's
    # decode token = 101 < 0.9 x 8,192: held 5 decode-only steps of r1 (5 x 1.001 ms), then
    # released (count 5 >= 5) with r1's token: 1.101 ms. TTFT = 5.005 + 1.101 = 6.106 ms
    # (without waiting 1.101 ms; with ratio 0.01 the 101 tokens reach 81.92 at once).
    req = Requests(np.full(3, np.nan), np.full(3, 100), np.array([3, 30, 3]), np.full(3, 100))
    tr = simulate(req, _linear_cost(), _waiting(iters, ratio), 1e6, concurrency=2)
    assert (tr.first_token_s[2] - tr.arrival_s[2]) * 1e3 == pytest.approx(ttft_ms, abs=1e-9)
    assert tr.first_token_s[0] * 1e3 == pytest.approx(1.2)  # the first two never wait: nothing decodes
    # r1 decodes through the hold (the held steps are its decode steps): its finish does not move
    assert tr.finish_s[1] * 1e3 == pytest.approx(30.333, abs=1e-9)


def test_four_decoding_and_one_arrival_wait_the_whole_timeout():
    # c = 4 decoding, one arrival, step s: TTFT = 20 s + the prefill step (the brief's example):
    # r0 has output 2, r1-r3 output 100; after the first prefill (400 tokens, 1.4 ms) and one decode
    # step of 4 tokens, r0 ends and r4 arrives; 100 + 3 tokens < 0.9 x 8,192, so 20 decode steps of
    # 3 tokens (1.003 ms) pass before its prompt (+3 decode tokens, 1.103 ms).
    req = Requests(np.full(5, np.nan), np.full(5, 100), np.array([2, 100, 100, 100, 2]), np.full(5, 100))
    tr = simulate(req, _linear_cost(), _waiting(20, 0.9), 1e6, concurrency=4)
    assert (tr.first_token_s[4] - tr.arrival_s[4]) * 1e3 == pytest.approx(20 * 1.003 + 1.103, abs=1e-9)


@pytest.mark.parametrize("model, hw, tp, c, isl, osl", [
    ("llama-3.1-70b", "h200-sxm", 2, 4, 1024, 512),  # the measured case: the timeout ends every wait
    ("llama-3.1-70b", "h200-sxm", 2, 32, 2048, 256),  # four prompts reach the threshold first
    ("llama-3.1-8b", "h100-sxm", 1, 4, 1024, 512),
])
def test_analytic_batch_wait_matches_simulator(model, hw, tp, c, isl, osl):
    from tests.test_serving import _assert_analytic_matches_simulator

    setup = ServingSetup(roofline.load_model(model), roofline.load_hardware(hw), roofline.Workload.with_dtype("fp8"),
                         roofline.Parallelism(tp=tp), _waiting(20, 0.9))
    _assert_analytic_matches_simulator(setup, c, isl, osl)


def test_analytic_wait_is_the_timeout_at_low_concurrency_and_off_by_default():
    # c = 2, prompts of 1,024: lambda = 2 / (1 + d) per step is small, so L = 20 steps and the mean
    # wait 20 (1 + 10 lambda) / (1 + 20 lambda) ~ 20 (0.998 x); without the settings none
    from roofline.serving.step_cost import StepCost

    zero = np.zeros(1)
    cost = StepCost(np.array([1.0, 16384.0]), np.array([[1e-3, 1e-3 + 16383e-6]]), np.zeros((1, 2)),
                    zero, zero, zero, zero, zero, zero)
    kw = dict(prompt=1024, output=1024, prefill=1024, kv_capacity_tokens=1e7, max_num_batched_tokens=8192,
              max_num_seqs=256, block_tokens=16, concurrency=2)
    off = steady_state(cost, **kw)["ttft_s"][0]
    on = steady_state(cost, **kw, batch_wait_timeout_iters=20, batch_wait_max_tokens_ratio=0.9)["ttft_s"][0]
    lam = 2 / (1 + 1023 + 20)  # requests per step, the lifetime with the wait (fixed point, 1 prefill step)
    wait_steps = 20 * (1 + 10 * lam) / (1 + 20 * lam)
    assert (on - off) == pytest.approx(wait_steps * 1.001e-3, rel=0.01)  # decode-only steps of one sequence


@needs_data
def test_rows_carry_the_launch_scripts_batch_waiting():
    from roofline.validation._serving_fit import load_serving_rows

    rows = load_serving_rows()
    waits = rows[rows["batch_wait_timeout_iters"].notna()]
    # 70b_fp8_h200_trt_slurm.sh: ISL 1024, OSL 1024 and TP < 8 only; 6 concurrencies x TP 1, 2, 4 on
    # H200 (InferenceX), and the B200 runs of the same scripts (AIConfigurator's rows, fp8 and fp4)
    assert waits.groupby(["dataset", "device"]).size().to_dict() == {("aiconfigurator", "b200"): 36,
                                                                     ("inferencex", "h200-sxm"): 18}
    assert set(waits["tp"]) == {1, 2, 4} and set(waits["isl_osl"]) == {"1024/1024"}
    assert set(waits["framework"]) == {"trtllm"} and set(waits["model"]) == {"llama-3.1-70b"}
    assert (waits["batch_wait_timeout_iters"] == 20).all() and (waits["batch_wait_max_tokens_ratio"] == 0.9).all()


@pytest.mark.parametrize("args, needle", [
    (["--batch-wait-iters", "-1"], "--batch-wait-iters"),
    (["--batch-wait-tokens-ratio", "1.5"], "--batch-wait-tokens-ratio: must be in [0, 1], got 1.5"),
    (["--batch-wait-tokens-ratio", "-0.5"], "--batch-wait-tokens-ratio: must be in [0, 1]"),
    (["--batch-wait-iters", "20", "--disagg"], "--batch-wait-iters: not supported with disaggregated pools"),
    # one alone changed nothing, silently: TensorRT-LLM waits only when both are positive
    (["--batch-wait-iters", "20"], "--batch-wait-iters 20: needs --batch-wait-tokens-ratio too"),
    (["--batch-wait-tokens-ratio", "0.9"], "--batch-wait-tokens-ratio 0.9: needs --batch-wait-iters too"),
    # the other given as 0 is not "missing": the message says it must be above 0
    (["--batch-wait-iters", "0", "--batch-wait-tokens-ratio", "0.5"],
     "--batch-wait-tokens-ratio 0.5: needs --batch-wait-iters above 0 (got 0)"),
])
def test_serve_cli_refuses_bad_batch_wait(capsys, args, needle):
    from roofline.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(["serve", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--framework", "trtllm", "--concurrency", "4", *args])
    err = capsys.readouterr().err
    assert e.value.code == 2 and needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_serve_cli_batch_wait_lengthens_ttft_only(capsys):
    import json

    from roofline.cli.main import main

    def run(*extra: str) -> dict:
        with pytest.raises(SystemExit) as e:
            main(["serve", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--framework", "trtllm", "--isl", "900-1100",
                  "--osl", "900-1100", "--concurrency", "4", "--json", *extra])
        assert e.value.code in (0, None)
        return json.loads(capsys.readouterr().out)

    off, on = run(), run("--batch-wait-iters", "20", "--batch-wait-tokens-ratio", "0.9")
    assert on["summary"]["engine"]["batch_wait_timeout_iters"] == 20
    assert "batch_wait_timeout_iters" not in off["summary"]["engine"]
    # about 20 decode-only steps more before the first token; a token's time barely moves
    extra_steps = (on["rows"][0]["ttft_ms"] - off["rows"][0]["ttft_ms"]) / off["rows"][0]["tpot_ms"]
    assert 15 < extra_steps < 21
    assert on["rows"][0]["tpot_ms"] == pytest.approx(off["rows"][0]["tpot_ms"], rel=0.02)


def test_sweep_serving_block_takes_batch_wait():
    from roofline.serving.columns import parse_serving_block

    block = parse_serving_block({"framework": "trtllm", "batch_wait_timeout_iters": 20,
                                 "batch_wait_max_tokens_ratio": 0.9}, "s.yaml")
    assert (block.settings.batch_wait_timeout_iters, block.settings.batch_wait_max_tokens_ratio) == (20, 0.9)
    with pytest.raises(SpecError, match="s.yaml: serving.batch_wait_max_tokens_ratio"):
        parse_serving_block({"batch_wait_max_tokens_ratio": 2.0}, "s.yaml")


@pytest.mark.parametrize("rate_rps", [0.5, 2.0])
def test_open_loop_batch_wait_matches_simulator(rate_rps):
    # Poisson arrivals (as the analytic window assumes): Llama-3.1-70B fp8 on 2x H200, 1k / 500
    # tokens +-10%, timeout 20, ratio 0.9: TTFT within 10% (0.5 rps: 292.8 simulated, 289.6 analytic
    # ms; 2 rps: 323.6 and 300.9 with 1,500 requests), TPOT within 2%
    from roofline.serving import ServingWorkload, make_requests, trace_metrics

    st = _waiting(20, 0.9)
    setup = ServingSetup(roofline.load_model("llama-3.1-70b"), roofline.load_hardware("h200-sxm"),
                         roofline.Workload.with_dtype("fp8"), roofline.Parallelism(tp=2), st)
    cost, cap = setup.step_cost(), setup.kv_capacity_tokens()
    w = ServingWorkload(Lengths(900, 1100), Lengths(450, 550), rate_rps=rate_rps, num_requests=1500)
    m = trace_metrics(simulate(make_requests(w), cost.scalar(), st, cap))
    a = steady_state(cost, prompt=1000, output=500, prefill=1000, kv_capacity_tokens=cap,
                     max_num_batched_tokens=st.max_num_batched_tokens, max_num_seqs=st.max_num_seqs,
                     block_tokens=st.block_tokens, rate_rps=rate_rps, batch_wait_timeout_iters=20,
                     batch_wait_max_tokens_ratio=0.9)
    assert a["ttft_s"][0] * 1e3 == pytest.approx(m["ttft_ms"], rel=0.10)
    assert a["tpot_s"][0] * 1e3 == pytest.approx(m["tpot_ms"], rel=0.02)


def test_lockstep_loop_with_batch_wait_keeps_its_schedule():
    # identical lengths (serve's default): a group finishes together and the next arrives with nothing
    # decoding, so batch waiting holds nothing and the lock-step schedule stands; taken as staggered,
    # the analytic TTFT was 2-4x below the event simulator's (195 against 592 ms at c = 32)
    kw = dict(model="llama-3.1-8b", hardware="h100-sxm", tp=1, input_len=1024, output_len=256, concurrency=[8, 32],
              framework="trtllm", batch_wait_timeout_iters=50, batch_wait_max_tokens_ratio=0.2)
    analytic = roofline.serve(**kw).to_frame()
    events = roofline.serve(**kw, simulate_events=True).to_frame()
    assert analytic["ttft_ms"].to_numpy() == pytest.approx(events["ttft_ms"].to_numpy(), rel=0.1)
    assert analytic["tpot_ms"].to_numpy() == pytest.approx(events["tpot_ms"].to_numpy(), rel=0.05)


def test_launch_settings_apply_only_where_every_selector_matches():
    import pandas as pd

    from roofline.validation._serving_fit import launch_settings

    rows = pd.DataFrame({"dataset": ["inferencex"] * 3 + ["aiconfigurator"], "model": ["glm-5", "glm-5", "glm-5", "glm-5"],
                         "framework": ["sglang", "sglang", "vllm", "sglang"], "device": ["h200-sxm"] * 4,
                         "tp": [8, 4, 8, 8], "isl": 1024, "osl": 1024, "kv_dtype": ["fp8"] * 4})
    out = launch_settings(rows)
    # the GLM-5 entry is InferenceX SGLang TP 8 on H200: only the first row is all four
    assert out["kv_dtype"].tolist() == ["bf16", "fp8", "fp8", "fp8"]
    assert out["batch_wait_timeout_iters"].isna().all() and rows["kv_dtype"].eq("fp8").all()  # input untouched


@needs_data
def test_rows_carry_the_launch_scripts_kv_dtype_and_budget():
    from roofline.validation._serving_fit import load_serving_rows

    rows = load_serving_rows()
    ix = rows[rows["dataset"] == "inferencex"]
    bf16 = ix[ix["kv_dtype"] == "bf16"].groupby(["model", "framework"]).size().to_dict()
    # every gpt-oss-120b vLLM row, MiniMax-M2.5 TP 8 and its TP 4 1k/8k run, DeepSeek-V3 and GLM-5 SGLang
    assert set(bf16) == {("gpt-oss-120b", "vllm"), ("minimax-m2.5", "vllm"), ("deepseek-v3", "sglang"),
                         ("glm-5", "sglang")}
    assert bf16[("gpt-oss-120b", "vllm")] == len(ix[(ix["model"] == "gpt-oss-120b") & (ix["framework"] == "vllm")])
    deepseek = ix[(ix["model"] == "deepseek-v3") & (ix["framework"] == "sglang")]
    assert (deepseek["max_num_batched_tokens"] == 32768).all()
