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
