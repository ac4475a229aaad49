"""Number formats: bytes with block scales, the GEMM unit, mixed precision and HF quantization configs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import roofline
from roofline.dtypes import DTYPES, PEAK_UNITS, bytes_per_element, gemm_unit
from roofline.exceptions import InfeasibleConfigError, SpecError
from roofline.graph import OpTable, build_phase, weight_params_by_class, weight_params_per_device
from roofline.hardware import load_hardware
from roofline.model import list_models, load_model
from roofline.predict import memory_per_device
from roofline.quantization import parse_quantization_config
from roofline.sweepfile import sweep_from_dict
from roofline.timing import HardwareArrays, op_times
from roofline.workload import (
    ACTIVATION_DTYPES,
    OP_CLASSES,
    WEIGHT_DTYPES,
    Parallelism,
    Workload,
    op_class,
    parse_op_dtypes,
)
from tests.conftest import needs_data
from tests.test_cli import cli  # noqa: F401 (the fixture that runs the real entry point)

# ---- bytes per element, block scales included --------------------------------------------------


def test_nvfp4_and_mxfp4_bytes_per_weight_include_the_scales() -> None:
    # NVFP4: 4-bit E2M1 values + one 8-bit E4M3 scale per 16 elements = 4 + 8/16 = 4.5 bits
    assert bytes_per_element("nvfp4") == pytest.approx(4.5 / 8) == 0.5625
    # MXFP4: 4-bit values + one 8-bit E8M0 scale per 32 elements = 4 + 8/32 = 4.25 bits
    assert bytes_per_element("mxfp4") == pytest.approx(4.25 / 8) == 0.53125
    # MXFP6: 6 + 8/32 = 6.25 bits; MXFP8: 8 + 8/32 = 8.25 bits
    assert bytes_per_element("mxfp6") == pytest.approx(6.25 / 8)
    assert bytes_per_element("mxfp8") == pytest.approx(8.25 / 8)
    assert bytes_per_element("fp8") == 1.0 and bytes_per_element("bf16") == 2.0


def test_nvfp4_weights_of_a_dense_model_take_4_5_bits_each_in_memory() -> None:
    m = load_model("llama-3.1-8b")
    par = Parallelism()
    w = Workload.with_dtype("nvfp4", batch=1, input_len=128, output_len=8)
    mem = memory_per_device(m, w, par, 1e12)
    # all in NVFP4 (the head and the embedding too: lm_head_dtype "same", op_dtypes embedding=nvfp4): 4.5 bits
    # per weight
    every = Workload.with_dtype("nvfp4", lm_head_dtype="same", op_dtypes="embedding=nvfp4", batch=1, input_len=128,
                                output_len=8)
    assert memory_per_device(m, every, par, 1e12).weights_bytes == pytest.approx(
        weight_params_per_device(m, par) * 4.5 / 8)
    # by default the head and the embedding (128,256 x 4,096 = 525,336,576 weights each) stay in bf16, as the
    # checkpoints ship them: 2 x 525,336,576 x (2 - 0.5625) = 1,510,342,656 bytes more
    table = 128_256 * 4_096
    assert mem.weights_bytes == pytest.approx((weight_params_per_device(m, par) - 2 * table) * 4.5 / 8 + 2 * table * 2)
    assert mem.weights_bytes - weight_params_per_device(m, par) * 4.5 / 8 == pytest.approx(1_510_342_656)
    # the KV cache defaults to FP8 under FP4 activations: 1 byte per element
    assert w.kv == "fp8"
    assert mem.kv_cache_bytes == pytest.approx(m.kv_elements_per_token() * 1.0 * (128 + 8))


def test_fp4_kv_cache_counts_its_scales() -> None:
    m = load_model("llama-3.1-8b")
    w = Workload.with_dtype("fp8", kv_dtype="nvfp4", batch=2, input_len=100, output_len=28)
    mem = memory_per_device(m, w, Parallelism(), 1e12)
    # 32 layers x 2 (K, V) x 8 KV heads x 128 = 65,536 elements per token, 4.5 bits each
    assert mem.kv_cache_bytes == pytest.approx(65_536 * 0.5625 * 2 * 128)


# ---- which matrix unit a GEMM uses -------------------------------------------------------------


@pytest.mark.parametrize(("weight", "act", "unit"), [
    ("nvfp4", "nvfp4", "fp4"),  # W4A4 on the FP4 tensor cores
    ("mxfp4", "bf16", "bf16"),  # gpt-oss on H100: MXFP4 weights dequantised for a bf16 GEMM
    ("mxfp4", "fp8", "fp8"),  # W4A8 on the FP8 unit
    ("int4", "bf16", "bf16"),
    ("bf16", "fp8", "bf16"),  # the wider operand sets the unit
    ("mxfp6", "mxfp6", "fp6"),
    ("fp8", "fp8", "fp8"),
])
def test_gemm_runs_on_the_wider_operands_unit(weight: str, act: str, unit: str) -> None:
    assert gemm_unit(weight, act) == unit


@given(st.sampled_from(WEIGHT_DTYPES), st.sampled_from(WEIGHT_DTYPES), st.sampled_from(ACTIVATION_DTYPES))
def test_decode_gemm_time_grows_with_weight_bits(w1: str, w2: str, act: str) -> None:
    # a memory-bound decode GEMM reads n x k weights at bits_per_element each
    hw = HardwareArrays.from_spec(load_hardware("b200"))
    t1, t2 = (op_times(_one_gemm(1, 4096, 4096, w, act), hw).memory_s[0, 0] for w in (w1, w2))
    b1, b2 = DTYPES[w1].bits_per_element, DTYPES[w2].bits_per_element
    assert (t1 <= t2) == (b1 <= b2) or b1 == b2
    assert gemm_unit(w1, act) in PEAK_UNITS


def _one_gemm(m: float, n: float, k: float, weight: str, act: str) -> OpTable:
    """A table of one GEMM [m, k] x [k, n] (weights n x k)."""
    one, zero = np.ones(1), np.zeros(1)
    return OpTable(
        phase="prefill", names=("gemm",), kinds=("gemm",), count=one, stage_count=one, m=np.array([m]),
        flops=np.array([2.0 * m * n * k]), flops_per_kv=zero,
        weight_bytes=np.array([n * k * bytes_per_element(weight)]), kv_read_bytes=zero, kv_read_per_kv=zero,
        kv_write_bytes=zero, act_bytes=np.array([(m * k + m * n) * bytes_per_element(act)]),
        dtypes=(gemm_unit(weight, act),), collectives=("",), comm_bytes=zero, group=one,
        is_matrix=np.array([True]), is_comm=np.array([False]))


def test_fp4_gemm_on_b200_runs_at_the_dense_fp4_peak() -> None:
    # m = n = k = 8192 in NVFP4: 2 * 8192^3 = 1.0995e12 FLOP at the dense FP4 peak 9,000 TFLOPS
    # (18 PF sparse / 2) x gemm_efficiency 0.78 = 7.02e15 FLOP/s -> 156.6 us, plus 3.5 us launch.
    # Memory: (8192^2 weights + 2 x 8192^2 activations) x 0.5625 B = 113.2 MB at 7.7 TB/s x 0.85
    # = 6.545e12 B/s -> 17.3 us, so the GEMM is compute bound.
    hw = HardwareArrays.from_spec(load_hardware("b200"))
    t = op_times(_one_gemm(8192, 8192, 8192, "nvfp4", "nvfp4"), hw)
    flops = 2 * 8192**3
    assert t.compute_s[0, 0] == pytest.approx(flops / (9000e12 * 0.78))
    assert t.memory_s[0, 0] == pytest.approx(3 * 8192**2 * 0.5625 / (7700e9 * 0.85))
    assert t.total_s[0, 0] == pytest.approx(156.62e-6 + 3.5e-6, rel=1e-4)
    # the same GEMM in FP8 takes twice the compute time (4,500 TFLOPS dense)
    t8 = op_times(_one_gemm(8192, 8192, 8192, "fp8", "fp8"), hw)
    assert t8.compute_s[0, 0] == pytest.approx(2 * t.compute_s[0, 0])


def test_weight_only_mxfp4_on_h100_reads_4_25_bits_and_computes_in_bf16() -> None:
    hw = HardwareArrays.from_spec(load_hardware("h100-sxm"))
    # decode GEMM m = 1, n = k = 8192: weights 8192^2 x 0.53125 B = 35.65 MB at 3.35 TB/s x 0.84
    t = op_times(_one_gemm(1, 8192, 8192, "mxfp4", "bf16"), hw)
    weights = 8192**2 * 0.53125
    acts = 2 * 8192 * 2.0
    assert t.memory_s[0, 0] == pytest.approx((weights + acts) / (3350e9 * 0.84))
    # compute at the bf16 peak: 2 x 8192^2 / (989.4e12 x 0.80)
    assert t.compute_s[0, 0] == pytest.approx(2 * 8192**2 / (989.4e12 * 0.80))


def test_fp4_compute_on_a_device_without_it_is_refused_with_the_weight_only_hint() -> None:
    with pytest.raises(SpecError, match=r"no fp4 compute.*mxfp4:bf16"):
        roofline.predict("llama-3.1-8b", "h100-sxm", dtype="nvfp4", input_len=64, output_len=4)
    p = roofline.predict("llama-3.1-8b", "h100-sxm", dtype="mxfp4:bf16", input_len=64, output_len=4)
    assert p.workload.weight_dtype == "mxfp4" and p.workload.activation_dtype == "bf16"


def test_fp6_runs_where_the_device_has_it() -> None:
    p = roofline.predict("llama-3.1-8b", "mi355x", dtype="mxfp6", input_len=64, output_len=4)
    assert p.tpot_s > 0
    with pytest.raises(SpecError, match="no fp6 compute"):
        roofline.predict("llama-3.1-8b", "mi300x", dtype="mxfp6", input_len=64, output_len=4)


# ---- mixed precision per operator class --------------------------------------------------------


def test_op_dtypes_parse_and_reject_bad_input() -> None:
    assert parse_op_dtypes("experts=nvfp4, attention=fp8:bf16") == (
        ("attention", "fp8", "bf16"), ("experts", "nvfp4", "nvfp4"))
    assert parse_op_dtypes({"experts": "int4"}) == (("experts", "int4", "bf16"),)
    with pytest.raises(SpecError, match="op_dtypes class: 'expert'"):
        parse_op_dtypes("expert=nvfp4")
    with pytest.raises(SpecError, match="is not CLASS=DTYPE"):
        parse_op_dtypes("experts")
    with pytest.raises(SpecError, match="'fp3' is not allowed"):
        parse_op_dtypes("experts=fp3")


def test_experts_in_fp4_attention_in_fp8_sets_each_gemms_unit_and_bytes() -> None:
    m = load_model("mixtral-8x7b")
    w = Workload(batch=4, input_len=256, output_len=8, op_dtypes=parse_op_dtypes("experts=nvfp4,attention=fp8"))
    t = build_phase(m, w, Parallelism(), "decode")
    unit = dict(zip(t.names, t.dtypes))
    assert unit["expert_gate_up_proj"] == "fp4" and unit["qkv_proj"] == "fp8" and unit["lm_head"] == "bf16"
    assert unit["attention"] == "fp8"  # FP8 attention under FP8 activations
    i = t.names.index("qkv_proj")
    h, q, kv = m.hidden_size, m.q_dim, m.kv_dim
    assert t.weight_bytes[i] == pytest.approx(h * (q + 2 * kv) * 1.0)  # fp8: 1 byte per weight
    # memory: experts at 4.5 bits, attention at 8, the rest (embedding, head, router) at 16
    by_class = weight_params_by_class(m, Parallelism())
    mem = memory_per_device(m, w, Parallelism(), 1e12)
    expected = (by_class["experts"] * 0.5625 + by_class["attention"] * 1.0
                + sum(v for k, v in by_class.items() if k not in ("experts", "attention")) * 2.0)
    assert mem.weights_bytes == pytest.approx(expected)


def test_each_fp4_gemm_input_is_quantized_by_a_kernel_of_its_own() -> None:
    # Llama-3.1-70B decode, 4 sequences, TP 2, NVFP4 with the head in bf16: a quantize kernel before
    # each of the 4 GEMMs of a layer (80 layers), none before the bf16 head
    m = load_model("llama-3.1-70b")
    w = Workload.with_dtype("nvfp4", op_dtypes="lm_head=bf16", batch=4)
    t = build_phase(m, w, Parallelism(tp=2), "decode")
    quant = [(n, c) for n, c in zip(t.names, t.count) if n.endswith("_act_quant")]
    assert quant == [(g + "_act_quant", 80.0) for g in ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")]
    # the down projection's input: 4 tokens x 28,672 / 2 = 57,344 values read in bf16 (2 B) and
    # written as E2M1 with an FP8 scale per 16 (0.5625 B): 57,344 x 2.5625 = 146,944 bytes
    i = t.names.index("down_proj_act_quant")
    assert t.act_bytes[i] == pytest.approx(146_944.0)
    assert t.weight_bytes[i] == 0.0 and t.kinds[i] == "vector"
    # on the B200 datasheet it costs its launch (3.5 us) plus 146,944 B / (7.7 TB/s x 0.85) = 22.5 ns
    hw = HardwareArrays.from_spec(load_hardware("b200"))
    assert op_times(t, hw).total_s[i, 0] == pytest.approx(3.5e-6 + 146_944 / (7700e9 * 0.85))
    # per-tensor fp8 inputs and weight-only formats (bf16 activations) get none
    for dtype in ("fp8", "nvfp4:bf16", "mxfp4:bf16", "bf16"):
        names = build_phase(m, Workload.with_dtype(dtype, batch=4), Parallelism(tp=2), "decode").names
        assert not any(n.endswith("_act_quant") for n in names), dtype
    # MX activations are block-scaled too (one E8M0 scale per 32 values): the 4 of the layer, and the
    # head's when the head is in MXFP8 too (by default it stays bf16, as the checkpoints ship it)
    for head, kernels in ((None, 4), ("same", 5)):
        mx = build_phase(m, Workload.with_dtype("mxfp8", lm_head_dtype=head, batch=4), Parallelism(tp=2), "decode")
        assert sum(n.endswith("_act_quant") for n in mx.names) == kernels


# ---- Hugging Face quantization_config ----------------------------------------------------------

GPT_OSS = {"quant_method": "mxfp4", "modules_to_not_convert": [
    "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]}


def test_gpt_oss_mxfp4_config_is_weight_only_experts() -> None:
    q = parse_quantization_config(GPT_OSS)
    assert (q.weight_dtype, q.activation_dtype) == ("mxfp4", "bf16")
    assert {c for c, _, _ in q.op_dtypes} == {"attention", "router", "embedding", "lm_head"}


@pytest.mark.parametrize(("cfg", "expected"), [
    ({"quant_method": "modelopt", "quant_algo": "NVFP4", "kv_cache_quant_algo": "FP8",
      "exclude_modules": ["lm_head"]}, ("nvfp4", "nvfp4", "fp8", ("lm_head",))),
    ({"quant_method": "fp8", "activation_scheme": "dynamic", "weight_block_size": [128, 128]},
     ("fp8", "fp8", None, ())),
    ({"quant_method": "compressed-tensors", "config_groups": {"group_0": {
        "weights": {"num_bits": 4, "type": "float", "group_size": 16},
        "input_activations": {"num_bits": 4, "type": "float", "group_size": 16}, "targets": ["Linear"]}},
      "ignore": ["lm_head"]}, ("nvfp4", "nvfp4", None, ("lm_head",))),
    ({"quant_method": "compressed-tensors", "config_groups": {"g": {
        "weights": {"num_bits": 4, "type": "int", "group_size": 128}, "input_activations": None}},
      "kv_cache_scheme": {"num_bits": 8, "type": "float"}}, ("int4", "bf16", "fp8", ())),
    ({"quant_method": "awq", "bits": 4}, ("int4", "bf16", None, ())),
])
def test_quantization_configs(cfg: dict, expected: tuple) -> None:
    q = parse_quantization_config(cfg)
    assert (q.weight_dtype, q.activation_dtype, q.kv_dtype, tuple(c for c, _, _ in q.op_dtypes)) == expected


@pytest.mark.parametrize(("cfg", "message"), [
    ({"quant_method": "bitsandbytes"}, r"quantization_config\.quant_method: 'bitsandbytes' is not supported"),
    ({"quant_method": "modelopt", "quant_algo": "W4A8_AWQ"}, r"quant_algo: 'W4A8_AWQ' is not supported"),
    ({"quant_method": "awq", "bits": 3}, r"bits: 3 is not supported"),
    ("fp8", "expected a mapping"),
])
def test_unsupported_quantization_configs_name_the_field(cfg: object, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_quantization_config(cfg, "config.json")


def test_a_quantized_hf_config_sets_the_default_precision(tmp_path: Path) -> None:
    cfg = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
           "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256,
           "quantization_config": {"quant_method": "modelopt", "quant_algo": "NVFP4", "kv_cache_quant_algo": "FP8",
                                   "exclude_modules": ["lm_head"]}}
    path = tmp_path / "Llama-FP4" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(cfg))
    p = roofline.predict(str(path), "b200", input_len=64, output_len=4)
    w = p.workload
    assert (w.weight_dtype, w.activation_dtype, w.kv) == ("nvfp4", "nvfp4", "fp8")
    assert w.precision("lm_head") == ("bf16", "bf16")
    # an explicit dtype wins over the checkpoint's
    assert roofline.predict(str(path), "b200", dtype="bf16", input_len=64, output_len=4).workload.weight_dtype == "bf16"


# ---- CLI and sweep files -----------------------------------------------------------------------


def test_cli_dtype_options_and_their_bad_input(cli) -> None:  # noqa: F811
    ok = cli("predict", "-m", "mixtral-8x7b", "-H", "b200", "--op-dtype", "experts=nvfp4",
             "--op-dtype", "attention=fp8", "--input", "64", "--output", "4", "--json")
    assert ok.exit_code == 0, ok.stderr
    assert json.loads(ok.stdout)["workload"]["op_dtypes"] == [["attention", "fp8", "fp8"],
                                                             ["experts", "nvfp4", "nvfp4"]]
    for args, message in ((("--dtype", "fp5"), "dtype weights: 'fp5' is not allowed"),
                          (("--kv-dtype", "fp5"), "kv_dtype: 'fp5' is not allowed"),
                          (("--op-dtype", "experts"), "is not CLASS=DTYPE"),
                          (("--dtype", "nvfp4"), "no fp4 compute"),
                          # the class's precision, not --dtype's: the error named only --dtype
                          (("--op-dtype", "mlp=nvfp4"), "no fp4 compute (it supports bf16, fp16, fp8, int8); "
                                                        "choose another --dtype or --op-dtype")):
        bad = cli("predict", "-m", "llama-3.1-8b", "-H", "h100-sxm", *args)
        assert bad.exit_code == 2
        assert message in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_serve_takes_op_dtypes_and_refuses_them_where_it_cannot_apply_them(cli) -> None:  # noqa: F811
    args = ("serve", "-m", "mixtral-8x7b", "-H", "b200", "--input", "256", "--output", "16", "--concurrency", "4",
            "--json")
    base = json.loads(cli(*args).stdout)
    mixed = cli(*args, "--op-dtype", "experts=nvfp4", "--op-dtype", "attention=fp8")
    assert mixed.exit_code == 0, mixed.stderr
    out = json.loads(mixed.stdout)
    assert out["summary"]["op_dtypes"] == [["attention", "fp8", "fp8"], ["experts", "nvfp4", "nvfp4"]]
    assert base["summary"]["op_dtypes"] == []
    # experts at 4.5 bits instead of 16 free HBM for KV cache and read fewer bytes per decode step
    assert out["summary"]["kv_capacity_tokens"] > base["summary"]["kv_capacity_tokens"]
    assert out["rows"][0]["tpot_ms"] < base["rows"][0]["tpot_ms"]
    bad = cli(*args, "--op-dtype", "moe=nvfp4")
    assert bad.exit_code == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "op_dtypes class: 'moe'" in bad.stderr


def test_disaggregated_serve_takes_op_dtypes(cli) -> None:  # noqa: F811
    """Both disaggregated paths (fixed pools and the sizing search) apply --op-dtype, as serve does."""
    fixed = ("serve", "-m", "mixtral-8x7b", "-H", "b200", "--prefill", "tp=2", "--decode", "tp=2", "--input", "256",
             "--output", "16", "--concurrency", "4", "--json")
    base, mixed = (cli(*fixed, *extra) for extra in ((), ("--op-dtype", "experts=nvfp4")))
    assert mixed.exit_code == 0, mixed.stderr
    b, m = json.loads(base.stdout), json.loads(mixed.stdout)
    assert b["summary"]["op_dtypes"] == [] and m["summary"]["op_dtypes"] == [["experts", "nvfp4", "nvfp4"]]
    assert m["rows"][0]["tpot_ms"] < b["rows"][0]["tpot_ms"]  # experts read at 4.5 bits instead of 16
    search = ("serve", "-m", "mixtral-8x7b", "-H", "b200", "--disagg", "--max-devices", "4", "--input", "256",
              "--output", "16", "--json")
    base, mixed = (cli(*search, *extra) for extra in ((), ("--op-dtype", "experts=nvfp4")))
    assert mixed.exit_code == 0, mixed.stderr
    best = [json.loads(r.stdout)["summary"]["top_agg"][0]["goodput_tok_s_per_device"] for r in (base, mixed)]
    assert best[1] > best[0]
    # the search's summary says which precision it ran, as serve's does (it said none)
    summaries = [json.loads(r.stdout)["summary"] for r in (base, mixed)]
    assert [s["op_dtypes"] for s in summaries] == [[], [["experts", "nvfp4", "nvfp4"]]]
    assert [(s["dtype"], s["kv_dtype"], s["kv_admission"]) for s in summaries] == [("bf16", "bf16", "on_demand")] * 2


def test_sweep_file_op_dtypes() -> None:
    base = {"hardware": "b200", "model": "mixtral-8x7b"}
    spec = sweep_from_dict({**base, "workload": {"op_dtypes": {"experts": "nvfp4"}}}, "s.yaml")
    assert spec.fixed["op_dtypes"] == (("experts", "nvfp4", "nvfp4"),)
    with pytest.raises(SpecError, match=r"s\.yaml: workload\.op_dtypes: op_dtypes class: 'moe'"):
        sweep_from_dict({**base, "workload": {"op_dtypes": {"moe": "nvfp4"}}}, "s.yaml")


# ---- an operator class the model does not have ------------------------------------------------


@pytest.mark.parametrize("name", list_models())
def test_a_models_op_classes_are_the_classes_its_graph_holds_weights_of(name: str) -> None:
    model = load_model(name)
    table = build_phase(model, Workload(input_len=16, output_len=2), Parallelism(), "prefill")
    in_graph = {op_class(n) for n, wb in zip(table.names, table.weight_bytes) if wb > 0}
    assert set(model.op_classes()) == in_graph
    assert model.op_classes() == tuple(c for c in OP_CLASSES if c in in_graph)  # in OP_CLASSES' order


def test_op_classes_of_dense_moe_and_mixed_models() -> None:
    assert load_model("llama-3.1-70b").op_classes() == ("attention", "mlp", "embedding", "lm_head")
    # gpt-oss: every layer MoE, no shared expert; DeepSeek-V3: 3 dense layers first, one shared expert
    assert load_model("gpt-oss-120b").op_classes() == ("attention", "experts", "router", "embedding", "lm_head")
    assert load_model("deepseek-v3").op_classes() == OP_CLASSES


@pytest.mark.parametrize(("model", "op_dtypes", "message"), [
    ("llama-3.1-70b", "experts=fp8", "op_dtypes: experts=fp8: llama-3.1-70b has no experts (a dense model); "
                                     "its operator classes: attention, mlp, embedding, lm_head"),
    ("llama-3.1-70b", "router=bf16", "llama-3.1-70b has no router (a dense model)"),
    ("gpt-oss-120b", "shared_experts=fp8", "gpt-oss-120b has no shared_experts (its MoE layers have routed experts "
                                           "only); its operator classes: attention, experts, router, embedding, lm_head"),
    ("gpt-oss-120b", "mlp=int4", "op_dtypes: mlp=int4: gpt-oss-120b has no mlp (every layer is a MoE layer)"),
])
def test_an_op_dtype_for_a_class_the_model_lacks_is_refused(model: str, op_dtypes: str, message: str) -> None:
    """It changed nothing but the title ("bf16 (experts fp8)" for a dense model); every path refuses it:
    Workload.for_model (predict, serve, sweeps) and a Workload built field by field (build_phase)."""
    m = load_model(model)
    with pytest.raises(InfeasibleConfigError, match=re.escape(message)):
        Workload.for_model(m, op_dtypes=op_dtypes)
    with pytest.raises(InfeasibleConfigError, match=re.escape(message)):
        build_phase(m, Workload(op_dtypes=parse_op_dtypes(op_dtypes)), Parallelism(), "decode")
    with pytest.raises(InfeasibleConfigError, match=re.escape(message)):
        roofline.predict(model, "h100-sxm", op_dtypes=op_dtypes, tp=8, input_len=64, output_len=4)


def test_the_classes_a_model_has_are_taken() -> None:
    # DeepSeek-V3's first 3 layers are dense: it has an mlp, and shared experts
    w = Workload.for_model(load_model("deepseek-v3"), op_dtypes="mlp=bf16,shared_experts=bf16")
    assert ("mlp", "bf16", "bf16") in w.op_dtypes and ("shared_experts", "bf16", "bf16") in w.op_dtypes
    # the checkpoint defaults every model gets (embedding and head in bf16 under fp8) stay
    assert Workload.for_model(load_model("llama-3.1-8b"), "fp8").op_dtypes_spec == "embedding=bf16:bf16,lm_head=bf16:bf16"


def test_a_checkpoint_default_for_a_class_the_model_lacks_is_ignored(tmp_path: Path) -> None:
    """A checkpoint's excluded ``mlp`` maps to mlp and shared_experts (roofline.quantization): on a
    dense model the shared experts' part does not apply and is dropped, not refused."""
    cfg = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
           "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256,
           "quantization_config": {"quant_method": "modelopt", "quant_algo": "FP8",
                                   "exclude_modules": ["lm_head", "model.layers.0.mlp"]}}
    path = tmp_path / "Llama-FP8" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(cfg))
    w = roofline.predict(str(path), "h100-sxm", input_len=64, output_len=4).workload
    assert [c for c, _, _ in w.op_dtypes] == ["embedding", "lm_head", "mlp"]


