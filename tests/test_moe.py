"""Mixture of experts: parameter counts, distinct experts, expert parallelism, MoE prefetch, HF configs."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

import roofline
from roofline.evaluate import evaluate_pass
from roofline.exceptions import InfeasibleConfigError, SpecError
from roofline.graph import build_phase
from roofline.model import HF_ARCHITECTURES, ModelSpec
from roofline.moe import (
    ExpertLayout,
    expected_distinct_experts,
    inclusion_probabilities,
    sample_distinct_experts,
    uniform_distinct_experts,
)
from roofline.predict import decode_kv_range
from roofline.timing import HardwareArrays
from roofline.workload import Parallelism, Workload

from .conftest import FIXTURES, PROJECT

MOE_MODELS = ["mixtral-8x7b", "mixtral-8x22b", "deepseek-v3", "qwen3-30b-a3b", "llama-4-scout-17b-16e"]


def _op(table, name):
    return table.names.index(name)


# ---- parameter counts ---------------------------------------------------------------------

@pytest.mark.parametrize(("name", "total", "active"), [
    ("deepseek-v3", 671e9, 37e9),  # DeepSeek-V3 report (arXiv 2412.19437): 671B total, 37B activated
    ("mixtral-8x7b", 46.7e9, 12.9e9),  # Mixtral paper (arXiv 2401.04088): 46.7B total, 12.9B active
    ("mixtral-8x22b", 141e9, 39e9),  # Mistral AI announcement: 141B total, 39B active
    ("qwen3-30b-a3b", 30.5e9, 3.3e9),  # Qwen3 report (arXiv 2505.09388): 30.5B total, 3.3B activated
    ("llama-4-scout-17b-16e", 109e9, 17e9),  # Meta model card: 17B active, 109B total (with vision)
])
def test_total_and_active_parameters_match_the_published(name: str, total: float, active: float) -> None:
    m = roofline.load_model(name)
    assert m.total_params() == pytest.approx(total, rel=0.02)
    assert m.active_params() == pytest.approx(active, rel=0.02)


def test_dense_model_has_equal_total_and_active() -> None:
    m = roofline.load_model("qwen3-32b")
    assert m.moe is None
    assert m.total_params() == m.active_params() == pytest.approx(32.8e9, rel=0.01)  # Qwen3 report: 32.8B


def test_moe_layer_placement() -> None:
    ds = roofline.load_model("deepseek-v3")
    assert [ds.is_moe_layer(i) for i in range(5)] == [False, False, False, True, True]
    assert ds.num_moe_layers() == 58
    # Llama-4-Maverick-style interleaving: every second layer is MoE (layers 1, 3, 5, ...)
    inter = _spec(num_layers=8, moe={"num_experts": 4, "experts_per_token": 1, "expert_intermediate_size": 64,
                                     "moe_layer_interval": 2})
    assert [inter.is_moe_layer(i) for i in range(8)] == [False, True] * 4


def _spec(**over) -> ModelSpec:
    base = {"name": "toy", "hidden_size": 64, "num_layers": 4, "num_attention_heads": 4, "num_kv_heads": 2,
            "intermediate_size": 256, "vocab_size": 1000}
    return ModelSpec.from_dict({**base, **over})


def test_bad_moe_blocks_are_spec_errors() -> None:
    with pytest.raises(SpecError, match="experts_per_token: must be <= num_experts"):
        _spec(moe={"num_experts": 4, "experts_per_token": 5, "expert_intermediate_size": 64})
    with pytest.raises(SpecError, match="no layer is a MoE layer"):
        _spec(moe={"num_experts": 4, "experts_per_token": 1, "expert_intermediate_size": 64,
                   "first_dense_layers": 4})
    shared = _spec(moe={"num_experts": 4, "experts_per_token": 1, "expert_intermediate_size": 64,
                        "num_shared_experts": 1})
    assert shared.moe.shared_expert_intermediate_size == 64  # defaults to the routed width


# ---- expected distinct experts --------------------------------------------------------------

@pytest.mark.parametrize(("e", "k", "t"), [(8, 2, 1), (8, 2, 4), (256, 8, 1), (256, 8, 64), (128, 8, 1000), (16, 1, 3)])
def test_distinct_experts_closed_form(e: int, k: int, t: int) -> None:
    closed = e * (1 - (1 - k / e) ** t)
    assert uniform_distinct_experts(e, k, t) == pytest.approx(closed, rel=1e-12)
    assert expected_distinct_experts(e, k, t) == pytest.approx(closed, rel=1e-12)
    # skew 1e-12 goes through the per-expert sum: same number
    assert expected_distinct_experts(e, k, t, skew=1e-12) == pytest.approx(closed, rel=1e-9)


def test_distinct_experts_limits_and_broadcasting() -> None:
    assert uniform_distinct_experts(8, 2, 1) == pytest.approx(2.0)  # one token: exactly top-k
    assert uniform_distinct_experts(8, 2, 0) == 0.0
    assert uniform_distinct_experts(256, 8, 10_000) == pytest.approx(256.0)  # prefill: every expert
    out = expected_distinct_experts(64, 4, np.array([[1, 2], [16, 256]]), skew=0.8)
    assert out.shape == (2, 2)
    assert np.all(np.diff(out.ravel()) > 0)


def test_distinct_experts_monte_carlo_uniform() -> None:
    """Every token picks k distinct experts uniformly at random (numpy RNG, fixed seed)."""
    rng = np.random.default_rng(12345)
    e, k, t, trials = 64, 6, 20, 4000
    picks = np.argpartition(rng.random((trials, t, e)), k, axis=-1)[..., :k]
    hit = np.zeros((trials, e), dtype=bool)
    hit[np.arange(trials)[:, None], picks.reshape(trials, -1)] = True
    distinct = hit.sum(axis=1)
    stderr = distinct.std() / np.sqrt(trials)
    assert abs(distinct.mean() - uniform_distinct_experts(e, k, t)) < 4 * stderr


@pytest.mark.parametrize("skew", [0.0, 0.7, 1.5])
def test_distinct_experts_monte_carlo_skewed(skew: float) -> None:
    e, k, t, trials = 32, 4, 12, 4000
    draws = sample_distinct_experts(e, k, t, skew, trials, np.random.default_rng(7))
    stderr = draws.std() / np.sqrt(trials)
    assert abs(draws.mean() - expected_distinct_experts(e, k, t, skew)) < 4 * stderr + 1e-9


def test_skew_concentrates_routing() -> None:
    q = inclusion_probabilities(16, 4, skew=2.0)
    assert q.sum() == pytest.approx(4.0)
    assert q.max() <= 1.0 and q[0] == 1.0  # the most popular expert saturates
    assert np.all(np.diff(q) <= 1e-15)
    d = [expected_distinct_experts(256, 8, 32, s) for s in (0.0, 0.5, 1.0, 2.0)]
    assert d == sorted(d, reverse=True)


# ---- operator graph -------------------------------------------------------------------------

def test_decode_reads_the_distinct_experts() -> None:
    m = roofline.load_model("mixtral-8x7b")
    h, inter = m.hidden_size, m.moe.expert_intermediate_size
    expert_bytes = 3 * h * inter * 2  # gate, up, down in bf16
    for batch in (1, 4, 64):
        t = build_phase(m, Workload(batch=batch, input_len=100, output_len=8), Parallelism(), "decode")
        read = t.weight_bytes[_op(t, "expert_gate_up_proj")] + t.weight_bytes[_op(t, "expert_down_proj")]
        assert read == pytest.approx(expert_bytes * 8 * (1 - (1 - 2 / 8) ** batch), rel=1e-12)
    # batch 1 reads exactly top-k = 2 experts
    t1 = build_phase(m, Workload(batch=1, input_len=100, output_len=8), Parallelism(), "decode")
    assert t1.weight_bytes[_op(t1, "expert_down_proj")] == pytest.approx(2 * h * inter * 2)


def test_expert_flops_are_tokens_times_top_k() -> None:
    m = roofline.load_model("deepseek-v3")
    h, inter, k = m.hidden_size, m.moe.expert_intermediate_size, m.moe.experts_per_token
    w = Workload(batch=2, input_len=300, output_len=8)
    per_device = []
    for par in (Parallelism(), Parallelism(tp=8), Parallelism(tp=8, ep=8), Parallelism(tp=2, ep=8, dp=4)):
        t = build_phase(m, w, par, "prefill")
        flops = t.flops[_op(t, "expert_gate_up_proj")] + t.flops[_op(t, "expert_down_proj")]
        per_device.append(flops * par.tp)  # the tokens of one attention replica are split tp ways
    # 600 tokens x 8 experts x 2 * 3 * h * inter FLOPs, however the experts are split (ep = 1);
    # with EP the step waits for the EP slot that receives the most rows (tests/test_moe_max.py):
    # the mean times expected max rows / mean rows, a few % above the mean at 600-2400 tokens
    mean = 600 * k * 2 * 3 * h * inter
    assert per_device[:2] == pytest.approx([mean] * 2, rel=1e-12)
    for got, (tp, ep) in zip(per_device[2:], ((8, 8), (2, 8))):
        lay = ExpertLayout(m.moe.num_experts, k, 600, tp, ep)
        assert got == pytest.approx(mean * lay.rows / lay.mean_rows, rel=1e-12)
        assert mean < got < 1.1 * mean


def test_layer_types_have_their_own_counts_and_segments() -> None:
    m = roofline.load_model("deepseek-v3")
    t = build_phase(m, Workload(batch=4, input_len=512, output_len=8), Parallelism(tp=8), "decode")
    assert t.count[_op(t, "dense.gate_up_proj")] == 3
    assert t.count[_op(t, "expert_gate_up_proj")] == 58
    assert t.count[_op(t, "dense.attention")] == 3 and t.count[_op(t, "attention")] == 58
    segs = {s.name: s for s in t.segments}
    assert set(segs) == {"dense_attention", "dense_mlp", "moe_attention", "moe_mlp", "head"}
    assert segs["dense_mlp"].count == 3 and segs["moe_mlp"].count == 58
    assert t.names[segs["moe_attention"].collective_op] == "mlp_allreduce"
    for seg in t.segments:  # segments never hold a collective and follow one
        assert t.is_comm[seg.collective_op] and not t.is_comm[list(seg.ops)].any()
    # every non-collective op of the layers is in exactly one segment
    in_segments = sorted(i for s in t.segments for i in s.ops)
    assert len(in_segments) == len(set(in_segments))


def test_pipeline_stage_counts_split_by_layer_type() -> None:
    m = roofline.load_model("deepseek-v3")
    t = build_phase(m, Workload(batch=4, input_len=512, output_len=8), Parallelism(tp=8, pp=2), "decode")
    stage = t.stage_count[_op(t, "dense.attention")] + t.stage_count[_op(t, "attention")]
    assert stage == pytest.approx(31)  # ceil(61 / 2) layers in the bottleneck stage


def test_expert_parallel_all_to_all() -> None:
    m = roofline.load_model("mixtral-8x7b")
    w = Workload(batch=16, input_len=100, output_len=8)
    dense_tp = build_phase(m, w, Parallelism(tp=8), "decode")
    assert "alltoall" not in dense_tp.collectives
    for tp, ep, dp in ((8, 8, 1), (2, 8, 4), (1, 4, 4), (4, 2, 1)):
        t = build_phase(m, w, Parallelism(tp=tp, ep=ep, dp=dp), "decode")
        i, j = _op(t, "moe_dispatch"), _op(t, "moe_combine")
        assert t.collectives[i] == t.collectives[j] == "alltoall"
        group = max(tp, ep)
        assert t.group[i] == group and t.count[i] == 32
        # on average each device dispatches its T/tp tokens, k copies (to the tp/ep ranks of an
        # expert when ep < tp); the all-to-all ends when the busiest EP slot has received its rows
        # (the expected maximum, tests/test_moe_max.py), so the buffer is that slot's rows
        etp = max(tp // ep, 1)
        lay = ExpertLayout(8, 2, 16, tp, ep)
        mean = 16 / tp * 2 * etp * m.hidden_size * 2
        assert t.comm_bytes[i] == pytest.approx(lay.rows * m.hidden_size * 2)
        assert t.comm_bytes[i] >= mean * (1 - 1e-12)
        assert t.comm_bytes[j] == t.comm_bytes[i]  # bf16 combine
        # experts on a device: E / ep
        layout = ExpertLayout(8, 2, 16, tp, ep)
        assert layout.local_experts == 8 // ep
        assert t.weight_bytes[_op(t, "expert_down_proj")] == pytest.approx(
            layout.distinct_experts * m.hidden_size * (14336 // etp) * 2)


def test_ep_dispatch_uses_the_activation_dtype() -> None:
    m = roofline.load_model("deepseek-v3")
    w = Workload.with_dtype("fp8", batch=32, input_len=100, output_len=8)
    t = build_phase(m, w, Parallelism(tp=1, ep=8, dp=8), "decode")
    # the busiest EP slot's rows (on average 32 tokens x 8 experts), fp8 out, bf16 back
    rows = ExpertLayout(256, 8, 32, 1, 8).rows
    assert rows > 32 * 8
    assert t.comm_bytes[_op(t, "moe_dispatch")] == pytest.approx(rows * 7168 * 1.0)
    assert t.comm_bytes[_op(t, "moe_combine")] == pytest.approx(rows * 7168 * 2.0)


@pytest.mark.parametrize(("par", "message"), [
    (Parallelism(tp=1, ep=3, dp=3), "ep=3 does not divide the 8 experts"),
    (Parallelism(tp=2, ep=8, dp=2), "exceeds the tp\\*dp=4 devices"),
    (Parallelism(tp=8, ep=4, dp=1), None),  # fine: each expert split 2 ways
    (Parallelism(tp=4, ep=8, dp=3), "tp times a divisor of dp"),
])
def test_infeasible_expert_parallelism(par: Parallelism, message: str | None) -> None:
    m = roofline.load_model("mixtral-8x7b")
    if message is None:
        build_phase(m, Workload(), par, "decode")
        return
    with pytest.raises(InfeasibleConfigError, match=message):
        build_phase(m, Workload(), par, "decode")


def test_ep_needs_a_moe_model() -> None:
    with pytest.raises(InfeasibleConfigError, match="needs a mixture-of-experts model"):
        roofline.predict("llama-3-8b", "h100-sxm", ep=2, dp=2)
    with pytest.raises(InfeasibleConfigError, match="does not divide the 256 experts"):
        roofline.predict("deepseek-v3", "h100-sxm", tp=8, dp=3, ep=24, check_memory=False)


def test_moe_fields_are_checked() -> None:
    with pytest.raises(SpecError, match="moe_prefetch: 'all' is not allowed"):
        Workload(moe_prefetch="all")
    # the Python API bounds the skew as the CLI does (0 to 10: beyond, one expert takes every token)
    for skew in (-1.0, 1e308, float("nan"), "1"):
        with pytest.raises(SpecError, match=r"moe_skew: (must be|expected) a number >= 0 and <= 10"):
            Workload(moe_skew=skew)
    with pytest.raises(SpecError, match="moe_skew: must be a number >= 0 and <= 10, got 11"):
        roofline.predict("mixtral-8x7b", "h100-sxm", moe_skew=11.0, check_memory=False)


# ---- prefetch for MoE -----------------------------------------------------------------------

def _pf(table, name):
    i = _op(table, name)
    return table.prefetch_weight_bytes[i], table.weight_bytes[i]


@pytest.mark.parametrize(("mode", "ep", "shared", "routed"), [
    ("none", 1, 0, 0), ("shared", 1, 1, 0), ("predicted", 1, 1, 1),
    ("none", 8, 0, 0), ("shared", 8, 1, 1), ("predicted", 8, 1, 1),  # EP: routing known at dispatch
])
def test_prefetch_weight_bytes_by_mode(mode: str, ep: int, shared: int, routed: int) -> None:
    m = roofline.load_model("deepseek-v3")
    t = build_phase(m, Workload(batch=4, input_len=100, output_len=8, moe_prefetch=mode), Parallelism(tp=8, ep=ep),
                    "decode")
    pf, w = _pf(t, "shared_gate_up_proj")
    assert pf == w * shared
    for name in ("expert_gate_up_proj", "expert_down_proj"):
        pf, w = _pf(t, name)
        assert w > 0 and pf == w * routed
    for name in ("q_a_proj", "o_proj", "router", "lm_head", "dense.gate_up_proj"):
        assert _pf(t, name)[0] == _pf(t, name)[1]


def test_dense_tables_prefetch_all_weights() -> None:
    m = roofline.load_model("llama-3-70b")
    t = build_phase(m, Workload(batch=4, input_len=4096, output_len=512), Parallelism(tp=8), "decode")
    assert np.array_equal(t.prefetch_weight_bytes, t.weight_bytes)
    assert [s.name for s in t.segments] == ["attention", "mlp", "head"]
    assert not any(n.startswith("dense.") for n in t.names)


def test_prefetch_modes_order() -> None:
    m = roofline.load_model("mixtral-8x7b")
    tpot = {}
    for mode in ("none", "shared", "predicted"):
        w = Workload(batch=2, input_len=2048, output_len=64, moe_prefetch=mode)
        p = roofline.predict(m, "h100-sxm", workload=w, parallelism=Parallelism(tp=8), prefetch=True)
        assert p.tpot_s <= p.baseline_tpot_s
        tpot[mode] = p.tpot_s
    # Mixtral has no shared expert: "shared" equals "none"; knowing the routing early helps
    assert tpot["shared"] == tpot["none"]
    assert tpot["predicted"] < tpot["shared"]


def test_skew_reads_fewer_expert_bytes() -> None:
    m = roofline.load_model("qwen3-30b-a3b")
    base = Workload(batch=16, input_len=1024, output_len=64)
    skewed = Workload(batch=16, input_len=1024, output_len=64, moe_skew=1.2)
    par = Parallelism(tp=2)
    t0, t1 = (build_phase(m, w, par, "decode") for w in (base, skewed))
    i = _op(t0, "expert_gate_up_proj")
    assert t1.weight_bytes[i] < t0.weight_bytes[i]
    assert t1.flops[i] == t0.flops[i]  # the same tokens x top-k rows
    p0 = roofline.predict(m, "h100-sxm", workload=base, parallelism=par)
    p1 = roofline.predict(m, "h100-sxm", workload=skewed, parallelism=par)
    assert p1.tpot_s < p0.tpot_s


# ---- predictions for every new model ---------------------------------------------------------

@pytest.mark.parametrize(("model", "hw", "dtype", "par"), [
    ("mixtral-8x7b", "h100-sxm", "bf16", Parallelism(tp=8)),
    ("mixtral-8x7b", "h100-sxm", "bf16", Parallelism(tp=8, ep=8)),
    ("mixtral-8x7b", "a100-sxm-80gb", "bf16", Parallelism(tp=2, ep=4, dp=2)),
    ("mixtral-8x22b", "h100-sxm", "fp8", Parallelism(tp=8, ep=8)),
    ("deepseek-v3", "h200-sxm", "fp8", Parallelism(tp=8, ep=8)),
    ("deepseek-v3", "h100-sxm", "fp8", Parallelism(tp=1, ep=8, dp=8)),
    ("deepseek-v3", "b200", "fp8", Parallelism(tp=8, pp=2, ep=8)),
    ("qwen3-32b", "h100-sxm", "bf16", Parallelism(tp=4)),
    ("qwen3-30b-a3b", "h100-sxm", "bf16", Parallelism(tp=4, ep=4)),
    ("qwen3-30b-a3b", "mi300x", "bf16", Parallelism(tp=2, ep=8, dp=4)),
    ("llama-4-scout-17b-16e", "h100-sxm", "bf16", Parallelism(tp=8, ep=8)),
    ("llama-4-scout-17b-16e", "h100-sxm", "bf16", Parallelism(tp=8, ep=16, dp=2)),
])
def test_predict_every_new_model(model: str, hw: str, dtype: str, par: Parallelism) -> None:
    w = Workload.with_dtype(dtype, batch=8, input_len=2048, output_len=128)
    p = roofline.predict(model, hw, workload=w, parallelism=par, prefetch=True, check_memory=False)
    assert p.prefetch and 0 < p.tpot_s <= p.baseline_tpot_s and 0 < p.ttft_s <= p.baseline_ttft_s
    assert np.isfinite([p.tpot_s, p.ttft_s, p.e2e_s, p.throughput_tok_s]).all()
    d = p.to_dict()
    assert d["segments"]["decode"], "prefetch segments exist"
    if par.ep > 1:
        assert any(r["op"] == "moe_dispatch" and r["comm_bytes"] > 0 for r in d["breakdown"]["decode"])


def test_deepseek_v3_fits_on_eight_h200_in_fp8() -> None:
    p = roofline.predict("deepseek-v3", "h200-sxm", dtype="fp8", tp=8, ep=8, batch=8, input_len=2048,
                         output_len=256)
    assert p.memory.fits


@pytest.mark.parametrize(("model", "par"), [
    ("mixtral-8x7b", Parallelism(tp=8, ep=8)),
    ("deepseek-v3", Parallelism(tp=8)),
    ("qwen3-30b-a3b", Parallelism(tp=1, ep=4, dp=4)),
])
def test_moe_tpot_is_the_exact_mean_over_every_step(model: str, par: Parallelism) -> None:
    m, hw = roofline.load_model(model), roofline.load_hardware("h100-sxm")
    w = Workload.with_dtype("fp8", batch=8, input_len=1000, output_len=200)
    for prefetch in (False, True):
        p = roofline.predict(m, hw, workload=w, parallelism=par, prefetch=prefetch, check_memory=False, datasheet=True)
        table = build_phase(m, w, par, "decode")
        first, last = decode_kv_range(w)
        kv = np.arange(first, last + 1, dtype=float)
        brute = evaluate_pass(table, HardwareArrays.from_spec(hw, len(kv), prefetch=prefetch), kv)
        assert p.tpot_s == pytest.approx(float(brute.time_s.mean()), rel=1e-12)


# ---- Hugging Face configs ---------------------------------------------------------------------

_SHAPE = [f.name for f in fields(ModelSpec) if f.name not in ("name", "description", "source", "source_file",
                                                               "architecture", "quantization")]


@pytest.mark.parametrize(("folder", "bundled"), [
    ("Mixtral-8x7B-v0.1", "mixtral-8x7b"),
    ("Qwen3-32B", "qwen3-32b"),
    ("Qwen3-30B-A3B", "qwen3-30b-a3b"),
    ("DeepSeek-V3", "deepseek-v3"),
])
def test_hf_config_matches_the_bundled_spec(folder: str, bundled: str) -> None:
    hf = roofline.load_model(FIXTURES / "hf_configs" / folder / "config.json")
    yml = roofline.load_model(bundled)
    assert {k: getattr(hf, k) for k in _SHAPE} == {k: getattr(yml, k) for k in _SHAPE}
    assert hf.architecture == yml.architecture
    assert hf.total_params() == yml.total_params()


def _llama4_config() -> dict:
    """The text_config of Llama-4-Scout-17B-16E's config.json (the values of the bundled spec)."""
    return {
        "architectures": ["Llama4ForConditionalGeneration"], "model_type": "llama4",
        "text_config": {
            "model_type": "llama4_text", "hidden_size": 5120, "intermediate_size": 8192,
            "intermediate_size_mlp": 16384, "num_attention_heads": 40, "num_key_value_heads": 8,
            "head_dim": 128, "num_hidden_layers": 48, "num_local_experts": 16, "num_experts_per_tok": 1,
            "interleave_moe_layer_step": 1, "vocab_size": 202048, "max_position_embeddings": 262144,
            "hidden_act": "silu", "tie_word_embeddings": False, "attention_bias": False,
        },
        "vision_config": {"hidden_size": 1408},
    }


