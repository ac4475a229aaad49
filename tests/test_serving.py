"""The serving stage: step cost, event simulator, analytic model, serve API and CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import roofline
from roofline.cli.main import main
from roofline.fitted import calibrated_hardware
from roofline.serving import (
    Lengths,
    ServingSetup,
    ServingWorkload,
    SpeculativeDecoding,
    engine_defaults,
    load_overheads,
    make_requests,
    serve,
    simulate,
    steady_state,
    trace_metrics,
)
from tests.conftest import needs_data


@pytest.fixture(scope="module")
def setup70b() -> ServingSetup:
    return ServingSetup(roofline.load_model("llama-3.1-70b"), roofline.load_hardware("h200-sxm"),
                        roofline.Workload.with_dtype("fp8"), roofline.Parallelism(tp=8), engine_defaults("vllm"))


@pytest.fixture(scope="module")
def cost70b(setup70b):
    return setup70b.step_cost(), setup70b.kv_capacity_tokens()


def test_prefill_step_equals_predict_ttft(setup70b, cost70b):
    # one 2048-token prompt alone in a step: body(2048) + head(1) + attention(2048*2049/2 pairs)
    # is exactly predict's prefill pass (prefetch off)
    p = roofline.predict("llama-3.1-70b", "h200-sxm", tp=8, dtype="fp8", batch=1, input_len=2048, output_len=2,
                         prefetch=False, datasheet=True)
    step = cost70b[0].scalar().step_s(2048, 1, 0, 0, 2048 * 2049 / 2, 0, 2048)
    assert step == pytest.approx(p.ttft_s, rel=1e-9)


def test_decode_step_mean_equals_predict_tpot(cost70b):
    # a decode step is affine in the summed KV length on this stretch, so the step at the mean
    # KV (64 sequences x (1024 + 1 + (1023 - 1) / 2 + ... ) = 64 x 1536) is predict's exact TPOT
    p = roofline.predict("llama-3.1-70b", "h200-sxm", tp=8, dtype="fp8", batch=64, input_len=1024, output_len=1024,
                         prefetch=False, datasheet=True)
    first, last = 1024 + 1, 1024 + 1023
    step = cost70b[0].scalar().step_s(64, 64, 64 * (first + last) / 2, 64)
    assert step == pytest.approx(p.tpot_s, rel=1e-6)


def test_kv_capacity_by_hand(cost70b):
    # Llama-3.1-70B fp8 at TP 8: 80 layers x 2 (K, V) x 128 dims x 1 KV head x 1 byte = 20480 bytes per
    # token per device; 0.9 x 141 GiB-class HBM minus ~8.8 GB of weights leaves ~118 GB: ~5.8-6.2M tokens
    cap = cost70b[1]
    spec = roofline.load_hardware("h200-sxm")
    weights = 70.6e9 / 8
    by_hand = (0.9 * spec.memory.hbm_capacity_bytes - weights) / 20480
    assert cap == pytest.approx(by_hand, rel=0.03)
    assert cap % 16 == 0


def test_speculative_tokens_per_step_by_hand():
    # Leviathan et al.: (1 - a^(k+1)) / (1 - a); k = 3, a = 0.8: (1 - 0.4096) / 0.2 = 2.952
    assert SpeculativeDecoding(3, 0.8).tokens_per_step == pytest.approx(2.952)
    assert SpeculativeDecoding(0, 0.0).tokens_per_step == 1.0


PROMPT, OUTPUT = Lengths(900, 1100), Lengths(450, 550)


def _sim(setup, cost, cap, c=None, rate=None, prompt=PROMPT, output=OUTPUT, n=600, **kw):
    w = ServingWorkload(prompt, output, concurrency=c, rate_rps=rate, num_requests=n)
    return simulate(make_requests(w), cost.scalar(), setup.settings, cap, concurrency=c, **kw)


@pytest.mark.parametrize("c", [8, 48])
def test_closed_loop_obeys_littles_law(setup70b, cost70b, c):
    tr = _sim(setup70b, *cost70b, c=c, request_overhead_s=0.01)
    m = trace_metrics(tr)
    # c requests are always in the system: c = throughput (req/s) x mean e2e, up to the ramp-down
    assert m["throughput_rps"] * m["e2e_ms"] / 1e3 == pytest.approx(c, rel=0.03)


def test_open_loop_obeys_littles_law(setup70b, cost70b):
    tr = _sim(setup70b, *cost70b, rate=4.0, n=800)
    m = trace_metrics(tr)
    in_system = tr.mean_running + tr.mean_waiting
    assert in_system == pytest.approx(m["throughput_rps"] * m["e2e_ms"] / 1e3, rel=0.05)


@pytest.mark.parametrize("model, hw, tp", [("llama-3.1-70b", "h200-sxm", 8), ("llama-3.1-8b", "h100-sxm", 1),
                                           ("qwen3-32b", "h100-sxm", 2)])
@pytest.mark.parametrize("c, isl, osl", [(4, 1024, 512), (32, 2048, 256), (96, 512, 512)])
@pytest.mark.parametrize("framework", ["vllm", "sglang"])  # mixed steps; prefill-first steps
def test_analytic_means_match_simulator(model, hw, tp, c, isl, osl, framework):
    setup = ServingSetup(roofline.load_model(model), roofline.load_hardware(hw), roofline.Workload.with_dtype("fp8"),
                         roofline.Parallelism(tp=tp), engine_defaults(framework))
    _assert_analytic_matches_simulator(setup, c, isl, osl)


# devices with a memory tier beyond HBM (Grace LPDDR5X): weights or KV cache spilled to it, dense
# and MoE; at c = 1 a request's decode steps carry no prefill chunk (before the fix the analytic TPOT
# counted its own: DeepSeek-V3 on 2 GH200 at 256/16 was 85% high, its chunks reading every expert
# from LPDDR)
@pytest.mark.parametrize("model, hw, tp, c, isl, osl", [
    ("deepseek-v3", "gh200", 2, 1, 256, 16),  # weights and KV cache spill to LPDDR
    ("deepseek-v3", "gh200", 2, 4, 1024, 128),
    ("deepseek-v3", "gb200-nvl72", 4, 16, 1024, 256),
    ("llama-3.1-70b", "gh200", 1, 48, 4096, 512),  # KV cache extends into LPDDR (demand > HBM's share)
    ("llama-3.1-70b", "gh200", 1, 1, 256, 16),  # all in HBM
    ("qwen3-32b", "gb200-nvl72", 1, 32, 2048, 256),
])
@pytest.mark.parametrize("framework", ["vllm", "sglang"])
def test_analytic_means_match_simulator_on_tiered_devices(model, hw, tp, c, isl, osl, framework):
    # the KV cache extends into the tiers as far as the longest requests need (as roofline serve)
    settings = engine_defaults(framework)
    block = settings.block_tokens
    demand = c * (math.ceil((int(isl * 1.1) + int(osl * 1.1)) / block) + 1) * block
    setup = ServingSetup(roofline.load_model(model), roofline.load_hardware(hw), roofline.Workload.with_dtype("fp8"),
                         roofline.Parallelism(tp=tp), settings, kv_demand_tokens=demand)
    assert setup.arrays().tier_names
    _assert_analytic_matches_simulator(setup, c, isl, osl)


def _assert_analytic_matches_simulator(setup: ServingSetup, c: int, isl: int, osl: int) -> None:
    cost, cap = setup.step_cost(), setup.kv_capacity_tokens()
    # lengths vary +-10 %: requests are staggered (steady state); the middle half is measured
    tr = _sim(setup, cost, cap, c=c, prompt=Lengths(int(isl * 0.9), int(isl * 1.1)),
              output=Lengths(int(osl * 0.9), int(osl * 1.1)), n=max(20 * c, 300))
    mid = np.argsort(tr.finish_s)[len(tr.finish_s) // 4: 3 * len(tr.finish_s) // 4]
    ttft = np.mean((tr.first_token_s - tr.arrival_s)[mid])
    tpot = np.mean(((tr.finish_s - tr.first_token_s) / (tr.output - 1))[mid])
    s = setup.settings
    a = steady_state(cost, prompt=isl, output=osl, prefill=isl, kv_capacity_tokens=cap,
                     max_num_batched_tokens=s.max_num_batched_tokens, max_num_seqs=s.max_num_seqs,
                     block_tokens=s.block_tokens, concurrency=c, prefill_first=s.prefill_first,
                     batch_wait_timeout_iters=s.batch_wait_timeout_iters,
                     batch_wait_max_tokens_ratio=s.batch_wait_max_tokens_ratio,
                     kv_reserve=s.kv_admission == "reserve")
    assert a["tpot_s"][0] == pytest.approx(tpot, rel=0.05)
    # ITL (a decoding sequence's gap between tokens, across the prefill steps it waits through with
    # a prefill-first engine) and the mean engine step (for power) agree too
    assert a["itl_s"][0] == pytest.approx(trace_metrics(tr)["itl_ms"] / 1e3, rel=0.05)
    assert a["mean_step_s"][0] == pytest.approx(tr.stepping_s / tr.steps, rel=0.05)
    assert a["ttft_s"][0] == pytest.approx(ttft, rel=0.15)  # prefill collisions are approximated


def test_analytic_is_vectorized_and_finite(cost70b):
    cost, cap = cost70b
    c = np.arange(1, 2001, dtype=float)
    a = steady_state(cost, prompt=1024, output=1024, prefill=1024, kv_capacity_tokens=cap,
                     max_num_batched_tokens=8192, max_num_seqs=1024, block_tokens=16, concurrency=c)
    assert a["ttft_s"].shape == (2000,)
    assert all(np.isfinite(v).all() for v in a.values())
    assert np.all(np.diff(a["tpot_s"]) >= -1e-12)  # more users never make a token faster
    assert a["mean_batch"].max() == 1024  # capped by max_num_seqs


def test_open_loop_saturates_above_capacity(cost70b):
    cost, cap = cost70b
    a = steady_state(cost, prompt=1024, output=1024, prefill=1024, kv_capacity_tokens=cap,
                     max_num_batched_tokens=8192, max_num_seqs=64, block_tokens=16, rate_rps=np.array([0.5, 1e4]))
    assert a["saturated"].tolist() == [False, True]


def test_serve_api_rows_and_slo():
    r = serve("llama-3.1-8b", "h100-sxm", dtype="fp8", input_len=1024, output_len=256, concurrency=[1, 8, 64],
              slo_ttft_ms=500, slo_tpot_ms=20)
    df = r.to_frame()
    assert list(df["concurrency"]) == [1, 8, 64]
    for key in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms", "ttft_p90_ms", "tpot_p90_ms", "throughput_tok_s",
                "goodput_tok_s", "kv_utilization", "mean_batch"):
        assert key in df.columns
    assert r.rows[0]["ttft_p90_ms"] is None  # analytic: percentiles null, never NaN
    json.loads(r.to_json())  # allow_nan=False: no NaN or Infinity anywhere
    assert r.summary["slo_max_concurrency"] >= 1
    assert r.summary["overheads"]["source"].startswith("fitted")


def test_serve_simulated_percentiles_and_trace(tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n0,100,20\n0.01,200,10\n0.5,50,5\n")
    r = serve("llama-3.1-8b", "h100-sxm", trace=str(trace), slo_ttft_ms=1000)
    row = r.rows[0]
    assert row["ttft_p90_ms"] >= row["ttft_p50_ms"] > 0
    assert row["goodput_tok_s"] <= row["throughput_tok_s"]
    s = serve("llama-3.1-8b", "h100-sxm", concurrency=4, input_len=(100, 200), output_len=50, simulate_events=True,
              draft_tokens=2, acceptance=0.7)
    assert s.rows[0]["tpot_ms"] > 0


def test_fitted_overheads_ship_with_provenance():
    o = load_overheads("vllm")
    assert o.source.startswith("fitted")
    assert 0 < o.decode_scale < 3 and 0 < o.prefill_scale < 5
    assert load_overheads("no-such-framework").decode_scale == 1.0


def test_roofline_serve_defaults_to_the_fitted_model():
    fitted = roofline.serve("llama-3.1-8b", "h100-sxm", dtype="fp8", input_len=1024, output_len=256, concurrency=8)
    raw = roofline.serve("llama-3.1-8b", "h100-sxm", dtype="fp8", input_len=1024, output_len=256, concurrency=8,
                         datasheet=True)
    assert fitted.summary["hardware_profile"].startswith("calibrated")
    assert raw.summary["hardware_profile"] == "datasheet"
    assert raw.summary["overheads"]["source"].startswith("datasheet")
    assert fitted.rows[0]["ttft_ms"] != raw.rows[0]["ttft_ms"]


@pytest.mark.parametrize("args, needle", [
    (["--concurrency", "x"], "--concurrency"),
    (["--concurrency", "0"], "--concurrency"),
    (["--rate", "-1"], "--rate"),
    (["--concurrency", "4", "--rate", "1"], "exactly one"),
    ([], "exactly one"),
    (["--concurrency", "4", "--input", "0"], "--input"),
    (["--concurrency", "4", "--output", "9-3"], "--output"),
    (["--concurrency", "4", "--framework", "tgi"], "framework"),
    (["--concurrency", "4", "--gpu-memory-utilization", "1.5"], "gpu_memory_utilization"),
    (["--concurrency", "4", "--max-num-batched-tokens", "0"], "max-num-batched-tokens"),
    (["--concurrency", "4", "--max-num-seqs", "0"], "max-num-seqs"),
    (["--concurrency", "4", "--slo-ttft-ms", "-5"], "--slo-ttft-ms"),
    (["--concurrency", "4", "--slo-tpot-ms", "0"], "--slo-tpot-ms"),
    (["--concurrency", "4", "--prefix-hit", "1.5"], "prefix_hit"),
    (["--concurrency", "4", "--attention-dp", "3"], "--attention-dp"),
    (["--concurrency", "4", "--acceptance", "1.2", "--draft-tokens", "2"], "acceptance"),
    (["--trace", "/no/such/trace.csv"], "trace"),
    (["--concurrency", "4", "--dtype", "fp3"], "dtype"),
    (["--concurrency", "4", "--kv-dtype", "zz"], "kv_dtype"),
])
def test_serve_cli_bad_input(capsys, args, needle):
    with pytest.raises(SystemExit) as e:
        main(["serve", "-m", "llama-3.1-8b", "-H", "h100-sxm", *args])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_serve_cli_json(capsys):
    with pytest.raises(SystemExit) as e:
        main(["serve", "-m", "llama-3.1-70b", "-H", "h200-sxm", "--tp", "8", "--dtype", "fp8", "--kv-dtype", "fp8",
              "--isl", "8192", "--osl", "1024", "--concurrency", "4,16,64", "--json"])
    assert e.value.code in (0, None)
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"definitions", "rows"}
    assert [r["concurrency"] for r in out["rows"]] == [4, 16, 64]
    assert all(math.isfinite(r["tpot_ms"]) for r in out["rows"])


def test_engine_clocks_give_any_fitted_scales_exactly(setup70b, cost70b):
    # a closed loop's schedule does not depend on step times: one run's clocks give the times of
    # any (decode_scale, prefill_scale, step_overhead, seq_overhead), which the fit relies on
    cost, cap = cost70b
    req = make_requests(ServingWorkload(PROMPT, OUTPUT, concurrency=16, num_requests=160))
    unit = simulate(req, cost.scalar(), setup70b.settings, cap, concurrency=16)
    x = np.array([1.1, 1.7, 2e-3, 30e-6])
    scaled = simulate(req, cost.scalar(), setup70b.settings, cap, concurrency=16, decode_scale=1.1,
                      prefill_scale=1.7, step_overhead_s=2e-3, seq_overhead_s=30e-6)
    assert ((unit.clock_first - unit.clock_arrival) @ x) == pytest.approx(scaled.first_token_s - scaled.arrival_s)
    assert ((unit.clock_finish - unit.clock_arrival) @ x) == pytest.approx(scaled.finish_s - scaled.arrival_s)


@needs_data
@pytest.mark.slow
def test_serving_fit_held_out_errors_are_reported():
    from roofline.validation._serving_fit import (
        error_table,
        held_out_errors,
        load_serving_rows,
        serving_features,
    )

    rows = load_serving_rows()
    rows = rows[rows["dataset"] == "inferencex"]
    feats = serving_features(rows)
    pred = held_out_errors(rows, feats, "framework")
    table = error_table(rows, pred, ["bucket"])
    assert np.isfinite(table.to_numpy(dtype=float)).all()
    # measured 2026-11-29: 13-16 % per bucket (docs/serving.md); a loose guard against regressions
    assert table.loc["unsaturated", "tpot_mape"].max() < 25

def _serving_sweep(**serving):
    from roofline.sweepfile import sweep_from_dict

    return sweep_from_dict({
        "hardware": "h100-sxm", "model": "llama-3.1-8b",
        "workload": {"input_len": 1024, "output_len": 256, "dtype": "fp8"},
        "sweep": {"hbm_bandwidth_GBps": [2000, 3350], "l2_capacity_MiB": [25, 100]},
        "serving": {"concurrency": 32, "slo_ttft_ms": 1000, "slo_tpot_ms": 30, **serving},
        "objective": {"maximize": "goodput_tok_s_per_kusd"},
        "constraints": {"min_goodput_tok_s": 1},
    }, "s.yaml")


def test_sweep_serving_columns_match_serve():
    from roofline.sweep import sweep_frame

    df = sweep_frame(_serving_sweep())
    assert {"goodput_tok_s", "goodput_tok_s_per_kusd", "slo_max_concurrency", "serving_tpot_ms"} <= set(df.columns)
    # more HBM bandwidth: a faster decode step
    fast, slow = df[df.hbm_bandwidth_GBps == 3350].iloc[0], df[df.hbm_bandwidth_GBps == 2000].iloc[0]
    assert fast.serving_tpot_ms < slow.serving_tpot_ms
    # the base device's row is what `roofline serve` gives: the fitted model (calibrated profile, fitted overheads)
    r = serve("llama-3.1-8b", calibrated_hardware("h100-sxm"), dtype="fp8", input_len=1024, output_len=256,
              concurrency=32, hbm_bandwidth_GBps=3350, l2_capacity_MiB=25, prefetch=True)  # the sweep: the spec's prefetch
    row = df[(df.hbm_bandwidth_GBps == 3350) & (df.l2_capacity_MiB == 25)].iloc[0]
    assert row.serving_tpot_ms == pytest.approx(r.rows[0]["tpot_ms"], rel=0.02)  # coarser token grid
    assert row.slo_max_concurrency >= 1


@pytest.mark.parametrize("block, needle", [({"framework": "tgi"}, "serving.framework"),
                                           ({"concurrency": 0}, "serving.concurrency"),
                                           ({"gpu_memory_utilization": 2}, "serving.gpu_memory_utilization"),
                                           ({"bogus": 1}, "serving.bogus")])
def test_sweep_serving_block_errors(block, needle):
    with pytest.raises(roofline.SpecError, match=needle):
        _serving_sweep(**block)


def test_serving_objective_needs_a_serving_block():
    from roofline.sweepfile import sweep_from_dict

    with pytest.raises(roofline.SpecError, match="needs a serving: block"):
        sweep_from_dict({"hardware": "h100-sxm", "model": "llama-3.1-8b",
                         "objective": {"maximize": "goodput_tok_s"}}, "s.yaml")


@pytest.mark.parametrize(("load", "batch_rel"), [(0.1, 0.05), (0.3, 0.05), (0.6, 0.08), (0.8, 0.10)])
def test_open_loop_analytic_matches_simulator(setup70b, cost70b, load, batch_rel):
    # TTFT within 3%: prompts queue for the step's token budget (M/D/1, analytic._prefill_queue_s);
    # without that queue it was 2 / 6 / 13 / 17% low. The mean batch near capacity is the fixed
    # point's (5% / 9% high at 0.6 / 0.8: docs/serving.md, agreement)
    cost, cap = cost70b
    kw = dict(prompt=1024, output=512, prefill=1024, kv_capacity_tokens=cap, max_num_batched_tokens=8192,
              max_num_seqs=256, block_tokens=16)
    top = steady_state(cost, rate_rps=np.array([1e6]), **kw)
    assert top["saturated"][0]
    rate = float(top["throughput_rps"][0]) * load
    settings = setup70b.settings.with_overrides(max_num_seqs=256)
    w = ServingWorkload(Lengths(922, 1126), Lengths(461, 563), rate_rps=rate, num_requests=1500)
    m = trace_metrics(simulate(make_requests(w), cost.scalar(), settings, cap))
    a = steady_state(cost, rate_rps=np.array([rate]), **kw)
    assert a["tpot_s"][0] * 1e3 == pytest.approx(m["tpot_ms"], rel=0.05)
    assert a["ttft_s"][0] * 1e3 == pytest.approx(m["ttft_ms"], rel=0.03)
    assert a["mean_batch"][0] == pytest.approx(m["mean_batch"], rel=batch_rel)


def test_kv_bytes_per_token_of_windowed_and_linear_layers_by_hand():
    from roofline.serving.capacity import kv_bytes_per_token

    fp8 = roofline.Workload.with_dtype("fp8")
    # gpt-oss-120b: 18 of its 36 layers are full attention (the others keep a 128-token window):
    # per token 18 layers x (K + V) x 8 KV heads x 64 x 1 byte = 18,432 B at TP 1
    oss = roofline.load_model("gpt-oss-120b")
    assert kv_bytes_per_token(oss, fp8, roofline.Parallelism(tp=1)) == pytest.approx(18 * 2 * 8 * 64)
    # qwen3.5-397b-a17b: 15 of 60 layers are full attention (Gated DeltaNet's state does not grow),
    # 2 KV heads of 256: at TP 8 each device keeps one head, 15 x 2 x 1 x 256 x 1 byte = 7,680 B
    qwen = roofline.load_model("qwen3.5-397b-a17b")
    assert kv_bytes_per_token(qwen, fp8, roofline.Parallelism(tp=8)) == pytest.approx(15 * 2 * 1 * 256)
    # a dense model is unchanged: Llama-3.1-70B, 80 x 2 x 8 x 128 x 1 byte / TP 8 = 20,480 B
    llama = roofline.load_model("llama-3.1-70b")
    assert kv_bytes_per_token(llama, fp8, roofline.Parallelism(tp=8)) == pytest.approx(80 * 2 * 8 * 128 / 8)


def test_decode_attention_slope_counts_only_growing_layers():
    """gpt-oss-120b at TP 1, fp8 KV cache: one more cached token of a decoding sequence reads
    18,432 more bytes (the full-attention layers only: the sliding-window layers stop at 128)."""
    from roofline.timing import HardwareArrays

    hw = roofline.load_hardware("h200-sxm")
    w = roofline.Workload(weight_dtype="bf16", activation_dtype="bf16", kv_dtype="fp8",
                          op_dtypes="experts=mxfp4:bf16")
    setup = ServingSetup(roofline.load_model("gpt-oss-120b"), hw, w, roofline.Parallelism(tp=1),
                         engine_defaults("vllm"))
    cost = setup.step_cost()
    arrays = HardwareArrays.from_spec(hw, 1)
    bytes_per_s = float(arrays.hbm_Bps[0] * arrays.hbm_efficiency[0])
    assert cost.dec_memory_per_kv_s[0] * bytes_per_s == pytest.approx(18 * 2 * 8 * 64, rel=1e-6)
    # the 18 windowed layers read their 128 tokens per sequence whatever the context
    assert cost.dec_memory_per_seq_s[0] * bytes_per_s >= 18 * 2 * 8 * 64 * 128 * 0.999


def test_moe_prefill_scale_applies_to_moe_models_only():
    from roofline.serving import Overheads

    o = Overheads(prefill_scale=0.9, moe_prefill_scale=2.5)
    assert o.for_model(roofline.load_model("llama-3.1-70b")) is o
    moe = o.for_model(roofline.load_model("deepseek-v3"))
    assert moe.prefill_scale == pytest.approx(0.9 * 2.5) and moe.moe_prefill_scale == 1.0
    for fw in ("any", "vllm", "sglang", "trtllm"):
        assert load_overheads(fw).moe_prefill_scale > 0


@needs_data
def test_serving_rows_include_the_newer_models():
    from roofline.validation._serving_fit import load_serving_rows

    rows = load_serving_rows()
    x = rows[rows["dataset"] == "inferencex"].groupby("model").size()
    # ../shared/validation/inferencex/README.md: 107 gpt-oss-120b, 41 MiniMax-M2.5, 15 GLM-5, 4 Qwen3.5 rows
    assert dict(x[["gpt-oss-120b", "minimax-m2.5", "glm-5", "qwen3.5-397b-a17b"]]) == {
        "gpt-oss-120b": 107, "minimax-m2.5": 41, "glm-5": 15, "qwen3.5-397b-a17b": 4}
    oss = rows[rows["model"] == "gpt-oss-120b"]
    assert set(oss["op_dtypes"]) == {"experts=mxfp4:bf16"}
    # the vLLM logs of MiniMax-M2.5 at TP 4 record a token budget of 32,768
    mm = rows[(rows["model"] == "minimax-m2.5") & (rows["tp"] == 4) & (rows["osl"] == 1024)]
    assert set(mm["max_num_batched_tokens"]) == {32768}


def _linear_cost():
    """A step costs 1 ms + 1 us per token (body only: no head, no attention), for hand calculations."""
    from roofline.serving.step_cost import ScalarStepCost

    return ScalarStepCost([1.0, 10_000.0], [1e-3 + 1e-6, 1e-3 + 1e-2], [0.0, 0.0], 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize("framework, r1_tpot_ms", [("vllm", 1.0265), ("sglang", 1.2765)])
def test_prefill_first_scheduling_by_hand(framework, r1_tpot_ms):
    # closed loop c = 2, prompts of 100 tokens, outputs 2, 5, 2; step = 1 ms + 1 us/token.
    # t=0: r0, r1 prefill together (200 tokens, 1.2 ms); one decode step (2 tokens, 1.002 ms):
    # r0 ends at 2.202 ms and r2 arrives. vLLM: r1's decode token rides with r2's prompt (101
    # tokens, 1.101 ms), then r1 + r2 decode (1.002 ms, r2 ends), r1 alone (1.001 ms): r1 ends at
    # 5.306 ms, TPOT (5.306 - 1.2) / 4 = 1.0265 ms. SGLang runs r2's prompt alone (1.1 ms) while r1
    # waits, then r1 + r2 (1.002 ms), r1 alone twice (2.002 ms): r1 ends at 6.306 ms, TPOT 1.2765 ms.
    from roofline.serving.workload import Requests

    req = Requests(np.full(3, np.nan), np.full(3, 100), np.array([2, 5, 2]), np.full(3, 100))
    tr = simulate(req, _linear_cost(), engine_defaults(framework), 1e6, concurrency=2)
    assert tr.first_token_s[1] == pytest.approx(1.2e-3)
    assert (tr.finish_s[1] - tr.first_token_s[1]) / 4 * 1e3 == pytest.approx(r1_tpot_ms)
    assert engine_defaults(framework).prefill_first is (framework == "sglang")


def test_analytic_lone_prompt_of_the_whole_budget_is_one_chunk():
    """At c = 1 (closed loop) no other request decodes during a prompt's prefill, so a prompt of
    exactly the token budget is one chunk: with the synthetic step below (1 token 0.1 s, 1,024+
    tokens 100 s) TTFT is one 100 s step, as with twice the budget. It used to reserve the
    request's own decode token and take two chunks (8,192-token prompts on DeepSeek-V3 / GH200:
    3,810 ms against 2,336 simulated)."""
    from roofline.serving.analytic import steady_state
    from roofline.serving.step_cost import StepCost

    zero = np.zeros(1)
    cost = StepCost(np.array([1.0, 1024.0, 16384.0]), np.array([[0.1, 100.0, 100.0]]), np.zeros((1, 3)),
                    zero, zero, zero, zero, zero, zero)
    ttft = {budget: steady_state(cost, prompt=1024, output=64, prefill=1024, kv_capacity_tokens=1e6,
                                 max_num_batched_tokens=budget, max_num_seqs=256, block_tokens=16,
                                 concurrency=1)["ttft_s"][0] for budget in (1024, 2048)}
    assert ttft[1024] == pytest.approx(100.0, rel=1e-9)
    assert ttft[2048] == pytest.approx(ttft[1024], rel=1e-9)


def test_decode_steps_of_a_mean_output():
    """o - 1 steps after the first token: 17 tokens 16 steps; a range 15-18 (mean 16.5) 15.5 steps on
    average, not ceil = 16; with 2 tokens a step (speculative) 16 / 2 = 8 whole steps, 17 / 2 -> 9;
    one token, no decode step. One rule for serve, the disaggregated pools, sizing and energy."""
    from roofline.serving.workload import decode_steps

    assert decode_steps(np.array([17.0, 16.5, 1.0])).tolist() == [16.0, 15.5, 0.0]
    assert decode_steps(np.array([17.0, 18.0]), 2.0).tolist() == [8.0, 9.0]


def test_quantized_checkpoints_keep_the_embedding_and_lm_head_in_bf16():
    from roofline.validation import checkpoint_op_dtypes

    dtypes = np.array(["fp8", "nvfp4", "bf16"])
    kept = "embedding=bf16,lm_head=bf16"
    assert list(checkpoint_op_dtypes(dtypes)) == [kept, kept, ""]


@needs_data
def test_serving_rows_of_quantized_checkpoints_read_the_embedding_and_head_in_bf16():
    from roofline.validation._serving_fit import load_serving_rows

    rows = load_serving_rows()
    quantized = rows["dtype"].isin(["fp8", "nvfp4"])
    assert set(rows.loc[quantized, "op_dtypes"]) == {"embedding=bf16,lm_head=bf16"}
    assert set(rows.loc[~quantized & (rows["model"] != "gpt-oss-120b"), "op_dtypes"]) == {""}
    # AIConfigurator's B200 Llama-3.1-70B rows: 132 NVFP4 (72 TensorRT-LLM, 60 vLLM)
    b200 = rows[(rows["device"] == "b200") & (rows["dtype"] == "nvfp4")]
    assert b200.groupby("framework").size().to_dict() == {"trtllm": 72, "vllm": 60}


def test_benchmark_start_wave_by_hand():
    from roofline.serving.analytic import _burst_wait_s
    from roofline.serving.step_cost import StepCost

    # a body of 0.1 ms per token, nothing else: 16 prompts of 1,000 tokens at once on a budget of 8,000
    # take W = 2 full steps of 0.8 s; the k-th finishes at step ceil(k p / M), taken as (c + 1) p / 2M
    # + 1/2 = 17 / 16 + 1/2 = 1.5625 steps: a first-wave TTFT of 0.05 + 1.25 = 1.3 s against a steady
    # 0.2 s, for 16 of 160 requests: 0.1 x 1.1 = 0.11 s on the mean
    grid = np.array([1.0, 100_000.0])
    zero = np.zeros(1)
    cost = StepCost(tokens=grid, body_s=grid[None, :] * 1e-4, head_s=np.zeros((1, 2)), dec_compute_per_kv_s=zero,
                    dec_memory_per_kv_s=zero, dec_memory_per_seq_s=zero, dec_compute_per_seq_s=zero,
                    pre_compute_per_pair_s=zero, pre_memory_per_token_s=zero)
    extra = _burst_wait_s(cost, np.zeros(1, dtype=int), np.array([16.0]), np.array([1000.0]), np.array([8000.0]),
                          np.zeros(1), 160.0, np.array([0.2]), 0.05)
    assert extra[0] == pytest.approx(0.11)
    # a wave that fits in one step is one step of its c p tokens (5 / 16 + 1/2 < 1): 4 x 1,000 -> 0.05 + 0.4 s
    one = _burst_wait_s(cost, np.zeros(1, dtype=int), np.array([4.0]), np.array([1000.0]), np.array([8000.0]),
                        np.zeros(1), 40.0, np.array([0.2]), 0.05)
    assert one[0] == pytest.approx(0.1 * 0.25)
    # one prompt of 1.5 budgets alone: its 2 steps of 0.8 s (12,000 tokens, M = 8,000): 0.05 + 1.6 s
    long = _burst_wait_s(cost, np.zeros(1, dtype=int), np.array([1.0]), np.array([12_000.0]), np.array([8000.0]),
                         np.zeros(1), 10.0, np.array([0.2]), 0.05)
    assert long[0] == pytest.approx(0.1 * (1.65 - 0.2))
    # c = 1: one prompt of 0.9 budgets alone is one step (the average ceiling's half step is for a wave)
    lone = _burst_wait_s(cost, np.zeros(1, dtype=int), np.array([1.0]), np.array([7200.0]), np.array([8000.0]),
                         np.zeros(1), 100.0, np.array([0.2]), 0.05)
    assert lone[0] == pytest.approx(0.01 * (0.05 + 0.72 - 0.2))


@pytest.mark.parametrize(("c", "bound"), [(16, 0.05), (64, 0.06)])
def test_benchmark_mean_ttft_with_its_start_matches_simulator(c, bound):
    # the mean over a 10 x c benchmark whose first c requests arrive at once (the validation rows' mean):
    # the start wave was 28% / 18% low at c = 16 / 64 (its own step counted as a steady one)
    kw = dict(tp=2, dtype="fp8", kv_dtype="fp8", input_len=(819, 1024), output_len=(819, 1024), concurrency=c)
    a = roofline.serve("llama-3.1-70b", "h200-sxm", **kw).to_frame()
    s = roofline.serve("llama-3.1-70b", "h200-sxm", simulate_events=True, **kw).to_frame()
    assert a["ttft_ms"][0] / s["ttft_ms"][0] - 1 == pytest.approx(0, abs=bound)
