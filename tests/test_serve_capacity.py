"""A request longer than the KV cache holds: refused as an engine refuses it (one line, exit 2)
by `roofline serve`, `roofline.serve` (analytic and simulated, trace included); an infeasible row
with no goodput in a sweep's `serving:` block (`serving_fits` false)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from roofline.exceptions import InfeasibleConfigError
from roofline.serving import serve
from roofline.serving.capacity import load_kv_demand_tokens, request_fits
from roofline.sweep import evaluate_rows
from roofline.sweepfile import sweep_from_dict
from tests.conftest import one_line_error

#: llama-3.1-8b, fp8 weights and KV cache, one H100 whose HBM is set to 12 GiB: 32,736 tokens of
#: KV cache (vLLM defaults). Hand check of the KV bytes per token: 32 layers x 8 KV heads x 128
#: x 2 (K and V) x 1 byte = 65,536 B; 2 GiB more HBM at gpu_memory_utilization 0.9 adds
#: 0.9 x 2 x 2^30 / 65,536 = 29,491 tokens, 29,488 in whole 16-token blocks (12 -> 14 GiB below).
#: The LM head and the input embedding in bf16 (roofline.workload.checkpoint_op_dtypes) take
#: 128,256 x 4,096 x 1 B = 525,336,576 B more each than in fp8: 8,016 tokens (501 blocks) fewer
#: each than the 48,768 of an all-fp8 checkpoint.
ARGS = {"dtype": "fp8", "concurrency": 4, "hbm_capacity_GiB": 12.0}
CAP = 48_768 - 2 * (128_256 * 4_096 // 65_536)
assert CAP == 32_736


def test_an_fp8_head_and_embedding_give_back_their_bytes_as_kv_cache() -> None:
    same = serve("llama-3.1-8b", "h100-sxm", input_len=1024, output_len=256, lm_head_dtype="same", **ARGS)
    assert same.summary["kv_capacity_tokens"] == 40_752  # the head in fp8, the embedding in bf16
    every = serve("llama-3.1-8b", "h100-sxm", input_len=1024, output_len=256, lm_head_dtype="same",
                  op_dtypes="embedding=fp8", **ARGS)
    assert every.summary["kv_capacity_tokens"] == 48_768


def test_capacity_of_the_example_is_the_hand_computed_one() -> None:
    small = serve("llama-3.1-8b", "h100-sxm", input_len=1024, output_len=256, **ARGS)
    larger = serve("llama-3.1-8b", "h100-sxm", input_len=1024, output_len=256, **(ARGS | {"hbm_capacity_GiB": 14.0}))
    assert small.summary["kv_capacity_tokens"] == CAP
    assert larger.summary["kv_capacity_tokens"] - CAP == 29_488


def test_request_fits_counts_whole_blocks() -> None:
    assert request_fits(CAP - 100, 100, CAP, 16)
    assert not request_fits(CAP - 100, 101, CAP, 16)  # one more token needs one more block
    assert request_fits(np.array([10.0, 40.0]), 8.0, np.array([32.0, 32.0]), 16).tolist() == [True, False]


@pytest.mark.parametrize("simulate", [False, True])
def test_serve_refuses_a_request_longer_than_the_kv_cache(simulate: bool) -> None:
    """The longest request is exactly the capacity: it runs; one token more is refused (before,
    the analytic model ran it at a batch of one, with goodput)."""
    kw = ARGS | {"simulate_events": simulate, "num_requests": 4}
    ok = serve("llama-3.1-8b", "h100-sxm", input_len=CAP - 64, output_len=64, **kw)
    assert ok.rows[0]["throughput_tok_s"] > 0
    with pytest.raises(InfeasibleConfigError, match=r"--input/--output: a request of 32,673 prompt \+ 64 output "
                                                    r"tokens needs more KV cache than the replica holds \(32,736"):
        serve("llama-3.1-8b", "h100-sxm", input_len=CAP - 63, output_len=64, **kw)
    # a range is refused on its longest request
    with pytest.raises(InfeasibleConfigError, match="--input/--output"):
        serve("llama-3.1-8b", "h100-sxm", input_len=(1000, CAP), output_len=64, **kw)


def test_serve_refuses_a_trace_request_longer_than_the_kv_cache(tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text(f"arrival_s,prompt_tokens,output_tokens\n0,100,10\n0.5,{CAP},1\n")
    args = ARGS | {"concurrency": None}
    with pytest.raises(InfeasibleConfigError, match=f"--trace {trace}: a request of 32,736 prompt"):
        serve("llama-3.1-8b", "h100-sxm", trace=str(trace), **args)


def test_the_cli_says_so_in_one_line(cli) -> None:
    one_line_error(cli("serve", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--dtype", "fp8", "--set", "hbm_capacity_GiB=12",
                       "--input", "60000", "--output", "64", "--concurrency", "1"),
                   "--input/--output:", "32,736 tokens")


@pytest.mark.parametrize("disagg", [None, {"prefill": "tp=1", "decode": "tp=1"}])
def test_a_sweep_marks_the_row_infeasible_without_goodput(disagg: dict | None) -> None:
    """HBM 12 GiB holds 32,736 tokens, 16 GiB 91,712 (107,744 with an fp8 head and embedding): a 65,536 + 256 token request fits only the
    second; the first row is infeasible (serving_fits false) and has no goodput, not an error."""
    data = {"name": "t", "hardware": "h100-sxm", "model": "llama-3.1-8b",
            "workload": {"input_len": 65536, "output_len": 256, "dtype": "fp8"}, "parallelism": {"tp": 1},
            "sweep": {"hbm_capacity_GiB": [12, 16]},
            "serving": {"concurrency": 4} | ({"disagg": disagg} if disagg else {})}
    spec = sweep_from_dict(data, "t.yaml")
    rows = evaluate_rows(spec, next(iter(spec.structural_combinations())), spec.hardware_grid())
    assert np.asarray(rows["serving_fits"]).tolist() == [False, True]
    assert np.asarray(rows["feasible"]).tolist() == [False, True]
    assert rows["goodput_tok_s"][0] == 0 and rows["slo_max_concurrency"][0] == 0
    assert rows["goodput_tok_s"][1] > 0


# -- memory tiers beyond HBM (Grace LPDDR5X): placed as predict places them ----------------------

def _setup(model: str, device: str, tp: int, demand_tokens: float, **dtypes: str):
    from roofline.fitted import fitted_model
    from roofline.model import load_model
    from roofline.serving import engine_defaults
    from roofline.serving.serve import ServingSetup
    from roofline.workload import Parallelism, Workload

    m = load_model(model)
    return ServingSetup(m, fitted_model(device).hardware, Workload.for_model(m, dtypes.get("dtype"),
                                                                             kv_dtype=dtypes.get("kv_dtype")),
                        Parallelism(tp=tp), engine_defaults("vllm"), kv_demand_tokens=demand_tokens)


def test_weights_that_do_not_fit_hbm_spill_to_lpddr_and_the_kv_cache_follows() -> None:
    """deepseek-v3 (bf16 checkpoint dtype) at TP 8 on gh200: 157.92 GiB of weights and 0.51 GiB
    of activations (8,192-token budget) per device against 0.9 x 96 = 86.4 GiB of HBM: 85.89 GiB
    of weights stay in HBM, 72.02 GiB (a fraction 0.4561) go to the 480 GiB of LPDDR, and the KV
    cache (nothing left in HBM) lives in LPDDR, sized to the load: 4 x (256 + 16) = 1,088 tokens.
    Before, serve refused it ('no room for a KV cache') where predict ran it."""
    s = _setup("deepseek-v3", "gh200", 8, 4 * 272)
    a = s.arrays()
    assert a.tier_names == ("lpddr",)
    assert a.weight_tier_fraction[0, 0] == pytest.approx((157.9157 - (86.4 - 0.5083)) / 157.9157, abs=1e-4)
    assert a.kv_tier_fraction[0, 0] == 1.0
    assert s.kv_capacity_tokens() == 1088
    r = serve("deepseek-v3", "gh200", tp=8, input_len=256, output_len=16, concurrency=4)
    assert r.summary["kv_capacity_tokens"] == 1088 and r.rows[0]["tpot_ms"] > 0


def test_the_kv_demand_on_tiers_counts_whole_blocks_per_request() -> None:
    """A request of 281 + 17 = 298 tokens takes ceil(298 / 16) = 19 blocks = 304 tokens; 3 of them
    912. The bare tokens (298) sized a pool floored to 288 on gh200, one block short: serve refused
    --input 230-281 --output 14-17 at concurrency 1 ('needs more KV cache than the replica holds')."""
    assert load_kv_demand_tokens(1, 281, 17, 16) == 304
    assert load_kv_demand_tokens(3, 281, 17, 16) == 912
    assert load_kv_demand_tokens(2, 256, 16, 16) == 544  # a multiple of the block: unchanged
    r = serve("deepseek-v3", "gh200", tp=2, dtype="fp8", input_len=(230, 281), output_len=(14, 17), concurrency=1,
              datasheet=True)
    assert r.summary["kv_capacity_tokens"] == 304


def test_the_kv_cache_extends_into_lpddr_only_as_far_as_the_load_needs() -> None:
    """llama-3.1-70b fp8 (KV fp8) on one gh200: weights 65.71 GiB in fp8 + 2 x 0.98 GiB more for the
    LM head and the input embedding in bf16 (128,256 x 8,192 x 1 B each,
    roofline.workload.checkpoint_op_dtypes) + activations 0.69 GiB leave 86.4 - 68.36 = 18.04 GiB of
    HBM (19.02 with an fp8 embedding, 20.00 with both in fp8), 118,256 tokens of 80 x 8 x 128 x 2 x
    1 B = 160 KiB in whole 16-token blocks (124,672 and 131,088). 8 requests of 8,192 + 1,024 tokens
    (73,728) fit there: nothing in LPDDR, the same as a device without tiers. 64 of them (589,824
    tokens) extend the pool into LPDDR: 1 - 118,256 / 589,824 = 0.800 of the KV cache is read from
    it, and all 64 run (before: about 15, the rest queued)."""
    small = _setup("llama-3.1-70b", "gh200", 1, 8 * 9216, dtype="fp8", kv_dtype="fp8")
    assert small.kv_capacity_tokens() == 118_256
    assert not small.arrays().spills
    big = _setup("llama-3.1-70b", "gh200", 1, 64 * 9216, dtype="fp8", kv_dtype="fp8")
    assert big.kv_capacity_tokens() == 589_824
    assert big.arrays().kv_tier_fraction[0, 0] == pytest.approx(1 - 118_256 / 589_824, abs=2e-4)
    kw = {"dtype": "fp8", "kv_dtype": "fp8", "input_len": 8192, "output_len": 1024}
    r = serve("llama-3.1-70b", "gh200", concurrency=64, **kw)
    # all 64 run (the time average: with identical lengths each waits its request overhead, 0.05 s
    # of a period of over 30 s, before it runs, as in the event simulator)
    assert r.rows[0]["mean_batch"] == pytest.approx(64, rel=2e-3)
    # reading 78 % of the KV cache over NVLink-C2C makes a step slower than 8 requests in HBM
    assert r.rows[0]["tpot_ms"] > serve("llama-3.1-70b", "gh200", concurrency=8, **kw).rows[0]["tpot_ms"]


def test_kimi_k2_is_served_on_gb200_as_predict_runs_it(cli) -> None:
    code, out, err = cli("serve", "-m", "kimi-k2", "-H", "gb200-nvl72", "--tp", "8", "--input", "256",
                         "--output", "16", "--concurrency", "4", "--json")
    assert code == 0, err


def test_a_sweeps_serving_columns_place_the_kv_cache_as_serve_does() -> None:
    """The serving: block at concurrency 64 of 8,192 + 1,024 tokens on one gh200: the KV cache
    extends into LPDDR in both (589,824 tokens), and the sweep's columns agree with serve (the
    same step-cost grid; before, the sweep counted HBM only: about 15 requests running, the rest
    queued)."""
    data = {"name": "t", "hardware": "gh200", "model": "llama-3.1-70b",
            "workload": {"input_len": 8192, "output_len": 1024, "dtype": "fp8", "kv_dtype": "fp8"},
            "parallelism": {"tp": 1}, "serving": {"concurrency": 64}}
    spec = sweep_from_dict(data, "t.yaml")
    rows = evaluate_rows(spec, next(iter(spec.structural_combinations())), spec.hardware_grid())
    ref = serve("llama-3.1-70b", "gh200", dtype="fp8", kv_dtype="fp8", input_len=8192, output_len=1024,
                concurrency=64).rows[0]
    assert float(rows["serving_mean_batch"][0]) == pytest.approx(ref["mean_batch"], rel=1e-9)
    assert ref["mean_batch"] == pytest.approx(64, rel=2e-3)  # all run (less the request overhead's wait)
    assert float(rows["serving_tpot_ms"][0]) == pytest.approx(ref["tpot_ms"], rel=2e-3)
    assert float(rows["serving_ttft_ms"][0]) == pytest.approx(ref["ttft_ms"], rel=2e-3)


def test_place_blocks_takes_one_kv_size_per_configuration() -> None:
    """placement.py's example per configuration: 96 GiB of HBM, 10 GiB of weights, 2 GiB of
    activations; a 100 GiB KV cache puts 84 GiB in HBM and 16 in LPDDR (0.16), a 50 GiB one none."""
    from roofline.hardware import load_hardware
    from roofline.placement import place_blocks
    from roofline.timing import HardwareArrays

    gib = 2**30
    hw = HardwareArrays.from_spec(load_hardware("gh200"), 2)
    placed = place_blocks(hw, 10 * gib, np.array([100.0, 50.0]) * gib, 2 * gib)
    assert placed.kv_tier_fraction[:, 0] == pytest.approx([0.16, 0.0])
    assert placed.weight_tier_fraction[:, 0] == pytest.approx([0.0, 0.0])
    one = place_blocks(hw, 10 * gib, 100.0 * gib, 2 * gib)  # a scalar size, as predict passes it
    assert one.kv_tier_fraction[:, 0] == pytest.approx([0.16, 0.16])


def test_disaggregated_pools_refuse_a_request_longer_than_their_kv_cache(cli, tmp_path: Path) -> None:
    """The decode instance holds the whole request: an H100 spec with 12 GiB of HBM (a YAML file:
    pools take no hardware overrides) holds 32,736 tokens there too."""
    import yaml

    data = yaml.safe_load((Path(__file__).resolve().parents[1] / "hardware_specs" / "h100-sxm.yaml").read_text())
    data["memory"]["hbm_capacity_GiB"] = {"value": 12, "estimate": "test: a small HBM"}
    device = tmp_path / "h100-12g.yaml"
    device.write_text(yaml.safe_dump(data | {"name": "h100-12g"}))
    base = ("serve", "-m", "llama-3.1-8b", "-H", str(device), "--dtype", "fp8", "--prefill", "tp=1",
            "--decode", "tp=1", "--output", "64", "--concurrency", "1")
    one_line_error(cli(*base, "--input", str(CAP - 63)), "--input/--output (decode instance): a request of 32,673",
                   "32,736 tokens")
    code, _, err = cli(*base, "--input", str(CAP - 64), "--json")
    assert code == 0, err
