"""Per-layer heterogeneity: a model is layer types with counts, and the graph is built per type."""

from __future__ import annotations

import dataclasses

import pytest

import roofline
from roofline.exceptions import SpecError
from roofline.graph import build_phase, weight_params_per_device
from roofline.model import LayerGroup, ModelSpec
from roofline.predict import predict
from roofline.workload import Parallelism, Workload

TOY = {"name": "toy", "hidden_size": 64, "num_layers": 4, "num_attention_heads": 4, "num_kv_heads": 2,
       "intermediate_size": 256, "vocab_size": 1000}
MOE = {"num_experts": 4, "experts_per_token": 2, "expert_intermediate_size": 64}


def _spec(**over) -> ModelSpec:
    return ModelSpec.from_dict({**TOY, **over})


@pytest.mark.parametrize(("field", "value"), [("num_layers", 1e30), ("hidden_size", 1e12),
                                              ("num_attention_heads", 1e9), ("vocab_size", 1e15)])
def test_absurd_structural_fields_are_clean_errors(field: str, value: float) -> None:
    with pytest.raises(SpecError, match=f"toy.yaml: {field}: must be <= "):
        ModelSpec.from_dict({**TOY, field: value}, "toy.yaml")


def test_absurd_moe_fields_are_clean_errors() -> None:
    with pytest.raises(SpecError, match=r"moe.first_dense_layers: must be <= 10000"):
        _spec(moe={**MOE, "first_dense_layers": 1e30})
    with pytest.raises(SpecError, match=r"moe.num_experts: must be <= "):
        _spec(moe={**MOE, "num_experts": 1e30})


def test_moe_layer_count_is_closed_form() -> None:
    # 10 layers, 2 dense, then every 3rd of the rest is MoE: layers 4, 7 (j = 2, 5 of j = 0..7)
    m = _spec(num_layers=10, moe={**MOE, "first_dense_layers": 2, "moe_layer_interval": 3})
    assert m.num_moe_layers() == sum(m.is_moe_layer(i) for i in range(10)) == 2
    assert m.layer_groups == (LayerGroup(2, "full", True), LayerGroup(8, "full", False))  # last layer dense


def test_layer_counts_must_add_up() -> None:
    with pytest.raises(SpecError, match=r"layers: the counts add up to 3, not num_layers \(4\)"):
        _spec(layers=[{"count": 1}, {"count": 2, "ffn": "moe"}], moe=MOE)
    with pytest.raises(SpecError, match=r"layers\[0\].attention: 'local' is not allowed; choose one of full"):
        _spec(layers=[{"count": 4, "attention": "local"}])
    with pytest.raises(SpecError, match=r"layers: entries 0 and 2 are the same layer type \(full/dense\)"):
        _spec(layers=[{"count": 1}, {"count": 2, "ffn": "moe"}, {"count": 1}], moe=MOE)
    with pytest.raises(SpecError, match="ffn: moe needs a moe block"):
        _spec(layers=[{"count": 4, "ffn": "moe"}])
    with pytest.raises(SpecError, match="sliding_window: missing: layers of attention sliding need it"):
        _spec(layers=[{"count": 4, "attention": "sliding"}])
    with pytest.raises(SpecError, match="with one, its ffn entries do"):
        _spec(layers=[{"count": 1}, {"count": 3, "ffn": "moe"}], moe={**MOE, "first_dense_layers": 1})


def test_explicit_layers_reproduce_the_moe_placement() -> None:
    """DeepSeek-V3 written as 3 dense + 58 MoE layers is the bundled model, op for op."""
    ds = roofline.load_model("deepseek-v3")
    data = roofline.model.read_yaml(ds.source_file)
    moe = {k: v for k, v in data["moe"].items() if k not in ("first_dense_layers", "moe_layer_interval")}
    explicit = ModelSpec.from_dict({**data, "moe": moe, "layers": [{"count": 3}, {"count": 58, "ffn": "moe"}]})
    assert explicit.total_params() == ds.total_params() and explicit.active_params() == ds.active_params()
    w, par = Workload(batch=8, input_len=512, output_len=32), Parallelism(tp=8, ep=8)
    assert weight_params_per_device(explicit, par) == weight_params_per_device(ds, par)
    for phase in ("prefill", "decode"):
        a, b = build_phase(explicit, w, par, phase), build_phase(ds, w, par, phase)
        assert a.names == b.names and (a.count == b.count).all() and (a.flops == b.flops).all()
    pa = predict(explicit, "h100-sxm", batch=8, input_len=512, output_len=32, tp=8, ep=8, check_memory=False)
    pb = predict(ds, "h100-sxm", batch=8, input_len=512, output_len=32, tp=8, ep=8, check_memory=False)
    assert pa.tpot_s == pb.tpot_s and pa.ttft_s == pb.ttft_s