def test_hf_llama4_text_config(tmp_path: Path) -> None:
    path = tmp_path / "Llama-4-Scout-17B-16E" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(_llama4_config()))
    hf = roofline.load_model(path)
    yml = roofline.load_model("llama-4-scout-17b-16e")
    assert {k: getattr(hf, k) for k in _SHAPE} == {k: getattr(yml, k) for k in _SHAPE}
    # Maverick interleaves: every second layer is MoE, the others dense of intermediate_size_mlp
    cfg = _llama4_config()
    cfg["text_config"].update(interleave_moe_layer_step=2, num_local_experts=128)
    path.write_text(json.dumps(cfg))
    maverick = roofline.load_model(path)
    assert maverick.num_moe_layers() == 24 and maverick.intermediate_size == 16384


def test_unsupported_hf_architecture_lists_the_supported(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"model_type": "jamba"}')
    with pytest.raises(SpecError, match="unsupported architecture 'jamba'; supported: ") as err:
        roofline.load_model(path)
    for arch in ("deepseek_v3", "llama4", "mixtral", "qwen3", "qwen3_moe"):
        assert arch in str(err.value) and arch in HF_ARCHITECTURES


@pytest.mark.parametrize(("folder", "change", "message"), [
    ("DeepSeek-V3", {"moe_layer_freq": 2}, "moe_layer_freq: only 1 is supported"),
    ("Qwen3-30B-A3B", {"mlp_only_layers": [5, 7]}, "mlp_only_layers: only a leading run"),
    ("Mixtral-8x7B-v0.1", {"num_local_experts": None}, "num_local_experts"),
])
def test_hf_configs_the_format_cannot_express(tmp_path: Path, folder: str, change: dict, message: str) -> None:
    cfg = json.loads((FIXTURES / "hf_configs" / folder / "config.json").read_text())
    for key, value in change.items():
        if value is None:
            del cfg[key]
        else:
            cfg[key] = value
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    with pytest.raises(SpecError, match=message):
        roofline.load_model(path)