def test_cli_refuses_an_op_dtype_class_the_model_lacks_in_one_line(cli) -> None:  # noqa: F811
    for command, extra in (("predict", ()), ("serve", ("--concurrency", "4"))):
        bad = cli(command, "-m", "llama-3.1-70b", "-H", "h100-sxm", "--tp", "4", "--op-dtype", "experts=fp8",
                  "--input", "64", "--output", "4", *extra)
        assert bad.exit_code == 2, (command, bad.stdout)
        assert bad.stderr.strip().splitlines() == [
            "error: workload: op_dtypes: experts=fp8: llama-3.1-70b has no experts (a dense model); "
            "its operator classes: attention, mlp, embedding, lm_head"]


def test_a_sweep_skips_the_models_an_op_dtype_class_does_not_apply_to(tmp_path: Path) -> None:
    from roofline.sweep import run_sweep

    base = {"hardware": "h100-sxm", "workload": {"input_len": 64, "output_len": 4, "op_dtypes": {"experts": "fp8"}},
            "parallelism": {"tp": 2}, "sweep": {"hbm_bandwidth_GBps": [2000, 3000]}}
    with pytest.raises(InfeasibleConfigError, match=r"s\.yaml: no feasible combination.*llama-3.1-8b has no experts"):
        run_sweep(sweep_from_dict({**base, "model": "llama-3.1-8b"}, "s.yaml"), tmp_path / "a")
    result = run_sweep(sweep_from_dict({**base, "model": ["llama-3.1-8b", "mixtral-8x7b"]}, "s.yaml"), tmp_path / "b")
    assert result.rows == 2 and len(result.skipped) == 1 and "llama-3.1-8b has no experts" in result.skipped[0]