def test_graph_size_does_not_grow_with_layers() -> None:
    """One operator row per layer type, whatever the layer count (no loop over layers)."""
    w, par = Workload(batch=1, input_len=64, output_len=8), Parallelism(tp=2)
    small = _spec(num_layers=2, layers=[{"count": 1, "ffn": "moe"}, {"count": 1}], moe=MOE)
    big = _spec(num_layers=9000, layers=[{"count": 4000, "ffn": "moe"}, {"count": 5000}], moe=MOE)
    a, b = build_phase(small, w, par, "decode"), build_phase(big, w, par, "decode")
    assert a.n_ops == b.n_ops
    # the counts weight the types: 4000 MoE and 5000 dense layers
    assert b.count[b.names.index("router")] == 4000 and b.count[b.names.index("dense.down_proj")] == 5000
    # parameters: the weighted sum of the layer types (norms 2 x 64 per layer)
    per_dense = big.attention_params() + big.mlp_params(256) + 2 * 64
    per_moe = big.attention_params() + big.moe_layer_params(active=False) + 2 * 64
    assert big.total_params() == 4000 * per_moe + 5000 * per_dense + 2 * 1000 * 64 + 64


def test_the_last_group_feeds_the_head() -> None:
    """The head's prefetch segment follows the last collective of the type holding the last layer."""
    w, par = Workload(batch=1, input_len=64, output_len=8), Parallelism(tp=2)
    m = _spec(layers=[{"count": 3, "ffn": "moe"}, {"count": 1}], moe=MOE)
    t = build_phase(m, w, par, "decode")
    head = [s for s in t.segments if s.name == "head"][0]
    assert t.names[head.collective_op] == "dense.mlp_allreduce"


def _ops(model: str | ModelSpec, tp: int, batch: int = 4) -> dict[str, tuple[float, float, str]]:
    """name -> (count, comm_bytes, collective) of the decode graph."""
    m = roofline.load_model(model) if isinstance(model, str) else model
    t = build_phase(m, Workload(batch=batch, input_len=1024, output_len=128), Parallelism(tp=tp), "decode")
    return {n: (float(c), float(b), k) for n, c, b, k in zip(t.names, t.count, t.comm_bytes, t.collectives)}


def test_a_norm_over_the_whole_q_width_all_reduces_its_sums_across_tp() -> None:
    """MiniMax-M2.5 (qk_norm per_layer, 62 MoE layers): at TP 8 each layer all-reduces two fp32
    sums of squares per token (vLLM MiniMaxText01RMSNormTP.forward_qk): batch 4 -> 4 tokens x 2
    x 4 bytes = 32 bytes, 62 times a step; at TP 1 nothing to reduce."""
    ops = _ops("minimax-m2.5", tp=8)
    assert ops["qk_norm_allreduce"] == (62.0, 4 * 2 * 4.0, "allreduce")
    assert ops["qk_norm"][0] == ops["qk_norm_variance"][0] == 62.0
    single = _ops("minimax-m2.5", tp=1)
    assert "qk_norm_allreduce" not in single and "qk_norm_variance" not in single
    assert single["qk_norm"][0] == 62.0


def test_a_per_head_qk_norm_needs_no_collective() -> None:
    ops = _ops(_spec(qk_norm="per_head"), tp=2)
    assert ops["qk_norm"][0] == 4.0  # one norm kernel per layer
    assert not any(n.startswith("qk_norm_") for n in ops)
    assert "qk_norm" not in _ops(_spec(), tp=2)  # no q/k norm in the model: no operator