def test_qwen3_moe_leading_dense_layers(tmp_path: Path) -> None:
    cfg = json.loads((FIXTURES / "hf_configs" / "Qwen3-30B-A3B" / "config.json").read_text())
    cfg["mlp_only_layers"] = [0, 1]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    m = roofline.load_model(path)
    assert m.moe.first_dense_layers == 2 and m.num_moe_layers() == 46


def test_every_new_model_spec_is_bundled() -> None:
    names = set(roofline.list_models())
    assert set(MOE_MODELS) | {"qwen3-32b"} <= names
    for name in MOE_MODELS:
        assert (PROJECT / "model_specs" / f"{name}.yaml").exists()
        assert roofline.load_model(name).moe is not None


def test_weights_held_per_device() -> None:
    from roofline.graph import weight_params_per_device

    llama = roofline.load_model("llama-3-70b")
    assert weight_params_per_device(llama, Parallelism(tp=8)) == pytest.approx(llama.total_params() / 8, rel=1e-3)
    ds = roofline.load_model("deepseek-v3")
    one = weight_params_per_device(ds, Parallelism())
    assert one == pytest.approx(ds.total_params(), rel=1e-9)
    # tp=8 with or without ep=8: the routed experts are split 8 ways either way; q_a, kv_a and the
    # router stay whole on every rank (about 1.04B parameters)
    replicated = 61 * (7168 * (1536 + 576) + 1536 + 512) + 58 * 7168 * 256
    for par in (Parallelism(tp=8), Parallelism(tp=8, ep=8)):
        assert weight_params_per_device(ds, par) == pytest.approx(ds.total_params() / 8 + replicated * 7 / 8,
                                                                  rel=2e-3)
    mixtral = roofline.load_model("mixtral-8x7b")
    # ep=2 < tp=8: 4 experts per device, each split 4 ways: the same bytes as ep=8
    assert weight_params_per_device(mixtral, Parallelism(tp=8, ep=2)) == pytest.approx(
        weight_params_per_device(mixtral, Parallelism(tp=8, ep=8)))