# ---- measured: B200 FP4 against FP8 (aiconfigurator e2e rows; nothing fitted) ------------------


@needs_data
def test_nvfp4_predicts_the_measured_fp4_over_fp8_tpot_ratio_on_b200() -> None:
    from benchmarks.check_fp4_b200 import ratio_rows, tpot_rows

    rows = tpot_rows()
    nvfp4, old = (ratio_rows(rows, reading)["error_pct"].abs().mean() for reading in ("nvfp4", "int4/fp8"))
    # 132 matched pairs: NVFP4 with its scales on the FP4 peak and its activation quantize kernels
    # 6.2% (12.1% without the kernels), 4-bit weights on FP8 GEMMs 13.9%
    assert nvfp4 < old
    assert nvfp4 < 8.0


@needs_data
def test_gpt_oss_mxfp4_experts_on_hopper_beat_reading_the_weights_as_bf16() -> None:
    from benchmarks.check_gpt_oss_mxfp4 import tpot_rows

    mape = tpot_rows().groupby("precision")["error_pct"].apply(lambda e: e.abs().mean())
    # 107 inferencex points on the bundled gpt-oss-120b (sliding-window layers, sinks): 32.9% with
    # the checkpoint's MXFP4 experts, 53.2% all in bf16 (a static batch misses the serving overheads)
    assert mape["mxfp4 experts"] < mape["bf16"]
    assert mape["mxfp4 experts"] < 34.0