def test_the_qk_norm_all_reduce_slows_a_tp_decode_step() -> None:
    """The extra collective is time on the step: MiniMax-M2.5 decode at TP 8 on H200 is slower than
    the same graph without it would be, by at least one small all-reduce launch per layer."""
    spec = roofline.load_model("minimax-m2.5")
    def tpot(m: ModelSpec) -> float:
        return predict(m, "h200-sxm", tp=8, batch=4, input_len=1024, output_len=128, dtype="fp8",
                       datasheet=True).tpot_s

    with_norm, without = tpot(spec), tpot(dataclasses.replace(spec, qk_norm="per_head"))
    assert with_norm > without + 62 * 1e-6


def _op_row(model: str, name: str, tp: int, batch: int) -> dict[str, float]:
    m = roofline.load_model(model)
    t = build_phase(m, Workload(batch=batch, input_len=1024, output_len=128), Parallelism(tp=tp), "decode")
    i = t.names.index(name)
    return {"count": float(t.count[i]), "flops": float(t.flops[i]), "weight_bytes": float(t.weight_bytes[i]),
            "act_bytes": float(t.act_bytes[i]), "comm_bytes": float(t.comm_bytes[i])}


def test_qwen3_32b_normalises_q_and_k_per_head() -> None:
    """Qwen3 (transformers modeling_qwen3.py, Qwen3Attention: q_norm = Qwen3RMSNorm(head_dim), k_norm
    likewise) at TP 8, batch 4: each rank holds 64 / 8 = 8 q heads and 8 / 8 = 1 kv head of 128,
    so one decode step normalises 4 x (8 + 1) x 128 = 4608 elements per layer: 5 x 4608 = 23,040
    FLOPs, 2 x 4608 x 2 bytes = 18,432 activation bytes (bf16 in and out), and reads the two
    128-wide bf16 weights, 2 x 128 x 2 = 512 bytes; 64 layers, no collective."""
    row = _op_row("qwen3-32b", "qk_norm", tp=8, batch=4)
    assert row == {"count": 64.0, "flops": 23_040.0, "weight_bytes": 512.0, "act_bytes": 18_432.0,
                   "comm_bytes": 0.0}
    assert "qk_norm_allreduce" not in _ops("qwen3-32b", tp=8)


def test_qwen3_30b_a3b_normalises_q_and_k_per_head() -> None:
    """Qwen3-30B-A3B (Qwen3MoeAttention, the same per-head norm): 48 MoE layers, 32 q and 4 kv heads of
    128 at TP 4 -> 8 + 1 heads per rank; batch 2: 2 x 9 x 128 = 2304 elements, 11,520 FLOPs,
    9216 activation bytes, 512 weight bytes."""
    row = _op_row("qwen3-30b-a3b", "qk_norm", tp=4, batch=2)
    assert row == {"count": 48.0, "flops": 11_520.0, "weight_bytes": 512.0, "act_bytes": 9216.0, "comm_bytes": 0.0}


def test_qwen3_qk_norm_weights_are_counted_once_per_layer() -> None:
    """2 x head_dim = 256 parameters per layer: 64 x 256 = 16,384 more than the spec without them."""
    m = roofline.load_model("qwen3-32b")
    assert m.total_params() - dataclasses.replace(m, qk_norm="none").total_params() == 64 * 2 * 128


_LAYER_NORMS = ("input_norm", "post_attn_norm", "attn_output_norm", "mlp_output_norm")


@pytest.mark.parametrize("name", sorted(roofline.list_models()))
def test_the_graph_has_as_many_layer_norms_as_the_spec_counts(name: str) -> None:
    """Law: the layer norms of one pass read num_layers x norms_per_layer norm weights (2 bytes a
    parameter), the parameters ModelSpec counts, for every bundled model."""
    m = roofline.load_model(name)
    t = build_phase(m, Workload(batch=1, input_len=64, output_len=4), Parallelism(tp=1), "decode")
    read = sum(c * w for n, c, w in zip(t.names, t.count, t.weight_bytes) if n.rsplit(".", 1)[-1] in _LAYER_NORMS)
    assert read == m.num_layers * m.norms_per_layer * m.norm_params() * 2.0


