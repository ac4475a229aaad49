"""Multi-head latent attention (DeepSeek-V2/V3): compressed KV cache and absorbed decode projections."""

from __future__ import annotations

import numpy as np
import pytest

import roofline
from roofline.graph import build_phase
from roofline.model import ModelSpec
from roofline.workload import Parallelism, Workload

ATTENTION_OPS = ("q_a_proj", "q_a_norm", "q_b_proj", "kv_a_proj", "kv_a_norm", "q_absorb", "v_absorb", "o_proj",
                 "kv_b_proj", "q_proj")


@pytest.fixture(scope="module")
def ds() -> ModelSpec:
    return roofline.load_model("deepseek-v3")


def _op(table, name):
    return table.names.index(name)


def test_kv_bytes_per_token(ds: ModelSpec) -> None:
    # 61 layers x (kv_lora_rank 512 + qk_rope_head_dim 64) elements: 35,136; 70,272 bytes in bf16
    assert ds.kv_elements_per_token() == 61 * (512 + 64) == 35_136
    # a GQA model of the same depth with 128 KV heads of 128 would cache 61 * 2 * 128 * 128 elements
    assert ds.kv_elements_per_token() / (61 * 2 * 128 * 128) == pytest.approx(0.0176, abs=1e-4)


def test_decode_reads_the_latent_cache_on_every_tp_rank(ds: ModelSpec) -> None:
    w = Workload.with_dtype("fp8", batch=4, input_len=1000, output_len=8)
    for tp in (1, 8):
        t = build_phase(ds, w, Parallelism(tp=tp), "decode")
        i = _op(t, "attention")
        # the latent is not split by TP: every rank reads 4 sequences x 576 values per cached token
        assert t.kv_read_per_kv[i] == 4 * 576 * 1.0
        assert t.kv_write_bytes[i] == 4 * 576 * 1.0
        heads = 128 // tp
        # absorbed: 2*(512 + 64) for the scores and 2*512 for the output, per head and cached token
        assert t.flops_per_kv[i] == 4 * heads * (2 * (512 + 64) + 2 * 512)
        assert t.flops[i] == 0 and t.kv_read_bytes[i] == 0  # affine in the KV length: no constant part


def test_prefill_writes_the_latent_and_attends_with_192_wide_heads(ds: ModelSpec) -> None:
    b, s = 2, 500
    t = build_phase(ds, Workload(batch=b, input_len=s, output_len=8), Parallelism(tp=8), "prefill")
    i = _op(t, "attention")
    assert t.kv_write_bytes[i] == b * s * 576 * 2
    # causal pairs s(s+1)/2, per pair and head 2*192 (QK^T) + 2*128 (PV) FLOPs, 16 heads per rank
    assert t.flops[i] == pytest.approx(b * 16 * s * (s + 1) / 2 * (2 * 192 + 2 * 128))
    assert "kv_b_proj" in t.names and "q_absorb" not in t.names


def test_decode_absorbs_the_up_projections(ds: ModelSpec) -> None:
    t = build_phase(ds, Workload(batch=4, input_len=100, output_len=8), Parallelism(), "decode")
    assert "kv_b_proj" not in t.names
    i, j = _op(t, "q_absorb"), _op(t, "v_absorb")
    # W_UK: 128 heads x 128 nope x 512 latent; W_UV: 128 heads x 512 latent x 128 v
    assert t.weight_bytes[i] == t.weight_bytes[j] == 128 * 128 * 512 * 2
    assert t.flops[i] == 2 * 4 * 128 * 128 * 512


def test_attention_weights_are_the_attention_parameters(ds: ModelSpec) -> None:
    w = Workload(batch=1, input_len=100, output_len=8)
    for phase in ("prefill", "decode"):
        t = build_phase(ds, w, Parallelism(), phase)
        ops = [i for i, n in enumerate(t.names) if n in ATTENTION_OPS]
        assert float(t.weight_bytes[ops].sum()) == ds.attention_params() * 2
    # TP splits the per-head projections; the down-projections q_a and kv_a stay whole on every rank
    t8 = build_phase(ds, w, Parallelism(tp=8), "decode")
    t1 = build_phase(ds, w, Parallelism(), "decode")
    for name in ("q_a_proj", "kv_a_proj"):
        assert t8.weight_bytes[_op(t8, name)] == t1.weight_bytes[_op(t1, name)]
    for name in ("q_b_proj", "q_absorb", "v_absorb", "o_proj"):
        assert t8.weight_bytes[_op(t8, name)] * 8 == t1.weight_bytes[_op(t1, name)]


def test_mla_without_q_lora() -> None:
    # DeepSeek-V2-Lite: q_lora_rank null, a plain q projection
    m = ModelSpec.from_dict({
        "name": "v2-lite", "hidden_size": 2048, "num_layers": 27, "num_attention_heads": 16, "num_kv_heads": 16,
        "head_dim": 128, "intermediate_size": 10944, "vocab_size": 102400,
        "moe": {"num_experts": 64, "experts_per_token": 6, "expert_intermediate_size": 1408,
                "num_shared_experts": 2, "first_dense_layers": 1},
        "mla": {"kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128},
    })
    # DeepSeek-V2 report (arXiv 2405.04434): V2-Lite has 15.7B total, 2.4B activated parameters (the
    # latter without the input embedding table, which a token only reads one row of)
    assert m.total_params() == pytest.approx(15.7e9, rel=0.02)
    assert m.active_params() - m.vocab_size * m.hidden_size == pytest.approx(2.4e9, rel=0.03)
    t = build_phase(m, Workload(batch=2, input_len=64, output_len=8), Parallelism(tp=2), "decode")
    assert "q_proj" in t.names and "q_a_proj" not in t.names
    assert t.weight_bytes[_op(t, "q_proj")] == 2048 * 8 * 192 * 2


def test_decode_cost_is_affine_in_the_kv_length(ds: ModelSpec) -> None:
    t = build_phase(ds, Workload(batch=8, input_len=100, output_len=8), Parallelism(tp=8, ep=8), "decode")
    kv = np.array([100.0, 1100.0, 2100.0])
    f, r = t.flops_at(kv), t.kv_read_at(kv)
    assert np.allclose(f[:, 2] - f[:, 1], f[:, 1] - f[:, 0]) and np.allclose(r[:, 2] - r[:, 1], r[:, 1] - r[:, 0])


def test_deepseek_v3_decode_is_cheaper_per_token_than_gqa_would_be(ds: ModelSpec) -> None:
    p = roofline.predict(ds, "h200-sxm", dtype="fp8", tp=8, ep=8, batch=32, input_len=8192, output_len=256,
                         prefetch=True)
    assert p.memory.fits
    # the latent cache of 32 x 8448 tokens is 61 x 576 bytes each: about 9.3 GiB on every rank
    assert p.memory.kv_cache_bytes == pytest.approx(32 * (8192 + 256) * 61 * 576, rel=1e-12)
    attn = [r for r in p.breakdown["decode"] if r["op"] == "attention"][0]
    assert attn["kv_bytes"] > 0 and p.tpot_s < p.baseline_tpot_s