def test_gemma_3_sandwich_norms_by_hand() -> None:
    """Gemma 3 (transformers Gemma3DecoderLayer: input, post_attention, pre_feedforward and
    post_feedforward RMSNorm): 4 norms per layer. Decode at TP 1, batch 2: each norm reads
    2 x 5376 bf16 values and writes as many: 2 x 2 x 5376 x 2 = 43,008 bytes, 5 x 10,752 =
    53,760 FLOPs, and its 5376-wide weight (10,752 bytes); 52 sliding and 10 global layers."""
    m = roofline.load_model("gemma-3-27b")
    t = build_phase(m, Workload(batch=2, input_len=1024, output_len=8), Parallelism(tp=1), "decode")
    for prefix, layers in (("sliding.", 52.0), ("", 10.0)):
        for norm in _LAYER_NORMS:
            i = t.names.index(prefix + norm)
            assert (t.count[i], t.act_bytes[i], t.flops[i], t.weight_bytes[i]) == (layers, 43_008.0, 53_760.0, 10_752.0)


def test_one_norm_feeds_parallel_attention_and_mlp() -> None:
    """GPT-J and Falcon-7B normalise once per layer (ln_1 / input_layernorm feed attention and MLP):
    no post-attention norm; LayerNorm reads weight and bias, 2 x 4096 x 2 = 16,384 bytes (GPT-J)."""
    for name in ("gpt-j-6b", "falcon-7b"):
        names = build_phase(roofline.load_model(name), Workload(batch=1, input_len=64, output_len=4),
                            Parallelism(tp=1), "decode").names
        assert "input_norm" in names and "post_attn_norm" not in names
    t = build_phase(roofline.load_model("gpt-j-6b"), Workload(batch=1, input_len=64, output_len=4),
                    Parallelism(tp=1), "decode")
    assert t.weight_bytes[t.names.index("input_norm")] == 16_384.0


def test_bloom_normalises_the_embedding() -> None:
    """BLOOM's word_embeddings_layernorm: one LayerNorm after the embedding, once per pass; prefill of
    batch 2 x 16 tokens: 32 x 14,336 values in and out (2 bytes) = 1,835,008 bytes, weight and bias
    2 x 14,336 x 2 = 57,344 bytes."""
    t = build_phase(roofline.load_model("bloom-176b"), Workload(batch=2, input_len=16, output_len=4),
                    Parallelism(tp=8), "prefill")
    i = t.names.index("embedding_norm")
    assert (t.count[i], t.act_bytes[i], t.weight_bytes[i]) == (1.0, 1_835_008.0, 57_344.0)


def test_qwen3_next_gates_its_shared_expert() -> None:
    """Qwen3-Next (Qwen3NextSparseMoeBlock): sigmoid(x W_g) x shared_expert(x), W_g of 2048 x 1,
    replicated on every TP rank. Decode at TP 4, batch 3: the gate GEMM reads 2048 bf16 weights
    (4096 bytes) and does 2 x 3 x 2048 = 12,288 FLOPs; the product reads 3 x 2048 + 3 values and
    writes 3 x 2048: (6147 + 6144) x 2 = 24,582 bytes; 48 MoE layers (36 linear, 12 full)."""
    m = roofline.load_model("qwen3-next-80b-a3b")
    t = build_phase(m, Workload(batch=3, input_len=256, output_len=8), Parallelism(tp=4), "decode")
    for prefix, layers in (("linear.", 36.0), ("", 12.0)):
        g, mul = t.names.index(prefix + "shared_expert_gate"), t.names.index(prefix + "shared_gate_mul")
        assert (t.count[g], t.weight_bytes[g], t.flops[g]) == (layers, 4096.0, 12_288.0)
        assert (t.count[mul], t.act_bytes[mul]) == (layers, 24_582.0)
    # 2048 parameters per MoE layer
    ungated = dataclasses.replace(m, moe=dataclasses.replace(m.moe, shared_expert_gate=False))
    assert m.total_params() - ungated.total_params() == 48 * 2048
    assert "shared_expert_gate" not in build_phase(ungated, Workload(batch=3, input_len=256, output_len=8),
                                                   Parallelism(tp=4), "decode").names


def test_a_shared_expert_gate_needs_a_shared_expert() -> None:
    with pytest.raises(SpecError, match=r"toy.yaml: moe.shared_expert_gate: needs num_shared_experts >= 1"):
        ModelSpec.from_dict({**TOY, "moe": {**MOE, "shared_expert_gate": True}}, "toy.yaml")
    with pytest.raises(SpecError, match=r"moe.shared_expert_gate"):
        _spec(moe={**MOE, "num_shared_experts": 1, "shared_expert_gate": "sometimes"})
